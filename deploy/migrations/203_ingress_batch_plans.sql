-- 203: ingress_batch() always probes by key. Its statements join a small jsonb batch to
-- large tables; plpgsql caches their plans per connection, and a plan made while a table
-- looked small (fresh database, right after a VACUUM FULL, stale statistics) kept
-- sequential-scanning payments for every batch once the table had grown (measured: a third
-- of the writers' CPU). Index probes are always right here, whatever the statistics say.
ALTER FUNCTION ingress_batch(jsonb, jsonb, interval, interval)
    SET enable_seqscan = off
    SET enable_hashjoin = off
    SET enable_mergejoin = off;
