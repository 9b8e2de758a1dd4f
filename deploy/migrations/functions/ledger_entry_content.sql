-- ledger_entry_content(chain, seq, source_key, kind, journal_id, partner_id, reference,
-- lines): the text hashed for an entry: "kasir-ledger-v1|", every field length-prefixed by
-- ledger_field (so no two entries share a text), then its lines (ledger_line_text, in line
-- order). The entry's hash is sha256(prev_hash || convert_to(content, 'UTF8')); kasir-ledger
-- verify recomputes it. Called by ledger_post and kasir-ledger's batch statement.
-- Immutable; locks: none.
-- Repeatable: re-applied by the migration runner whenever this file changes.
-- after: ledger_field
CREATE OR REPLACE FUNCTION ledger_entry_content(chain text, seq bigint, source_key text, kind text,
                                                journal_id text, partner_id text, reference text,
                                                lines text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT 'kasir-ledger-v1|' || ledger_field(chain) || ledger_field(seq::text) ||
           ledger_field(source_key) || ledger_field(kind) || ledger_field(journal_id) ||
           ledger_field(partner_id) || ledger_field(reference) || lines
$$;
