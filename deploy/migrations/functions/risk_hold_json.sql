-- risk_hold_json(h): a hold as the admin API shows it: ids, amounts per currency, reasons
-- and rules, status, decision; absent fields dropped; times in UTC with microseconds.
-- Called by risk_holds_list and risk_hold_decide. Stable; locks: none.
-- Repeatable: re-applied by the migration runner whenever this file changes.
CREATE OR REPLACE FUNCTION risk_hold_json(h risk_holds) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object(
        'hold_id', h.hold_id,
        'kind', h.kind,
        'payment_id', CASE WHEN h.kind = 'payment' THEN h.hold_id END,
        'payout_id', CASE WHEN h.kind = 'payout' THEN h.hold_id END,
        'checkout_id', h.checkout_id,
        'buyer_id', CASE WHEN h.kind = 'payment' THEN h.party_id END,
        'seller_id', CASE WHEN h.kind = 'payout' THEN h.party_id END,
        'amounts', (SELECT jsonb_agg(jsonb_build_object('currency', c, 'amount_minor', a)
                                     ORDER BY c)
                      FROM unnest(h.currencies, h.amounts) AS x(c, a)),
        'reasons', to_jsonb(h.reasons),
        'rules', to_jsonb(h.rules),
        'status', h.status,
        'held_at', to_char(h.held_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'decided_at', to_char(h.decided_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'decided_by', h.decided_by,
        'decision_note', h.decision_note))
$$;
