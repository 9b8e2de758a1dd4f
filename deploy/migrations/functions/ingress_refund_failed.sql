-- ingress_refund_failed(): trigger on refunds. A refund that turns FAILED gives its
-- reservation back to its order (refund_requested_minor), so the money can be refunded
-- again. The one place that gives it back (the ledger and the executor only set the status).
-- Locks: the order's row.
-- Repeatable: re-applied by the migration runner whenever this file changes.
CREATE OR REPLACE FUNCTION ingress_refund_failed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE payment_orders SET refund_requested_minor = refund_requested_minor - NEW.amount_minor,
                              updated_at = now()
     WHERE order_id = NEW.order_id;
    RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER refunds_failed_release AFTER UPDATE OF status ON refunds
    FOR EACH ROW WHEN (NEW.status = 'FAILED' AND OLD.status IS DISTINCT FROM 'FAILED')
    EXECUTE FUNCTION ingress_refund_failed();
