-- 950: a refund records what the PSP refunded (refunded_minor, set with SUCCEEDED by
-- kasir-ledger), which may be less than was asked (amount_minor, what was reserved on the
-- order). Before, a partial refund kept the whole of its reservation
-- (payment_orders.refund_requested_minor), so the rest could never be refunded through the
-- API. The difference is given back by functions/ingress_refund_failed.sql, the trigger
-- that gives a failed refund's whole reservation back. NULL for a refund not (yet)
-- succeeded, and for one that succeeded before this column (refunded as asked).
ALTER TABLE refunds ADD COLUMN refunded_minor bigint
    CHECK (refunded_minor > 0 AND refunded_minor <= amount_minor);
