-- ledger_account(type, partner, seller, psp, currency): the code of the account
-- (ledger_account_code), created first when it does not exist (normal side D for
-- psp_clearing, psp_fee_expense and bank, C for the others). Runs as its owner; kasir_ledger
-- and the other SQL entry points may call it, no one else.
-- Locks: none beyond its insert (a concurrent insert of the same account waits for the
-- other transaction, then does nothing).
-- Repeatable: re-applied by the migration runner whenever this file changes.
CREATE OR REPLACE FUNCTION ledger_account(p_type text, p_partner text, p_seller text, p_psp text,
                                          p_currency text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    code text := ledger_account_code(p_type, p_partner, p_seller, p_psp, p_currency);
BEGIN
    INSERT INTO ledger_accounts (account, type, currency, normal_side, partner_id, seller_id, psp)
    VALUES (code, p_type, p_currency,
            CASE WHEN p_type IN ('psp_clearing', 'psp_fee_expense', 'bank') THEN 'D' ELSE 'C' END,
            p_partner, p_seller, p_psp)
    ON CONFLICT DO NOTHING;
    RETURN code;
END $$;
REVOKE EXECUTE ON FUNCTION ledger_account(text, text, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ledger_account(text, text, text, text, text) TO kasir_ledger;
-- owned by kasir_definer (migration 953; the CREATE: deploy/migrations/README.md)
GRANT CREATE ON SCHEMA public TO kasir_definer;
ALTER FUNCTION ledger_account(text, text, text, text, text) OWNER TO kasir_definer;
REVOKE CREATE ON SCHEMA public FROM kasir_definer;
