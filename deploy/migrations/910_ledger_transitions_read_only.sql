-- 910: kasir_ledger reads the status machine and never changes it. Its rows are the rules
-- every status move is checked against (kasir_transition_guard, kasir_transition_ok); the
-- role had INSERT, UPDATE and DELETE on them from a grant that listed it with the runtime's
-- tables. Only the statement trigger that rebuilds the guards stopped the ledger's role
-- from adding itself a move (it fails for want of the TRIGGER privilege on payments), an
-- accident, not a rule; changes to the status machine are migrations, run by the owner.
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON kasir_transitions FROM kasir_ledger;
