-- ingress_purge(lim): deletes up to lim idempotency records past expires_at whose requests
-- resolved, set-based; unresolved ones stay (view ingress_unresolved). Returns the count.
-- Repeatable: re-applied by the migration runner whenever this file changes.
CREATE OR REPLACE FUNCTION ingress_purge(lim integer) RETURNS integer LANGUAGE sql AS $$
    WITH d AS (
        DELETE FROM idempotency_keys
         WHERE ctid = ANY (ARRAY(
               SELECT k.ctid FROM idempotency_keys k
                WHERE k.expires_at < now()
                  AND (k.state = 'completed'
                       OR (k.route = 'payments'
                           AND EXISTS (SELECT 1 FROM payments p
                                        WHERE p.payment_id = k.resource_id)))
                LIMIT lim))
        RETURNING 1)
    SELECT count(*)::integer FROM d
$$;
