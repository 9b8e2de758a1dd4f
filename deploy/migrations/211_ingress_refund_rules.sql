-- 211: refunds only of captured money; refund claims lock their orders in order-id order.
--
-- A refund is accepted for a captured order only (payment_orders.status SUCCESS, set with
-- captured_minor by the executor), up to captured_minor minus refund_requested_minor: the
-- refunds requested so far, pending ones included, are reserved. Any other order (NOT_STARTED,
-- EXECUTING, PENDING_CUSTOMER, FAILED, EXPIRED) answers outcome 'not_captured' (409
-- refund_not_captured); until 211 a refund of a payment nobody had paid was accepted.
-- A refund that fails (status FAILED, set by the workers) gives its reservation back.
-- Two batches with refunds of the same orders, claimed in key order, could lock those
-- orders in opposite orders and deadlock (PostgreSQL aborts one after deadlock_timeout):
-- the batch now locks every order its refunds claim first, sorted by order id.
-- A claim marked "force" takes its in-flight record over without waiting for the lock to
-- expire: the ingress marks the retry of a request whose event was published but whose
-- finish could not be recorded (the first attempt is over; its answer was a 503), which
-- until 211 was answered 409 for idempotency.lock (30 s).
-- The payments path of ingress_batch is otherwise unchanged (208).

CREATE OR REPLACE FUNCTION ingress_refund_failed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE payment_orders SET refund_requested_minor = refund_requested_minor - NEW.amount_minor,
                              updated_at = now()
     WHERE order_id = NEW.order_id;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS refunds_failed_release ON refunds;
CREATE TRIGGER refunds_failed_release AFTER UPDATE OF status ON refunds
    FOR EACH ROW WHEN (NEW.status = 'FAILED' AND OLD.status IS DISTINCT FROM 'FAILED')
    EXECUTE FUNCTION ingress_refund_failed();

-- a seller's wallet is the partner's: payouts are found by (partner, seller)
CREATE INDEX IF NOT EXISTS payouts_partner_seller ON payouts (partner_id, seller_id);

-- (ingress_batch(): its one definition is deploy/migrations/functions/ingress_batch.sql)
