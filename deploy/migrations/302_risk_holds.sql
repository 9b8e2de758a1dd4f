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

-- Approves (p_approve) or rejects a held payment or payout, recording who and why.
-- Returns {"outcome": ..., "hold": {...}}:
--   decided   the hold moved now;
--   unchanged the hold had this decision already (a retried request: nothing happens again);
--   conflict  the hold had the other decision (nothing changes);
--   not_found no hold with this id for this partner.
-- An approval writes the hold's PspCommands into kasir_outbox in this transaction, so the
-- commands go out if and only if the approval commits, and once: the row lock and the
-- HELD -> APPROVED move make a second approval "unchanged". The rows get created_at one
-- hour back: no process has them in flight, so the owner's next outbox sweep (every
-- worker.outbox.sweep) relays them instead of waiting worker.outbox.min_age; they carry
-- the deterministic message ids the worker derived when it held the payment.
CREATE FUNCTION risk_hold_decide(p_partner text, p_hold text, p_approve boolean,
                                 p_actor text, p_note text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    h risk_holds%ROWTYPE;
    target text := CASE WHEN p_approve THEN 'APPROVED' ELSE 'REJECTED' END;
BEGIN
    IF coalesce(p_actor, '') = '' OR coalesce(p_note, '') = '' THEN
        RAISE EXCEPTION 'a hold decision needs who (actor) and why (note)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO h FROM risk_holds WHERE hold_id = p_hold AND partner_id = p_partner FOR UPDATE;
    IF NOT FOUND THEN
        RETURN jsonb_build_object('outcome', 'not_found');
    END IF;
    IF h.status <> 'HELD' THEN
        RETURN jsonb_build_object('outcome', CASE WHEN h.status = target THEN 'unchanged'
                                                  ELSE 'conflict' END,
                                  'hold', risk_hold_json(h));
    END IF;
    UPDATE risk_holds SET status = target, decided_at = now(), decided_by = p_actor,
                          decision_note = p_note
     WHERE hold_id = h.hold_id RETURNING * INTO h;
    IF p_approve THEN
        INSERT INTO kasir_outbox (worker, message_id, topic, key, value, headers, created_at)
        SELECT h.outbox_worker, c.message_id, c.topic, c.key, c.value, c.headers,
               now() - interval '1 hour'
          FROM risk_hold_commands c WHERE c.hold_id = h.hold_id ORDER BY c.n;
    END IF;
    -- the read model: an approved payment stays NOT_STARTED and a payout goes back to
    -- REQUESTED, for the executor to move when it records its attempt; a rejection fails
    -- them (moves along kasir_transitions only: a row moved on already is left alone)
    IF h.kind = 'payment' AND NOT p_approve THEN
        UPDATE payments p SET status = 'FAILED', updated_at = now()
         WHERE p.payment_id = h.hold_id AND kasir_transition_ok('payment', p.status, 'FAILED');
        UPDATE payment_orders o SET status = 'FAILED', updated_at = now()
         WHERE o.payment_id = h.hold_id AND kasir_transition_ok('order', o.status, 'FAILED');
    ELSIF h.kind = 'payout' THEN
        UPDATE payouts p SET status = x.s, updated_at = now()
          FROM (SELECT CASE WHEN p_approve THEN 'REQUESTED' ELSE 'FAILED' END AS s) x
         WHERE p.payout_id = h.hold_id AND kasir_transition_ok('payout', p.status, x.s);
    END IF;
    RETURN jsonb_build_object('outcome', 'decided', 'hold', risk_hold_json(h));
END $$;
