-- risk_holds_list(partner, status, limit, after): the partner's holds (risk_hold_json),
-- oldest first (held_at, hold_id); status NULL lists every status. Keyset paging: after is
-- the last hold_id of the previous page (NULL for the first; an id that is not one of the
-- partner's holds gives an empty page). limit is clamped to 1..1000, NULL is 100. Every
-- lookup is scoped to the partner (SPEC 4: another partner's hold is not there).
-- A page reads its own holds only: the statement names just the bounds it has, so each
-- form is planned for what it is (an "$x IS NULL OR ..." would keep a cached plan from
-- bounding the index scan), over the index that holds its order with hold_id, for the page
-- to start where the last one ended (957: (partner_id, held_at, hold_id) and (partner_id,
-- status, held_at, hold_id); test 312).
-- Called by the ingress's admin endpoints and kasir-risk holds. Stable; locks: none.
-- Repeatable: re-applied by the migration runner whenever this file changes.
-- after: risk_hold_json
CREATE OR REPLACE FUNCTION risk_holds_list(p_partner text, p_status text, p_limit integer,
                                           p_after text)
RETURNS SETOF jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_at timestamptz;
    v_id text;
BEGIN
    IF p_after IS NOT NULL THEN
        SELECT a.held_at, a.hold_id INTO v_at, v_id FROM risk_holds a
         WHERE a.hold_id = p_after AND a.partner_id = p_partner;
        IF NOT FOUND THEN
            RETURN;
        END IF;
    END IF;
    RETURN QUERY EXECUTE
        'SELECT risk_hold_json(h) FROM risk_holds h WHERE h.partner_id = $1'
        || CASE WHEN p_status IS NULL THEN '' ELSE ' AND h.status = $2' END
        || CASE WHEN p_after IS NULL THEN '' ELSE ' AND (h.held_at, h.hold_id) > ($3, $4)' END
        || ' ORDER BY h.held_at, h.hold_id LIMIT $5'
        USING p_partner, p_status, v_at, v_id, least(greatest(coalesce(p_limit, 100), 1), 1000);
END
$$;
