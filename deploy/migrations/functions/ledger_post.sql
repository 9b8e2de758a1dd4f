-- ledger_post(): posts one balanced entry (signed amounts: > 0 debit, < 0 credit; zero
-- lines dropped) on p_chain, for the ledger's SQL entry points (payout holds, settlements,
-- adjustments). Returns the entry id, or NULL when p_source_key was posted before.
-- The entry is queued in ledger_unpublished: kasir-ledger publishes it on
-- kasir.ledger.entries. Runs as its owner; no one else may call it.
-- Repeatable: re-applied by the migration runner whenever this file changes.
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
    -- the entry and its postings in one statement: the COMMIT check then holds at the end of
    -- it too, so a caller running with SET CONSTRAINTS ALL IMMEDIATE (the worker runtime's
    -- one-message-at-a-time pass) can post
    WITH e AS (
        INSERT INTO ledger_entries (chain, seq, source_key, kind, journal_id, partner_id,
                                    reference, n_lines, prev_hash, hash)
        VALUES (p_chain, h.last_seq + 1, p_source_key, p_kind, p_journal, p_partner, p_reference,
                n, h.last_hash, hash)
        RETURNING entry_id),
    p AS (
        INSERT INTO ledger_postings (entry_id, line, account, amount_minor, currency, chain)
        SELECT e.entry_id, row_number() OVER (ORDER BY x.k), x.a, x.v, p_currency, p_chain
          FROM e, unnest(p_accounts, p_amounts) WITH ORDINALITY AS x(a, v, k) WHERE x.v <> 0)
    SELECT e.entry_id INTO id FROM e;
    UPDATE ledger_chains SET last_seq = h.last_seq + 1, last_hash = hash, updated_at = now()
     WHERE chain = p_chain;
    INSERT INTO ledger_unpublished (entry_id) VALUES (id);
    RETURN id;
END $$;
REVOKE EXECUTE ON FUNCTION ledger_post(text, text, text, text, text, text, text[], bigint[], text) FROM PUBLIC;
-- owned by kasir_definer (migration 953; the CREATE: deploy/migrations/README.md)
GRANT CREATE ON SCHEMA public TO kasir_definer;
ALTER FUNCTION ledger_post(text, text, text, text, text, text, text[], bigint[], text) OWNER TO kasir_definer;
REVOKE CREATE ON SCHEMA public FROM kasir_definer;
