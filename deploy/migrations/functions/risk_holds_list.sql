-- risk_holds_list(partner, status, limit, after): the partner's holds (risk_hold_json),
-- oldest first (held_at, hold_id); status NULL lists every status. Keyset paging: after is
-- the last hold_id of the previous page (NULL for the first; an id that is not one of the
-- partner's holds gives an empty page). limit is clamped to 1..1000, NULL is 100. Every
-- lookup is scoped to the partner (SPEC 4: another partner's hold is not there).
-- Called by the ingress's admin endpoints and kasir-risk holds. Stable; locks: none.
-- Repeatable: re-applied by the migration runner whenever this file changes.
-- after: risk_hold_json
CREATE OR REPLACE FUNCTION risk_holds_list(p_partner text, p_status text, p_limit integer,
                                           p_after text)
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
