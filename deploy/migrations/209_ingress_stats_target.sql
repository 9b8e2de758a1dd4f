-- 209: a cheaper ANALYZE of the three tables the ingress writes on every payment.
--
-- At 5,000 payments/s these tables cross autovacuum's analyze threshold every minute.
-- ANALYZE samples 300 x the largest statistics target rows (30,000 with the default of
-- 100), which on idempotency_keys means reading nearly every page of the table: ~0.75 s of
-- a core for the three, on a 2-core machine already ~75 % busy, and the request tail grew
-- for the seconds it ran (docs/BENCHMARKS.md, session 4). Every query of the hot path and of
-- the read endpoints goes through a unique index on id columns, so a coarse sample plans
-- them the same; a target of 10 samples 3,000 rows and the three take ~55 ms.
-- Raise a column's target again if a later query filters on it by range or by a skewed
-- value (ALTER TABLE ... ALTER COLUMN ... SET STATISTICS).

DO $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT table_name, column_name FROM information_schema.columns
              WHERE table_schema = current_schema()
                AND table_name IN ('idempotency_keys', 'payments', 'payment_orders') LOOP
        EXECUTE format('ALTER TABLE %I ALTER COLUMN %I SET STATISTICS 10',
                       c.table_name, c.column_name);
    END LOOP;
END $$;
