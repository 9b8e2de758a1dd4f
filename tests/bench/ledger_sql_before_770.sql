-- The ledger's checks as they were before migration 770 (session 7), for a side-by-side run:
--   LEDGER_SQL_A=tests/bench/ledger_sql_before_770.sql \
--   LEDGER_SQL_B=tests/bench/ledger_sql_770.sql LEDGER_BIN_B=build/bin/kasir-ledger ...
-- A bench-only file (run as the owner on a bench database, never by the migration runner):
-- a status guard called for every move, a COMMIT check called per entry, full pages.
-- (ledger_post is left as it is: the bench posts through kasir-ledger's batch statement
-- only, and today's body works under either check.)
BEGIN;
DROP TRIGGER IF EXISTS kasir_transitions_changed ON kasir_transitions;
CREATE OR REPLACE TRIGGER payments_transition BEFORE UPDATE OF status ON payments
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION kasir_transition_guard('payment');
CREATE OR REPLACE TRIGGER payment_orders_transition BEFORE UPDATE OF status ON payment_orders
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION kasir_transition_guard('order');
CREATE OR REPLACE TRIGGER payouts_transition BEFORE UPDATE OF status ON payouts
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION kasir_transition_guard('payout');

DROP TRIGGER IF EXISTS ledger_entries_inserted ON ledger_entries;
DROP TRIGGER IF EXISTS ledger_entry_balanced ON ledger_entry_checks;
DROP TRIGGER IF EXISTS ledger_entry_balanced ON ledger_entries;
CREATE OR REPLACE FUNCTION ledger_entry_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM ledger_postings
                    WHERE entry_id = NEW.entry_id AND line = NEW.n_lines) THEN
        RAISE EXCEPTION 'ledger: entry % (%) has 0 postings, expected %', NEW.entry_id,
            NEW.source_key, NEW.n_lines USING ERRCODE = 'KS422';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER ledger_entry_balanced AFTER INSERT ON ledger_entries
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_entry_balanced();

ALTER TABLE payment_orders RESET (fillfactor);
ALTER TABLE ledger_balances RESET (fillfactor);
COMMIT;
