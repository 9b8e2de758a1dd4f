-- ledger_adjustment_json(a): an adjustment as the admin API shows it; a request past its
-- expiry shows EXPIRED even before a decision records it.
-- Repeatable: re-applied by the migration runner whenever this file changes.
CREATE OR REPLACE FUNCTION ledger_adjustment_json(a ledger_adjustments) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object(
        'adjustment_id', a.adjustment_id,
        'seller_id', a.seller_id,
        'currency', a.currency,
        'amount_minor', a.amount_minor,
        'counter_account', a.counter,
        'psp', a.psp,
        'reason', a.reason,
        'status', CASE WHEN a.status = 'REQUESTED' AND a.expires_at <= now() THEN 'EXPIRED'
                       ELSE a.status END,
        'requested_by', a.requested_by,
        'requested_at', to_char(a.requested_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'expires_at', to_char(a.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'decided_by', a.decided_by,
        'decided_at', to_char(a.decided_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'decision_note', a.decision_note,
        'entry_id', a.entry_id::text))
$$;
