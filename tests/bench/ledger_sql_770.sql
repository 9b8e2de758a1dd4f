-- The ledger's checks as migration 770 and its functions make them: the B side of
--   LEDGER_SQL_A=tests/bench/ledger_sql_before_770.sql LEDGER_SQL_B=tests/bench/ledger_sql_770.sql
-- (bench-only: the functions' own files, re-run, and 770's table settings).
BEGIN;
ALTER TABLE payment_orders SET (fillfactor = 80);
ALTER TABLE ledger_balances SET (fillfactor = 50);
\ir ../../deploy/migrations/functions/kasir_transition_guard.sql
\ir ../../deploy/migrations/functions/kasir_transition_triggers.sql
\ir ../../deploy/migrations/functions/ledger_entries_inserted.sql
\ir ../../deploy/migrations/functions/ledger_entry_balanced.sql
\ir ../../deploy/migrations/functions/ledger_entry_checks_guard.sql
COMMIT;
