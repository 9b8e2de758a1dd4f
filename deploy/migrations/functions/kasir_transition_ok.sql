-- kasir_transition_ok(entity, from, to): true when a payment, order, payout or refund may move from
-- `from` to `to` (a row of kasir_transitions). A plain SQL function: the planner inlines it
-- into the caller's statement (one index probe per row, no function call). Locks: none.
-- Repeatable: re-applied by the migration runner whenever this file changes.
CREATE OR REPLACE FUNCTION kasir_transition_ok(entity text, from_status text, to_status text)
RETURNS boolean LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT EXISTS (SELECT 1 FROM kasir_transitions t
                    WHERE t.entity = $1 AND t.from_status = $2 AND t.to_status = $3)
$$;
