-- 102: byte-order ("C") collation for key columns that are ids, not words. B-tree
-- comparisons then are memcmp instead of strcoll: the per-batch INSERTs of the runtime and
-- the demo spend most of their time in index maintenance on these keys.
ALTER TABLE kasir_processed ALTER COLUMN consumer TYPE text COLLATE "C",
                            ALTER COLUMN message_id TYPE text COLLATE "C";
ALTER TABLE kasir_offsets ALTER COLUMN group_id TYPE text COLLATE "C",
                          ALTER COLUMN topic TYPE text COLLATE "C";
ALTER TABLE kasir_outbox ALTER COLUMN worker TYPE text COLLATE "C";
ALTER TABLE demo_applied ALTER COLUMN event_id TYPE text COLLATE "C";
ALTER TABLE demo_accounts ALTER COLUMN account TYPE text COLLATE "C";
