-- ledger_line_text(account, amount, currency): one posting line of an entry's hashed text,
-- its account, signed amount and currency, each through ledger_field (docs/LEDGER.md, "The
-- hash chain"; consumers/ledger/verify.c computes the same in C). Called by ledger_post and
-- kasir-ledger's batch statement. Immutable; locks: none.
-- Repeatable: re-applied by the migration runner whenever this file changes.
-- after: ledger_field
CREATE OR REPLACE FUNCTION ledger_line_text(account text, amount bigint, currency text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT ledger_field(account) || ledger_field(amount::text) || ledger_field(currency) $$;
