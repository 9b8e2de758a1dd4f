-- ledger_chain_step(state, head, content): the state function of the aggregate ledger_chain:
-- sha256 of the previous entry's hash (state; head, the chain's last hash, for the first
-- row of the window) and the entry's content. Immutable; locks: none.
-- (plpgsql: an aggregate cannot inline a SQL function, and a SQL function called through
-- the function manager sets up an executor per row)
-- Repeatable: re-applied by the migration runner whenever this file changes.
CREATE OR REPLACE FUNCTION ledger_chain_step(state bytea, head bytea, content text) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS
$$ BEGIN RETURN sha256(coalesce(state, head) || convert_to(content, 'UTF8')); END $$;
