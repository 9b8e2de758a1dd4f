-- 930: room for both status updates of a payment and of its order on their own page.
-- Each row is updated twice after its insert (EXECUTING by kasir-executor, a final status by
-- kasir-ledger), usually before the first update's old version can be pruned, so a page
-- needs room for two more versions of its rows for both updates to stay HOT (no new index
-- entries, no new page). At fillfactor 80 most did not; 50 leaves room for one more version
-- of every row and, once pruned, for the next. Pages written before this keep their room;
-- new rows fill new pages to 50 % (figures: docs/BENCHMARKS.md, "End to end").
ALTER TABLE payments SET (fillfactor = 50);
ALTER TABLE payment_orders SET (fillfactor = 50);
