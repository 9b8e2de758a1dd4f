-- ledger_adjustments_list(): the partner's adjustments, oldest first, p_status NULL for
-- every status (EXPIRED includes requests past their expiry); keyset paging on p_after.
-- Repeatable: re-applied by the migration runner whenever this file changes.
-- after: ledger_adjustment_json
CREATE OR REPLACE FUNCTION ledger_adjustments_list(p_partner text, p_status text,
                                                   p_limit integer, p_after text)
RETURNS SETOF jsonb LANGUAGE sql STABLE AS $$
    SELECT ledger_adjustment_json(a) FROM ledger_adjustments a
     WHERE a.partner_id = p_partner
       AND (p_status IS NULL OR
            (CASE WHEN a.status = 'REQUESTED' AND a.expires_at <= now() THEN 'EXPIRED'
                  ELSE a.status END) = p_status)
       AND (p_after IS NULL OR (a.requested_at, a.adjustment_id) >
            (SELECT x.requested_at, x.adjustment_id FROM ledger_adjustments x
              WHERE x.adjustment_id = p_after AND x.partner_id = p_partner))
     ORDER BY a.requested_at, a.adjustment_id
     LIMIT least(greatest(coalesce(p_limit, 100), 1), 1000)
$$;
