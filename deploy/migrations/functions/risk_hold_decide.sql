-- risk_hold_decide(): what an admin does with a held payment or payout (830_risk.sql).
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
-- An approved payout's funds are held from the seller's wallet first (risk_payouts_fund):
-- when the wallet cannot cover it, the approval is recorded, the payout is FAILED
-- (INSUFFICIENT_FUNDS) and no command is released; the hold in the answer then says
-- "payout_refused": "INSUFFICIENT_FUNDS".
-- Repeatable: re-applied by the migration runner whenever this file changes.
CREATE OR REPLACE FUNCTION risk_hold_decide(p_partner text, p_hold text, p_approve boolean,
                                 p_actor text, p_note text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    h risk_holds%ROWTYPE;
    target text := CASE WHEN p_approve THEN 'APPROVED' ELSE 'REJECTED' END;
    funds text;
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
    IF p_approve AND h.kind = 'payout' THEN
        SELECT f.result INTO funds FROM risk_payouts_fund(ARRAY[h.hold_id]) f;
    END IF;
    IF p_approve AND coalesce(funds, 'held') IN ('held', 'already_held') THEN
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
         WHERE p.payout_id = h.hold_id AND funds IS DISTINCT FROM 'insufficient_funds'
           AND kasir_transition_ok('payout', p.status, x.s);
    END IF;
    RETURN jsonb_build_object('outcome', 'decided', 'hold',
                              risk_hold_json(h) || CASE WHEN funds = 'insufficient_funds'
                                  THEN '{"payout_refused": "INSUFFICIENT_FUNDS"}'::jsonb
                                  ELSE '{}'::jsonb END);
END $$;
