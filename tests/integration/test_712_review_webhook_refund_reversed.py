"""712 (review of kasir-webhooks): a refund the PSP reports FAILED after it reported it
REFUNDED is not filed away as "stale". Stripe documents that a refund can move from
succeeded to failed (the buyer's bank returned it): the money is back in the PSP's
balance, the buyer did not get it, and the ledger still says refunded. A payout that the
PSP reports FAILED after PAID_OUT (a bank return) is the same. Kasir has no outcome for
such a reversal, so the notification must reach an operator: dead-lettered with the
reason conflicting_final, and no event row (a later redrive is not a duplicate). Before
the fix it was recorded as stale (an INFO log line), and nobody would ever look."""
import time
import uuid

from conftest import psql
from ingress_util import ingress  # noqa: F401
from webhooks_util import (events, new_order, new_payout, new_refund, post_sandbox_event, of,
                          dead_lettered_once, worker_fixture)


wired = worker_fixture("wh712")


def wait_events(psp, ref, n):
    deadline = time.time() + 30
    while time.time() < deadline and len(events(psp, ref)) < n:
        time.sleep(0.2)
    return events(psp, ref)


def test_refund_failed_after_refunded(wired):
    ing, w = wired
    pay, order = new_order()
    psql("UPDATE payment_orders SET status = 'SUCCESS' WHERE order_id = '%s'" % order)
    rid = new_refund(pay, order, 5000000)
    data = {"id": "sbre_" + uuid.uuid4().hex[:12], "object": "refund", "reference": rid,
            "amount": "50000.00", "currency": "IDR"}
    assert post_sandbox_event(ing, "refund.succeeded", dict(data, status="succeeded"))[0] == 200
    assert wait_events("sandbox", rid, 1) == [["applied", "REFUNDED"]]
    assert post_sandbox_event(ing, "refund.failed", dict(data, status="failed",
                                                         failure_code="bank_returned"))[0] == 200
    dead_lettered_once(rid, "conflicting_final")
    assert events("sandbox", rid) == [["applied", "REFUNDED"]]
    got = w.wait_outcomes(of(rid), 1)
    assert [m["value"]["status"] for m in got] == ["REFUNDED"], got


def test_payout_failed_after_paid_out(wired):
    ing, w = wired
    po = new_payout(20000000)
    data = {"id": "sbpo_" + uuid.uuid4().hex[:12], "object": "payout", "reference": po,
            "amount": "200000.00", "currency": "IDR"}
    assert post_sandbox_event(ing, "payout.paid", dict(data, status="paid"))[0] == 200
    assert wait_events("sandbox", po, 1) == [["applied", "PAID_OUT"]]
    assert post_sandbox_event(ing, "payout.failed", dict(data, status="failed",
                                                         failure_code="returned"))[0] == 200
    dead_lettered_once(po, "conflicting_final")
    assert events("sandbox", po) == [["applied", "PAID_OUT"]]
