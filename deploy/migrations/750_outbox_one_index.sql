-- 750: kasir_outbox keeps one index, (worker, id), as its primary key. Every statement on
-- the table names its owner (the sweep, the park, the sent mark of lib/outbox.c), and an id
-- is unique on its own (the sequence), so the separate index on id only cost a B-tree
-- insertion for every output of every worker (docs/BENCHMARKS.md).
CREATE UNIQUE INDEX kasir_outbox_worker_id ON kasir_outbox (worker, id);
ALTER TABLE kasir_outbox DROP CONSTRAINT kasir_outbox_pkey;
ALTER TABLE kasir_outbox ADD CONSTRAINT kasir_outbox_pkey PRIMARY KEY USING INDEX kasir_outbox_worker_id;
DROP INDEX kasir_outbox_unsent;
