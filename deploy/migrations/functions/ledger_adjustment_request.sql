-- ledger_adjustment_request(): records a manual adjustment request (nothing is posted: a
-- different API key of the partner must approve it, ledger_adjustment_decide). With an
-- idempotency key, the same request again returns the first one ("replay"); the same key
-- with other values is a "mismatch". Returns {"outcome": created|replay|mismatch,
-- "adjustment": {...}}.
-- Repeatable: re-applied by the migration runner whenever this file changes.
CREATE OR REPLACE FUNCTION ledger_adjustment_request(
    p_partner text, p_key text, p_actor text, p_idem text, p_seller text, p_currency text,
    p_amount bigint, p_counter text, p_psp text, p_reason text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    a ledger_adjustments%ROWTYPE;
BEGIN
    IF p_idem IS NOT NULL THEN
        SELECT * INTO a FROM ledger_adjustments
         WHERE partner_id = p_partner AND idempotency_key = p_idem;
        IF FOUND THEN
            RETURN jsonb_build_object(
                'outcome', CASE WHEN (a.seller_id, a.currency, a.amount_minor, a.counter,
                                      coalesce(a.psp, ''), a.reason)
                                  = (p_seller, p_currency, p_amount, p_counter,
                                     coalesce(p_psp, ''), p_reason)
                                THEN 'replay' ELSE 'mismatch' END,
                'adjustment', ledger_adjustment_json(a));
        END IF;
    END IF;
    INSERT INTO ledger_adjustments (adjustment_id, partner_id, idempotency_key, seller_id,
                                    currency, amount_minor, counter, psp, reason,
                                    requested_key, requested_by)
    VALUES ('adj_' || replace(gen_random_uuid()::text, '-', ''), p_partner, p_idem, p_seller,
            p_currency, p_amount, p_counter, p_psp, p_reason, p_key, p_actor)
    ON CONFLICT (partner_id, idempotency_key) DO NOTHING
    RETURNING * INTO a;
    IF NOT FOUND THEN -- a concurrent request with the same key won
        RETURN ledger_adjustment_request(p_partner, p_key, p_actor, p_idem, p_seller,
                                         p_currency, p_amount, p_counter, p_psp, p_reason);
    END IF;
    RETURN jsonb_build_object('outcome', 'created', 'adjustment', ledger_adjustment_json(a));
END $$;
