-- ledger_payout_holds(payout_ids): holds the funds of payouts: called by the worker that
-- approves payouts (risk, through risk_payouts_fund), in the transaction that approves them
-- and before any command reaches a PSP. One row per payout, in wallet order
-- (partner, seller, currency, id):
--   held               funds moved from the seller's wallet to its payout_hold account
--                      (an entry on the chain 'sql:payout_holds', by ledger_post);
--   already_held       the hold was posted before (a replay): go on as for held;
--   insufficient_funds the wallet's balance (all stripes, locked) is below the amount:
--                      nothing posted; the caller fails the payout (INSUFFICIENT_FUNDS);
--   not_found          no such payout row.
-- available_minor: the wallet's balance when it was read, else NULL.
-- The caller owns the payout's status; kasir-ledger moves it to PAID_OUT or FAILED on the
-- PSP's result and pays the hold out or releases it.
-- Locks: every balance stripe of each wallet (FOR UPDATE, in chain order: no credit or
-- debit of the wallet commits meanwhile), and the head of the chain 'sql:payout_holds'.
-- Runs as its owner.
-- Repeatable: re-applied by the migration runner whenever this file changes.
CREATE OR REPLACE FUNCTION ledger_payout_holds(p_payout_ids text[])
RETURNS TABLE (payout_id text, result text, available_minor bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    p record;
    wallet text;
    hold text;
    avail bigint;
BEGIN
    FOR p IN SELECT x.id, po.partner_id, po.seller_id, po.amount_minor, po.currency
               FROM unnest(p_payout_ids) AS x(id)
               LEFT JOIN payouts po ON po.payout_id = x.id
              ORDER BY po.partner_id, po.seller_id, po.currency, x.id LOOP
        payout_id := p.id;
        available_minor := NULL;
        IF p.partner_id IS NULL THEN
            result := 'not_found';
            RETURN NEXT;
            CONTINUE;
        END IF;
        IF EXISTS (SELECT 1 FROM ledger_entries WHERE source_key = 'payout_hold:' || p.id) THEN
            result := 'already_held';
            RETURN NEXT;
            CONTINUE;
        END IF;
        wallet := ledger_account('seller_wallet', p.partner_id, p.seller_id, NULL, p.currency);
        hold := ledger_account('payout_hold', p.partner_id, p.seller_id, NULL, p.currency);
        -- every stripe locked: no credit or debit of this wallet commits meanwhile
        PERFORM 1 FROM ledger_balances WHERE account = wallet ORDER BY chain FOR UPDATE;
        -- looked at again under the locks: a concurrent hold of the same payout (another
        -- instance, a zombie) committed while this one waited for them, and the balance
        -- read now is after it (an 'insufficient_funds' here failed a payout whose hold
        -- stood and whose command was on its way)
        IF EXISTS (SELECT 1 FROM ledger_entries WHERE source_key = 'payout_hold:' || p.id) THEN
            result := 'already_held';
            RETURN NEXT;
            CONTINUE;
        END IF;
        SELECT -coalesce(sum(balance_minor), 0) INTO avail FROM ledger_balances WHERE account = wallet;
        available_minor := avail;
        IF avail < p.amount_minor THEN
            result := 'insufficient_funds';
            RETURN NEXT;
            CONTINUE;
        END IF;
        PERFORM ledger_post('sql:payout_holds', 'payout_hold:' || p.id, 'payout_hold', p.id,
                            p.partner_id, 'payout:' || p.id, ARRAY[wallet, hold],
                            ARRAY[p.amount_minor, -p.amount_minor], p.currency);
        result := 'held';
        RETURN NEXT;
    END LOOP;
END $$;
-- runs as its owner: only the roles that approve payouts call it (kasir-risk through
-- risk_payouts_fund, the ingress's hold decisions through risk_hold_decide)
REVOKE EXECUTE ON FUNCTION ledger_payout_holds(text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ledger_payout_holds(text[]) TO kasir_risk, kasir_ingress;
-- owned by kasir_definer (migration 953; the CREATE: deploy/migrations/README.md)
GRANT CREATE ON SCHEMA public TO kasir_definer;
ALTER FUNCTION ledger_payout_holds(text[]) OWNER TO kasir_definer;
REVOKE CREATE ON SCHEMA public FROM kasir_definer;
