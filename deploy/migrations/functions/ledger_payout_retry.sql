-- ledger_payout_retry(): a new attempt of the partner's FAILED payout whose failure_code is
-- in ledger_payout_retriable. The attempt is a new payout, <root>_r<n> (n = 1, 2, ... over
-- the retries of one original), copied from the failed one, PENDING_PUBLISH until the
-- ingress has published its PayoutRequested: risk then decides it and the ledger checks
-- the seller's funds again, like any payout. One retry per failed payout: asking again
-- returns the same attempt ("replay"; the caller publishes again while it is still
-- PENDING_PUBLISH, the message id being derived from its id).
-- Returns {"outcome": created|replay|not_found|not_failed|not_retriable, "payout": {...}
-- (the new attempt: the event's fields), "retry_of", "failure_code"}.
-- Repeatable: re-applied by the migration runner whenever this file changes.
CREATE OR REPLACE FUNCTION ledger_payout_retry(p_partner text, p_payout text, p_actor text,
                                               p_reason text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    f payouts%ROWTYPE;
    n payouts%ROWTYPE;
    prev ledger_payout_retries%ROWTYPE;
    root text;
    attempt integer := 1;
BEGIN
    IF coalesce(p_actor, '') = '' OR coalesce(p_reason, '') = '' THEN
        RAISE EXCEPTION 'a payout retry needs who (actor) and why (reason)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO f FROM payouts
     WHERE payout_id = p_payout AND partner_id = p_partner AND status <> 'PENDING_PUBLISH'
       FOR UPDATE;
    IF NOT FOUND THEN
        RETURN jsonb_build_object('outcome', 'not_found');
    END IF;
    SELECT p.* INTO n FROM ledger_payout_retries r JOIN payouts p ON p.payout_id = r.payout_id
     WHERE r.retry_of = f.payout_id;
    IF FOUND THEN
        RETURN jsonb_build_object('outcome', 'replay', 'payout', to_jsonb(n),
                                  'retry_of', f.payout_id, 'failure_code', f.failure_code);
    END IF;
    IF f.status <> 'FAILED' THEN
        RETURN jsonb_build_object('outcome', 'not_failed', 'status', f.status);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM ledger_payout_retriable WHERE failure_code = f.failure_code) THEN
        RETURN jsonb_build_object('outcome', 'not_retriable',
                                  'failure_code', coalesce(f.failure_code, 'unknown'));
    END IF;
    -- the root of a chain of retries, and this attempt's number in it
    root := f.payout_id;
    SELECT * INTO prev FROM ledger_payout_retries WHERE payout_id = f.payout_id;
    IF FOUND THEN
        root := substring(f.payout_id FROM '^(.*)_r[0-9]+$');
        attempt := substring(f.payout_id FROM '_r([0-9]+)$')::integer + 1;
    END IF;
    INSERT INTO payouts (payout_id, partner_id, seller_id, amount_minor, currency, channel,
                         bank_code, ewallet_channel, destination_account, account_holder,
                         description, status)
    VALUES (root || '_r' || attempt, f.partner_id, f.seller_id, f.amount_minor, f.currency,
            f.channel, f.bank_code, f.ewallet_channel, f.destination_account, f.account_holder,
            f.description, 'PENDING_PUBLISH')
    RETURNING * INTO n;
    INSERT INTO ledger_payout_retries (payout_id, retry_of, partner_id, failure_code,
                                       requested_by, reason)
    VALUES (n.payout_id, f.payout_id, f.partner_id, f.failure_code, p_actor, p_reason);
    RETURN jsonb_build_object('outcome', 'created', 'payout', to_jsonb(n),
                              'retry_of', f.payout_id, 'failure_code', f.failure_code);
END $$;
