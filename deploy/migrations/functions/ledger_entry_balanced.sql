-- ledger_entry_balanced(): the constraint trigger on ledger_entries (migration 400,
-- DEFERRABLE INITIALLY DEFERRED, one call per entry inserted): at COMMIT, or at
-- SET CONSTRAINTS ... IMMEDIATE, the entry has postings; else the commit fails (KS422).
-- Why a probe of the entry's last line is enough: the statement trigger on ledger_postings
-- (ledger_postings_check) refuses any INSERT that does not bring, for every entry it touches,
-- all of lines 1..n_lines on the entry's chain, balanced per currency; so a posting with
-- line n_lines exists only if a statement wrote the whole balanced entry, and no later
-- statement can add a line to it (a line above n_lines is refused, the others are taken).
-- The probe reads one index entry where a recount read every posting of the entry.
-- Repeatable: re-applied by the migration runner whenever this file changes.
CREATE OR REPLACE FUNCTION ledger_entry_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM ledger_postings
                    WHERE entry_id = NEW.entry_id AND line = NEW.n_lines) THEN
        RAISE EXCEPTION 'ledger: entry % (%) has 0 postings, expected %', NEW.entry_id,
            NEW.source_key, NEW.n_lines USING ERRCODE = 'KS422';
    END IF;
    RETURN NULL;
END $$;
