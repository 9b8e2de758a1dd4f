"""713 (review of kasir-webhooks): a "succeeded" notification for an order that risk
declined (NOT_STARTED -> FAILED: never sent to any PSP, no attempt in executor_attempts)
is not a late success. The worker read the table's FAILED as "the PSP failed it" and
reported the success once as late_success: the ledger books a late capture (PSP clearing
debited, suspense credited) for money no PSP moved. Expected: dead-lettered with the
reason not_sent, no outcome, no event row."""
import uuid

from conftest import psql
from ingress_util import ingress  # noqa: F401
from webhooks_util import (events, new_order, post_sandbox_event, dead_lettered_once,
                          worker_fixture)


wired = worker_fixture("wh713")


def test_success_after_risk_decline_dead_lettered(wired):
    ing, w = wired
    pay, order = new_order(status="NOT_STARTED")
    psql("UPDATE payment_orders SET status = 'FAILED' WHERE order_id = '%s'" % order)
    st, _ = post_sandbox_event(ing, "charge.succeeded", {
        "id": "sbch_" + uuid.uuid4().hex[:12], "object": "charge", "reference": order,
        "amount": "150000.00", "currency": "IDR", "status": "succeeded"})
    assert st == 200
    dead_lettered_once(order, "not_sent")
    assert w.wait_outcomes(lambda v: v.get("order_id") == order, 1, timeout=3) == []
    assert events("sandbox", order) == []
