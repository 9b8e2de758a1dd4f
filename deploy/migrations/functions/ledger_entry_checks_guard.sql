-- ledger_entry_checks_guard(): a row of ledger_entry_checks (840_ledger.sql) is written by
-- ledger_entries_inserted() and removed by ledger_entry_balanced() once it checked it, both
-- trigger functions; any other UPDATE, DELETE or TRUNCATE (the owner's, by hand: no other
-- role has a right on the table) is refused, so no pending COMMIT check can be taken away.
-- Locks: none.
-- Repeatable: re-applied by the migration runner whenever this file changes.
CREATE OR REPLACE FUNCTION ledger_entry_checks_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- the check's own DELETE runs inside its trigger (depth 1), so this fires at depth 2
    IF TG_OP <> 'DELETE' OR pg_trigger_depth() < 2 THEN
        RAISE EXCEPTION 'ledger: pending COMMIT checks are removed only by the check (% refused)', TG_OP
            USING ERRCODE = 'KS403';
    END IF;
    RETURN OLD;
END $$;

CREATE OR REPLACE TRIGGER ledger_entry_checks_guard BEFORE UPDATE OR DELETE ON ledger_entry_checks
    FOR EACH ROW EXECUTE FUNCTION ledger_entry_checks_guard();
CREATE OR REPLACE TRIGGER ledger_entry_checks_no_truncate BEFORE TRUNCATE ON ledger_entry_checks
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_entry_checks_guard();
