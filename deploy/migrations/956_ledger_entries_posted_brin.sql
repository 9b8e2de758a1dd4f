-- 956: the audit export (GET /v1/admin/audit-export, producers/ingress/audit_export.c)
-- reads a partner's entries of a time range, "partner_id = $1 AND posted_at >= $2 AND
-- posted_at < $3", and no index of ledger_entries served either column: every export read
-- the whole ledger, the history of every partner since the first payment, whatever range
-- it asked for (and its FETCHes run under readers.export_fetch_timeout: past some size of
-- history, every export would fail). A BRIN index on posted_at: ledger_entries is
-- append-only (no UPDATE or DELETE, 840), so its pages are in posting order and a range of
-- time is a range of pages. An export now reads the pages of its range (every partner's
-- entries of that time, the partner filtered on the row) plus the pages written since the
-- last summarization (autosummarize: an autovacuum work item summarizes each range of 128
-- pages once it is full). The posting path's cost: next to nothing (a range's summary is
-- widened only when it is already summarized). Test 420.
-- On a large production table, first, without blocking the ledger's writes:
--   CREATE INDEX CONCURRENTLY ledger_entries_posted ON ledger_entries
--       USING brin (posted_at) WITH (autosummarize = on);
-- and this file then finds it and does nothing. Built here instead, it blocks the ledger's
-- inserts while the table is read once.
SET LOCAL lock_timeout = '5s';
CREATE INDEX IF NOT EXISTS ledger_entries_posted ON ledger_entries
    USING brin (posted_at) WITH (autosummarize = on);
