-- ingress_refund_failed(): trigger on refunds, the one place that gives a refund's
-- reservation (payment_orders.refund_requested_minor) back to its order, so the money can
-- be refunded again: all of it when the refund turns FAILED; when it turns SUCCEEDED for
-- less than was asked (refunded_minor < amount_minor, a partial refund), the part not
-- refunded (the name is older than that second case: kept, so that the migration runner's
-- record of this file follows a rollback and a roll-forward of it). kasir-ledger and the
-- executor only set the status (and the ledger refunded_minor). Locks: the order's row.
-- Repeatable: re-applied by the migration runner whenever this file changes.
CREATE OR REPLACE FUNCTION ingress_refund_failed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE payment_orders
       SET refund_requested_minor = refund_requested_minor - CASE NEW.status
               WHEN 'FAILED' THEN NEW.amount_minor
               ELSE NEW.amount_minor - NEW.refunded_minor END,
           updated_at = now()
     WHERE order_id = NEW.order_id;
    RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER refunds_failed_release AFTER UPDATE OF status ON refunds
    FOR EACH ROW WHEN (NEW.status = 'FAILED' AND OLD.status IS DISTINCT FROM 'FAILED'
                       OR NEW.status = 'SUCCEEDED' AND OLD.status IS DISTINCT FROM 'SUCCEEDED'
                          AND NEW.refunded_minor < NEW.amount_minor)
    EXECUTE FUNCTION ingress_refund_failed();
