-- ingress_purge(lim, since): deletes up to lim idempotency records past expires_at whose
-- requests resolved, set-based, among those that expired at or after since; unresolved
-- ones stay (view ingress_unresolved). Returns the count. The ingress passes where its
-- previous pass began (producers/ingress/store.c): the scan of the B-tree on expires_at
-- (954) then starts there, not at the oldest entry, and skips the entries of the records
-- purged since the table's last vacuum, which every scan from the start walks through (at
-- 5,000 payments/s, 10,000 more every 2 s). '-infinity': every expired record (the
-- ingress's full pass, for records resolved after their pass).
-- ingress_purge(lim): the same from '-infinity' (an ingress not yet upgraded, in a rolling
-- deploy). Deploy order: this file before the ingress that calls the two-argument form.
-- Repeatable: re-applied by the migration runner whenever this file changes.
CREATE OR REPLACE FUNCTION ingress_purge(lim integer, since timestamptz) RETURNS integer
LANGUAGE sql AS $$
    WITH d AS (
        DELETE FROM idempotency_keys
         WHERE ctid = ANY (ARRAY(
               SELECT k.ctid FROM idempotency_keys k
                WHERE k.expires_at >= since AND k.expires_at < now()
                  AND (k.state = 'completed'
                       OR (k.route = 'payments'
                           AND EXISTS (SELECT 1 FROM payments p
                                        WHERE p.payment_id = k.resource_id)))
                LIMIT lim))
        RETURNING 1)
    SELECT count(*)::integer FROM d
$$;

CREATE OR REPLACE FUNCTION ingress_purge(lim integer) RETURNS integer
LANGUAGE sql AS $$ SELECT ingress_purge(lim, '-infinity'::timestamptz) $$;
