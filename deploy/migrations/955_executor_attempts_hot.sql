-- 955: an attempt's verdict is a HOT update. kasir-executor inserts each attempt ('sent')
-- in its journal and updates it once with its verdict ('resolved') tens of milliseconds
-- later. The order index of 850 had state = 'resolved' in its predicate, and a column a
-- predicate reads counts as indexed: every verdict was a new row version with a new entry
-- in each of the table's three indexes (random keys: dirty leaf pages, WAL, and vacuum of
-- the dead entries), 0 % HOT. The same look-ups (a refund's capture, kasir-webhooks'
-- verdict of an attempt) read the index by order and kind and filter the state on the row.
-- The verdict also needs room beside its row: the rows a journal commit inserts fill their
-- page together and are updated in one statement, before their old versions can be pruned
-- (those of earlier batches on the page can be). End to end at 1,500 payments/s with this
-- index (docs/BENCHMARKS.md, session 31): fillfactor 85, 46 % of the verdicts HOT; 70, 93 %;
-- 40, 100 %. 70: most of the gain for 1.4x the table's pages, not 2.5x. Pages written
-- before this keep their room.
-- On a large production table, first, without blocking the executor's writes:
--   CREATE INDEX CONCURRENTLY executor_attempts_charge ON executor_attempts (order_id)
--       WHERE kind = 'CHARGE';
-- and this file then only checks it and drops the old index. An index of that name that is
-- anything else (an invalid one a failed CONCURRENTLY left, another definition) is refused,
-- not taken for it. Built here instead, the index blocks writes to the table while it is
-- built; the DROP that follows waits at most 5 s for the executor's statements, then fails
-- (run the migration again).
SET LOCAL lock_timeout = '5s';
ALTER TABLE executor_attempts SET (fillfactor = 70);
CREATE INDEX IF NOT EXISTS executor_attempts_charge ON executor_attempts (order_id)
    WHERE kind = 'CHARGE';
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1
          FROM pg_index i
          JOIN pg_class c ON c.oid = i.indexrelid
          JOIN pg_am a ON a.oid = c.relam
         WHERE i.indexrelid = to_regclass('executor_attempts_charge')
           AND i.indrelid = to_regclass('executor_attempts')
           AND a.amname = 'btree' AND i.indisvalid AND i.indnatts = 1 AND i.indexprs IS NULL
           AND i.indkey[0] = (SELECT attnum FROM pg_attribute
                               WHERE attrelid = i.indrelid AND attname = 'order_id')
           AND pg_get_expr(i.indpred, i.indrelid) = '(kind = ''CHARGE''::text)') THEN
        RAISE EXCEPTION 'executor_attempts_charge exists but is not a valid B-tree on executor_attempts (order_id) WHERE kind = ''CHARGE'''
            USING HINT = 'drop it (DROP INDEX CONCURRENTLY executor_attempts_charge) and build it again';
    END IF;
END $$;
DROP INDEX IF EXISTS executor_attempts_order;
