-- 107: partition ownership as an epoch, and a purge path for kasir_processed.
-- Every assignment bumps kasir_offsets.epoch (lib/worker.c reads its positions with that
-- UPDATE), so a write made "only while I own this partition" (ks_batch_journal: the
-- executor's attempt journal before it calls a PSP) can be fenced at once, before the new
-- owner has committed anything: it locks the row at the epoch it read, or fails.
ALTER TABLE kasir_offsets ADD COLUMN IF NOT EXISTS epoch bigint NOT NULL DEFAULT 0;

-- kasir_processed keeps ids for worker.dedup.retention (90 days by default, longer than
-- any DLQ replay); the worker deletes older ones of its group a slice at a time.
CREATE INDEX IF NOT EXISTS kasir_processed_age ON kasir_processed (consumer, processed_at);
