-- 954: the purge finds expired idempotency records through a B-tree on expires_at, not the
-- BRIN index of 820. A BRIN range that no vacuum has summarized yet matches every query, so
-- each purge (every 2 s) re-read every page written since autovacuum last ran on the table:
-- up to a fifth of a growing table each time (40-112 ms a purge at 5,000 payments/s,
-- docs/BENCHMARKS.md, session 26). And once purged pages are reused, a range's summary
-- spans the old, expired records and the new ones, and only grows: every range would match.
-- A B-tree reads what expired and nothing else; its inserts come in expires_at order, at
-- the index's right edge (~20 bytes an entry).
-- On a large production table, build the index first without blocking writes:
--   CREATE INDEX CONCURRENTLY idempotency_keys_expiry ON idempotency_keys (expires_at);
-- and this file then only drops the BRIN index.
CREATE INDEX IF NOT EXISTS idempotency_keys_expiry ON idempotency_keys (expires_at);
DROP INDEX IF EXISTS idempotency_keys_expiry_brin;
