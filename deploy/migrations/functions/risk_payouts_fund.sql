-- risk_payouts_fund(ids): the funds of approved payouts, held from their sellers' wallets
-- by the ledger (ledger_payout_holds, docs/LEDGER.md) in the approving transaction, before
-- any command reaches a PSP. Per payout: held / already_held (a replay): send the command;
-- insufficient_funds: the payout is FAILED now with failure_code INSUFFICIENT_FUNDS and no
-- command is sent; not_found: no payouts row (the caller writes it first).
-- Called by kasir-risk (approved payouts) and risk_hold_decide (an approved held payout).
-- Repeatable: re-applied by the migration runner whenever this file changes.
CREATE OR REPLACE FUNCTION risk_payouts_fund(p_ids text[])
RETURNS TABLE (payout_id text, result text, available_minor bigint)
LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT * FROM ledger_payout_holds(p_ids) AS x LOOP
        IF r.result = 'insufficient_funds' THEN
            UPDATE payouts p
               SET status = 'FAILED', failure_code = 'INSUFFICIENT_FUNDS',
                   failure_message = format('the seller''s available balance (%s minor units) '
                                            'is below the payout''s amount (%s)',
                                            r.available_minor, p.amount_minor),
                   updated_at = now()
             WHERE p.payout_id = r.payout_id
               AND kasir_transition_ok('payout', p.status, 'FAILED');
        END IF;
        payout_id := r.payout_id;
        result := r.result;
        available_minor := r.available_minor;
        RETURN NEXT;
    END LOOP;
END $$;
