-- 954: the purge finds expired idempotency records through a B-tree on expires_at, not the
-- BRIN index of 820. A BRIN range that no vacuum has summarized yet matches every query, so
-- each purge (every 2 s) re-read every page written since autovacuum last ran on the table:
-- up to a fifth of a growing table each time (41-112 ms a purge at 5,000 payments/s,
-- docs/BENCHMARKS.md, session 26). And once purged pages are reused, a range's summary
-- spans the old, expired records and the new ones, and only widens: every range would
-- match. The B-tree's scan starts at the oldest entry: what expired, plus the entries of
-- records purged since the table's last vacuum (still in the index until then; the scan
-- skips the heap for those it has marked dead). Its inserts come in expires_at order, at
-- the index's right edge (~20 bytes an entry). The ingress_unresolved view gains the same.
-- On a large production table, first, without blocking writes:
--   CREATE INDEX CONCURRENTLY idempotency_keys_expiry ON idempotency_keys (expires_at);
--   DROP INDEX CONCURRENTLY idempotency_keys_expiry_brin;
-- and this file then only checks the index and takes no lock on the table. An index of that
-- name that is anything else (an invalid one a failed CONCURRENTLY left, another column, a
-- predicate, an expression, an INCLUDE column, another access method) is refused, not taken
-- for it: the purge would read the whole table every 2 s. Built here instead, the index
-- blocks writes to the table while it is built; the DROP that follows waits at most 5 s for
-- the ingress's statements, then fails (run the migration again).
SET LOCAL lock_timeout = '5s';
DO $$
BEGIN
    IF to_regclass('idempotency_keys_expiry') IS NULL THEN
        CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
    END IF;
    IF NOT EXISTS (
        SELECT 1
          FROM pg_index i
          JOIN pg_class c ON c.oid = i.indexrelid
          JOIN pg_am a ON a.oid = c.relam
         WHERE i.indexrelid = to_regclass('idempotency_keys_expiry')
           AND i.indrelid = to_regclass('idempotency_keys')
           AND a.amname = 'btree' AND i.indisvalid AND i.indnatts = 1
           AND i.indexprs IS NULL AND i.indpred IS NULL
           AND i.indkey[0] = (SELECT attnum FROM pg_attribute
                               WHERE attrelid = i.indrelid AND attname = 'expires_at')) THEN
        RAISE EXCEPTION 'idempotency_keys_expiry exists but is not a valid B-tree on idempotency_keys (expires_at)'
            USING HINT = 'drop it (DROP INDEX CONCURRENTLY idempotency_keys_expiry) and build it again';
    END IF;
END $$;
DROP INDEX IF EXISTS idempotency_keys_expiry_brin;
