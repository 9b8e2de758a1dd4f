-- 953: the functions that run as their owner (SECURITY DEFINER) are owned by two roles that
-- cannot log in, are no superuser and own no table, instead of by the migrations' role (a
-- superuser on the local stack). A superuser's SECURITY DEFINER function is a superuser's
-- door: a flaw in one (a search_path, a query built from its arguments) would give its
-- callers everything, session_replication_role (the ledger's triggers off) and COPY ...
-- PROGRAM included.
--   kasir_definer       the SQL entry points a daemon's role may call (ledger_post,
--                       ledger_account, ledger_settle, ledger_payout_holds,
--                       ledger_adjustment_decide): read and append the journal, move the
--                       chain heads, lock balances, queue entries for publication, decide
--                       adjustments.
--   kasir_ledger_guard  the ledger's trigger functions (ledger_postings_check,
--                       ledger_entry_balanced, ledger_entries_inserted): write balances and
--                       the pending COMMIT checks. Apart from the entry points' owner,
--                       because a function's owner may drop it, and with CASCADE its
--                       triggers: a flaw in an entry point must not switch the checks off.
-- Neither has UPDATE or DELETE on the journal; the append-only and balance guards (owned by
-- the migrations' role) bind them as they bind anyone. An owner may still grant EXECUTE on
-- its functions or change their settings: test 419 checks every such function's callers.
-- The migrations' role is made a member of both, so that it can replace the functions and
-- create their triggers (functions/ sets the owners, after this file); a role that takes
-- over the migrations later needs the same two memberships. Roles are the cluster's: a role
-- of the same name made before is given these attributes, not trusted to have them.
DO $$
DECLARE r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['kasir_definer', 'kasir_ledger_guard'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        END IF;
        -- (only a superuser may even name SUPERUSER, REPLICATION or BYPASSRLS in ALTER ROLE:
        -- those are refused, not set)
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r
                      AND (rolsuper OR rolreplication OR rolbypassrls)) THEN
            RAISE EXCEPTION 'role % exists as a superuser, replication or BYPASSRLS role', r
                USING HINT = 'it would own the ledger''s SECURITY DEFINER functions: drop it '
                             'or take those attributes away first';
        END IF;
        -- nor a role that holds other roles' rights (pg_execute_server_program, a table's
        -- owner) or lends its own to roles but the migrations' and superusers: a member of
        -- the trigger functions' owner may drop them, and their triggers with them
        IF EXISTS (SELECT 1 FROM pg_auth_members WHERE member = r::regrole) THEN
            RAISE EXCEPTION 'role % exists and is a member of another role', r
                USING HINT = 'revoke those memberships first';
        END IF;
        IF EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles u ON u.oid = m.member
                    WHERE m.roleid = r::regrole AND u.rolname <> current_user
                      AND NOT u.rolsuper) THEN
            RAISE EXCEPTION 'role % exists with members other than % and superusers', r,
                current_user
                USING HINT = 'another deployment''s migrations in this cluster? one cluster '
                             'per deployment; else revoke those memberships first';
        END IF;
        EXECUTE format('ALTER ROLE %I NOLOGIN NOCREATEDB NOCREATEROLE', r);
    END LOOP;
END $$;
GRANT kasir_definer, kasir_ledger_guard TO CURRENT_USER;

GRANT SELECT, INSERT ON ledger_entries, ledger_postings, ledger_accounts TO kasir_definer;
GRANT SELECT, INSERT, UPDATE ON ledger_chains TO kasir_definer;
-- approvals and payout holds lock an account's balance stripes (SELECT ... FOR UPDATE needs
-- UPDATE on a column); the balances' guard refuses any write but the postings trigger's
GRANT SELECT, UPDATE (postings) ON ledger_balances TO kasir_definer;
GRANT INSERT ON ledger_unpublished TO kasir_definer;
GRANT SELECT ON ledger_adjustments TO kasir_definer;
GRANT UPDATE (status, decided_key, decided_by, decided_at, decision_note, entry_id)
    ON ledger_adjustments TO kasir_definer;
-- an adjustment's approval reads the asking key's scopes (never its secret or hash); a
-- payout hold reads its payout's seller and amount (never its destination)
GRANT SELECT (key_id, partner_id, scopes, revoked_at) ON api_keys TO kasir_definer;
GRANT SELECT (payout_id, partner_id, seller_id, amount_minor, currency) ON payouts
    TO kasir_definer;

GRANT SELECT ON ledger_entries, ledger_postings, ledger_accounts TO kasir_ledger_guard;
GRANT SELECT, INSERT, UPDATE ON ledger_balances TO kasir_ledger_guard;
-- the per-statement COMMIT checks: written by one trigger, checked and deleted by another
GRANT SELECT, INSERT, DELETE ON ledger_entry_checks TO kasir_ledger_guard;
