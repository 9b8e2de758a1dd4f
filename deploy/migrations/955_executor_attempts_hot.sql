-- 955: an attempt's verdict is a HOT update. kasir-executor inserts each attempt ('sent')
-- in its journal and updates it once with its verdict ('resolved') tens of milliseconds
-- later. The order index of 850 had state = 'resolved' in its predicate, and a column a
-- predicate reads counts as indexed: every verdict was a new row version with a new entry
-- in each of the table's indexes (random keys: dirty leaf pages, WAL, and vacuum of the
-- dead entries), 0 % HOT. That index is dropped: a charge's object_id is its order_id, so
-- a refund's look-up of its order's capture reads executor_attempts_object (object_id,
-- kind) and filters the state on the row (consumers/executor/main.c, SQL_REFUND; an
-- executor older than this migration looks it up by order_id, which no index serves now:
-- deploy the executor first). The verdict also needs room beside its row: the rows a
-- journal commit inserts fill their page together and are updated in one statement,
-- before their old versions can be pruned (those of earlier batches on the page can be).
-- End to end (docs/BENCHMARKS.md, session 31), at 1,500 payments/s on a table whose
-- vacuumed old pages had room: fillfactor 85, 46 % of the verdicts HOT; 70, 93 %; 40,
-- 100 %; at 2,500/s on a fresh table, where a batch's 100-200 attempts fill new pages
-- together, 70 gave 39-51 %. 70: some of it for 1.4x the table's pages, not 2.5x. Pages
-- written before this keep their room.
-- The DROP takes an ACCESS EXCLUSIVE lock on executor_attempts. With kasir-executor
-- running it can wait on a batch that waits on it (the batch's look-up holds a read lock
-- while its journal's insert, on its second connection, queues behind the DROP): it then
-- fails after 5 s and nothing is changed. On a running system drop the index first,
-- without that lock:
--   DROP INDEX CONCURRENTLY IF EXISTS executor_attempts_order;
-- and this file takes no lock for it; or run it with the executors stopped.
SET LOCAL lock_timeout = '5s';
ALTER TABLE executor_attempts SET (fillfactor = 70);
DROP INDEX IF EXISTS executor_attempts_order;
