-- ledger_chain(head, content): the running hash chain over entries, as a window aggregate:
--   ledger_chain(last_hash_of_chain, content) OVER (PARTITION BY chain ORDER BY seq)
-- gives each entry's hash in one set-based pass (kasir-ledger's batch statement). Its state
-- function is ledger_chain_step. Locks: none.
-- Repeatable: re-applied by the migration runner whenever this file changes.
-- after: ledger_chain_step
CREATE OR REPLACE AGGREGATE ledger_chain(bytea, text) (SFUNC = ledger_chain_step, STYPE = bytea);
