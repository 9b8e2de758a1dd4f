-- 953: the functions that run as their owner (SECURITY DEFINER: the ledger's entry points
-- and its trigger functions) are owned by kasir_definer, a role that cannot log in, is no
-- superuser and owns no table, instead of by the migrations' role (a superuser on the
-- local stack). A superuser's SECURITY DEFINER function is a superuser's door: a flaw in
-- one (a search_path, a query built from its arguments) would give its callers everything,
-- session_replication_role (the ledger's triggers off) and COPY ... PROGRAM included. As
-- kasir_definer they can do what posting needs and nothing else: read and append the
-- journal, move balances, the chain heads, the pending COMMIT checks, the publication queue,
-- decide adjustments; the append-only and balance triggers bind them as they bind anyone
-- (only a table's owner or a superuser can switch a trigger off).
-- The migrations' role is made a member, so that it can still replace the functions and
-- create triggers on them (functions/ sets the owner, after this file).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'kasir_definer') THEN
        CREATE ROLE kasir_definer NOLOGIN;
    END IF;
END $$;
GRANT kasir_definer TO CURRENT_USER;

GRANT SELECT, INSERT ON ledger_entries, ledger_postings, ledger_accounts TO kasir_definer;
GRANT USAGE, SELECT ON SEQUENCE ledger_entries_entry_id_seq TO kasir_definer;
-- balances: the postings' trigger adds to them; approvals and payout holds lock a wallet's
-- (SELECT ... FOR UPDATE needs UPDATE)
GRANT SELECT, INSERT, UPDATE ON ledger_chains, ledger_balances TO kasir_definer;
-- the per-statement COMMIT checks: written by one trigger, checked and deleted by another
GRANT SELECT, INSERT, DELETE ON ledger_entry_checks TO kasir_definer;
GRANT INSERT ON ledger_unpublished TO kasir_definer;
GRANT SELECT, UPDATE ON ledger_adjustments TO kasir_definer;
-- an adjustment's approval reads the asking key's scopes; a payout hold reads its payout
GRANT SELECT ON api_keys, payouts TO kasir_definer;
