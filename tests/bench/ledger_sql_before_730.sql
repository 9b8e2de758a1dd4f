-- The ledger's checks as they were before migration 730 (session 7), for a side-by-side run:
--   LEDGER_SQL_A=tests/bench/ledger_sql_before_730.sql \
--   LEDGER_SQL_B=tests/bench/ledger_sql_730.sql LEDGER_BIN_B=build/bin/kasir-ledger ...
-- A bench-only file (run as the owner on a bench database, never by the migration runner):
-- a status guard called for every move, a COMMIT check called per entry, full pages, and
-- ledger_post writing the entry and its postings in two statements.
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
CREATE OR REPLACE FUNCTION ledger_post(p_chain text, p_source_key text, p_kind text,
                                       p_journal text, p_partner text, p_reference text,
                                       p_accounts text[], p_amounts bigint[], p_currency text)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    h ledger_chains%ROWTYPE;
    lines text;
    n integer;
    id bigint;
    hash bytea;
BEGIN
    IF EXISTS (SELECT 1 FROM ledger_entries WHERE source_key = p_source_key) THEN
        RETURN NULL;
    END IF;
    INSERT INTO ledger_chains (chain) VALUES (p_chain) ON CONFLICT DO NOTHING;
    SELECT * INTO h FROM ledger_chains WHERE chain = p_chain FOR UPDATE;
    SELECT string_agg(ledger_line_text(a, v, p_currency), '' ORDER BY k), count(*)
      INTO lines, n
      FROM unnest(p_accounts, p_amounts) WITH ORDINALITY AS x(a, v, k) WHERE v <> 0;
    hash := sha256(h.last_hash || convert_to(ledger_entry_content(p_chain, h.last_seq + 1,
                   p_source_key, p_kind, p_journal, p_partner, p_reference, lines), 'UTF8'));
    INSERT INTO ledger_entries (chain, seq, source_key, kind, journal_id, partner_id, reference,
                                n_lines, prev_hash, hash)
    VALUES (p_chain, h.last_seq + 1, p_source_key, p_kind, p_journal, p_partner, p_reference,
            n, h.last_hash, hash)
    RETURNING entry_id INTO id;
    INSERT INTO ledger_postings (entry_id, line, account, amount_minor, currency, chain)
    SELECT id, row_number() OVER (ORDER BY k), a, v, p_currency, p_chain
      FROM unnest(p_accounts, p_amounts) WITH ORDINALITY AS x(a, v, k) WHERE v <> 0;
    UPDATE ledger_chains SET last_seq = h.last_seq + 1, last_hash = hash, updated_at = now()
     WHERE chain = p_chain;
    INSERT INTO ledger_unpublished (entry_id) VALUES (id);
    RETURN id;
END $$;
REVOKE EXECUTE ON FUNCTION ledger_post(text, text, text, text, text, text, text[], bigint[], text) FROM PUBLIC;
COMMIT;
