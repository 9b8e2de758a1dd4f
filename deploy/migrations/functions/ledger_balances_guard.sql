-- ledger_balances_guard(): the trigger of ledger_balances (BEFORE INSERT OR UPDATE OR DELETE
-- per row, BEFORE TRUNCATE per statement; below): a balance changes only
-- with its postings, from inside ledger_postings_check (trigger depth 2 or more), and is
-- never deleted or truncated; anything else raises SQLSTATE KS403. Locks: none.
-- Repeatable: re-applied by the migration runner whenever this file changes.
CREATE OR REPLACE FUNCTION ledger_balances_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' OR TG_OP = 'DELETE' OR pg_trigger_depth() < 2 THEN
        RAISE EXCEPTION 'ledger: balances change only with their postings (% refused)', TG_OP
            USING ERRCODE = 'KS403';
    END IF;
    RETURN NEW;
END $$;

CREATE OR REPLACE TRIGGER ledger_balances_guard BEFORE INSERT OR UPDATE OR DELETE ON ledger_balances
    FOR EACH ROW EXECUTE FUNCTION ledger_balances_guard();
CREATE OR REPLACE TRIGGER ledger_balances_no_truncate BEFORE TRUNCATE ON ledger_balances
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_balances_guard();
