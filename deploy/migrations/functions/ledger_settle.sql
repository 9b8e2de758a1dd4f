-- ledger_settle(settlement_id, psp, currency, amount_minor, fee_minor): the PSP paid its
-- clearing balance out to Kasir's bank account (called by the recon worker when a
-- settlement is matched). fee_minor: fees the PSP deducted at payout time that no capture
-- carried. Posts bank +amount, psp_fee_expense +fee, psp_clearing -(amount + fee) on the
-- chain 'sql:settlements'. Returns the entry id, NULL when posted before; an amount not
-- positive or a negative fee raises SQLSTATE 22023.
-- Locks: the head of the chain 'sql:settlements' (ledger_post). Runs as its owner.
-- Repeatable: re-applied by the migration runner whenever this file changes.
CREATE OR REPLACE FUNCTION ledger_settle(p_settlement_id text, p_psp text, p_currency text,
                                         p_amount_minor bigint, p_fee_minor bigint DEFAULT 0)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF p_amount_minor <= 0 OR p_fee_minor < 0 THEN
        RAISE EXCEPTION 'ledger: settlement % amounts must be positive', p_settlement_id
            USING ERRCODE = '22023';
    END IF;
    RETURN ledger_post('sql:settlements', 'settlement:' || p_settlement_id, 'settlement',
                       p_settlement_id, NULL, 'settlement:' || p_settlement_id,
                       ARRAY[ledger_account('bank', NULL, NULL, NULL, p_currency),
                             ledger_account('psp_fee_expense', NULL, NULL, p_psp, p_currency),
                             ledger_account('psp_clearing', NULL, NULL, p_psp, p_currency)],
                       ARRAY[p_amount_minor, p_fee_minor, -(p_amount_minor + p_fee_minor)],
                       p_currency);
END $$;
-- runs as its owner: no daemon's role may call it (a settlement posted by hand could hide a
-- shortfall at the PSP); the owner (kasir_definer) and its members (the migrations' role),
-- and the reconciliation worker once it exists
REVOKE EXECUTE ON FUNCTION ledger_settle(text, text, text, bigint, bigint) FROM PUBLIC;
-- owned by kasir_definer (migration 953; the CREATE: deploy/migrations/README.md)
GRANT CREATE ON SCHEMA public TO kasir_definer;
ALTER FUNCTION ledger_settle(text, text, text, bigint, bigint) OWNER TO kasir_definer;
REVOKE CREATE ON SCHEMA public FROM kasir_definer;
