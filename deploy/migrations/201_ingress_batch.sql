-- 201: ingress_batch, set-based. The row-by-row version of 200 cost ~120 us of server CPU
-- per new payment (a plpgsql statement per row and table); the hot path (new payments and
-- all finishes) is now a handful of statements per batch whatever its size. Same contract.
-- (ingress_batch(): its one definition is deploy/migrations/functions/ingress_batch.sql)


-- Room on each page for the finish's UPDATE to be a HOT update (no index entries for the
-- new row version), and a BRIN index for the purge: expires_at grows with insertion order,
-- and a BRIN index costs next to nothing to maintain on the hot path.
ALTER TABLE idempotency_keys SET (fillfactor = 70);
ALTER TABLE payments SET (fillfactor = 80);
DROP INDEX IF EXISTS idempotency_keys_expiry;
CREATE INDEX IF NOT EXISTS idempotency_keys_expiry_brin ON idempotency_keys USING brin (expires_at);
