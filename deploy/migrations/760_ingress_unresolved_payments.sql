-- 760: ingress_unresolved, the idempotency records past expires_at whose requests never
-- resolved (ingress_purge keeps them, with their reservations: their event may be in
-- Kafka), for an operator. A payment's request is resolved once its payment row exists:
-- the ingress writes that row only when Kafka confirmed the event (ingress_batch), in no
-- state that waits for it, so the view asks for the row and not for its status.
CREATE OR REPLACE VIEW ingress_unresolved AS
SELECT k.partner_id, encode(k.key_hash, 'hex') AS key_hash, k.route, k.resource_id,
       k.created_at, k.expires_at, k.locked_at
  FROM idempotency_keys k
 WHERE k.expires_at < now()
   AND k.state <> 'completed'
   AND NOT (k.route = 'payments'
            AND EXISTS (SELECT 1 FROM payments p WHERE p.payment_id = k.resource_id));
