-- ledger_entries_inserted(): the AFTER INSERT statement trigger of ledger_entries (below).
-- Queues the statement's entries for the COMMIT check: one row of ledger_entry_checks (their
-- ids and n_lines), which ledger_entry_balanced() checks and deletes at COMMIT. One call and
-- one row per statement, whatever its size, where a row trigger costs a call per entry.
-- Runs as its owner: no writer has any right on ledger_entry_checks. Locks: none.
-- Repeatable: re-applied by the migration runner whenever this file changes.
CREATE OR REPLACE FUNCTION ledger_entries_inserted() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    INSERT INTO ledger_entry_checks (entry_ids, n_lines)
    SELECT array_agg(entry_id), array_agg(n_lines) FROM new_entries HAVING count(*) > 0;
    RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER ledger_entries_inserted AFTER INSERT ON ledger_entries
    REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_inserted();
-- a trigger function that runs as its owner: no one may attach it to a table of their own
-- (a temporary table firing it would move balances with no postings behind them); the
-- ledger's own triggers fire it whatever this says
REVOKE EXECUTE ON FUNCTION ledger_entries_inserted() FROM PUBLIC;
-- owned by kasir_ledger_guard (migration 953; the CREATE: deploy/migrations/README.md)
GRANT CREATE ON SCHEMA public TO kasir_ledger_guard;
ALTER FUNCTION ledger_entries_inserted() OWNER TO kasir_ledger_guard;
REVOKE CREATE ON SCHEMA public FROM kasir_ledger_guard;
