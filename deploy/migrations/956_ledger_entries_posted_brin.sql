-- 956: the audit export (GET /v1/admin/audit-export, producers/ingress/audit_export.c)
-- reads a partner's entries of a time range, "partner_id = $1 AND posted_at >= $2 AND
-- posted_at < $3", and no index of ledger_entries served either column: every export read
-- the whole ledger, the history of every partner since the first payment, whatever range
-- it asked for (and its FETCHes run under readers.export_fetch_timeout: past some size of
-- history, every export would fail). A BRIN index on posted_at: ledger_entries is never
-- updated or deleted from (840), so its pages fill in posting order (posted_at is the
-- posting transaction's start: commits a moment apart interleave by that moment) and a
-- range of time is a range of pages. An export now reads the pages of its range (every
-- partner's entries of that time, the partner filtered on the row) plus the pages written
-- since the last summarization (autosummarize: an autovacuum work item summarizes each
-- range of 128 pages once it is full). What wears it: rows of batches rolled back (a
-- refused batch, a kill -9) are dead space a vacuum frees, and later entries that fill it
-- widen an old range's summary to their time: those pages are then read by the exports of
-- every time between; rare, and it costs reads, never a wrong answer. The posting path's
-- cost: within the spread of the ledger bench (docs/BENCHMARKS.md, session 33). Test 420.
-- On a large production table, first, without blocking the ledger's writes:
--   CREATE INDEX CONCURRENTLY ledger_entries_posted ON ledger_entries
--       USING brin (posted_at) WITH (autosummarize = on);
-- and this file then only checks the index. An index of that name that is anything else
-- (an invalid one a failed CONCURRENTLY left, another column, access method or operator
-- class (a bloom class serves no range), a predicate, an expression, no autosummarize:
-- ALTER INDEX ledger_entries_posted SET (autosummarize = on) mends that one) is refused,
-- not taken for it (as in 954).
-- Built here instead, it blocks the ledger's inserts while the table is read once.
SET LOCAL lock_timeout = '5s';
DO $$
BEGIN
    IF to_regclass('ledger_entries_posted') IS NULL THEN
        CREATE INDEX ledger_entries_posted ON ledger_entries
            USING brin (posted_at) WITH (autosummarize = on);
    END IF;
    IF NOT EXISTS (
        SELECT 1
          FROM pg_index i
          JOIN pg_class c ON c.oid = i.indexrelid
          JOIN pg_am a ON a.oid = c.relam
         WHERE i.indexrelid = to_regclass('ledger_entries_posted')
           AND i.indrelid = to_regclass('ledger_entries')
           AND a.amname = 'brin' AND i.indisvalid AND i.indnatts = 1
           AND i.indexprs IS NULL AND i.indpred IS NULL
           AND EXISTS (SELECT 1 FROM pg_options_to_table(c.reloptions) o
                        WHERE o.option_name = 'autosummarize' AND o.option_value::boolean)
           AND (SELECT opcname FROM pg_opclass WHERE oid = i.indclass[0])
               IN ('timestamptz_minmax_ops', 'timestamptz_minmax_multi_ops')
           AND i.indkey[0] = (SELECT attnum FROM pg_attribute
                               WHERE attrelid = i.indrelid AND attname = 'posted_at')) THEN
        RAISE EXCEPTION 'ledger_entries_posted exists but is not a valid BRIN index on ledger_entries (posted_at) with autosummarize = on'
            USING HINT = 'drop it (DROP INDEX CONCURRENTLY ledger_entries_posted) and build it again';
    END IF;
END $$;
