-- ledger_entry_balanced(): the constraint trigger on ledger_entry_checks (DEFERRABLE
-- INITIALLY DEFERRED, one call per INSERT statement into ledger_entries, whose trigger
-- ledger_entries_inserted() wrote the row): at COMMIT, or at SET CONSTRAINTS ...
-- IMMEDIATE, every entry the statement inserted has its postings; else the commit fails
-- (KS422, 'ledger: entry <id> (<source key>) has 0 postings, expected <n_lines>', the first
-- such entry). Then the row is deleted: it lives only inside its transaction.
-- Why a probe of each entry's last line is enough: the statement trigger on ledger_postings
-- (ledger_postings_check) refuses any INSERT that does not bring, for every entry it touches,
-- all of lines 1..n_lines on the entry's chain, balanced per currency; so a posting with
-- line n_lines exists only if a statement wrote the whole balanced entry, and no later
-- statement can add a line to it (a line above n_lines is refused, the others are taken).
-- One query per statement: an index probe per entry, no call per entry.
-- Runs as its owner (it deletes the checked row). Locks: none.
-- Repeatable: re-applied by the migration runner whenever this file changes.
CREATE OR REPLACE FUNCTION ledger_entry_balanced() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    bad bigint;
    e record;
BEGIN
    SELECT x.id INTO bad
      FROM unnest(NEW.entry_ids, NEW.n_lines) AS x(id, n)
     WHERE NOT EXISTS (SELECT 1 FROM ledger_postings p WHERE p.entry_id = x.id AND p.line = x.n)
     LIMIT 1;
    IF FOUND THEN
        SELECT entry_id, source_key, n_lines INTO e FROM ledger_entries WHERE entry_id = bad;
        RAISE EXCEPTION 'ledger: entry % (%) has 0 postings, expected %', e.entry_id,
            e.source_key, e.n_lines USING ERRCODE = 'KS422';
    END IF;
    DELETE FROM ledger_entry_checks WHERE check_id = NEW.check_id;
    RETURN NULL;
END $$;

-- a constraint trigger cannot be replaced in place (no CREATE OR REPLACE): dropped and made
DROP TRIGGER IF EXISTS ledger_entry_balanced ON ledger_entry_checks;
CREATE CONSTRAINT TRIGGER ledger_entry_balanced AFTER INSERT ON ledger_entry_checks
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_entry_balanced();
-- a trigger function that runs as its owner: no one may attach it to a table of their own
-- (a temporary table firing it would move balances with no postings behind them); the
-- ledger's own triggers fire it whatever this says
REVOKE EXECUTE ON FUNCTION ledger_entry_balanced() FROM PUBLIC;
-- owned by kasir_ledger_guard (migration 953; the CREATE: deploy/migrations/README.md)
GRANT CREATE ON SCHEMA public TO kasir_ledger_guard;
ALTER FUNCTION ledger_entry_balanced() OWNER TO kasir_ledger_guard;
REVOKE CREATE ON SCHEMA public FROM kasir_ledger_guard;
