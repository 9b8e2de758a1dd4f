-- 501: a replay that runs while someone resolves dead letters must not send them after
-- the resolve commits (dlq-tools/README.md, "Resolve during a replay"). The replay asks,
-- before each chunk of copies, for the resolve marks it has not seen yet: seq orders them.
-- Resolves write their marks holding an advisory lock exclusively and a replay reads them
-- holding it shared, so under that lock seq grows in commit order and "seq > the last one
-- seen" misses none.
ALTER TABLE kasir_dlq_resolved ADD COLUMN IF NOT EXISTS seq bigserial;
CREATE INDEX IF NOT EXISTS kasir_dlq_resolved_seq ON kasir_dlq_resolved (topic, seq);
