-- 302: what an admin does with held payments and payouts. The ingress's admin endpoints
-- and `kasir-risk holds` call these; every lookup is scoped to the caller's partner, so
-- another partner's hold is "not_found" (SPEC 4: another partner's id is a 404).

-- A hold as the admin API shows it.
CREATE FUNCTION risk_hold_json(h risk_holds) RETURNS jsonb LANGUAGE sql STABLE AS $$
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

-- The partner's holds, oldest first; p_status NULL lists every status. Keyset paging:
-- p_after is the last hold_id of the previous page (NULL for the first).
CREATE FUNCTION risk_holds_list(p_partner text, p_status text, p_limit integer, p_after text)
RETURNS SETOF jsonb LANGUAGE sql STABLE AS $$
    SELECT risk_hold_json(h) FROM risk_holds h
     WHERE h.partner_id = p_partner
       AND (p_status IS NULL OR h.status = p_status)
       AND (p_after IS NULL OR (h.held_at, h.hold_id) >
            (SELECT a.held_at, a.hold_id FROM risk_holds a
              WHERE a.hold_id = p_after AND a.partner_id = p_partner))
     ORDER BY h.held_at, h.hold_id
     LIMIT least(greatest(coalesce(p_limit, 100), 1), 1000)
$$;

-- risk_hold_decide(): its one definition is deploy/migrations/functions/risk_hold_decide.sql
