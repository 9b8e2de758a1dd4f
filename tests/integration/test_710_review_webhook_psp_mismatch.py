"""710 (review of kasir-webhooks): a notification of one PSP for an operation that Kasir
executed at another PSP moves nothing. executor_attempts records, before any request
leaves, the PSP each attempt of an operation went to; a holder of the sandbox's webhook
secret (or a PSP that confuses its merchants' references) must not be able to report a
payment, refund or payout that was sent to Xendit or Stripe. Expected: dead-lettered with
the reason psp_mismatch, no outcome, no event row. Before the fix the success was
reported (the look-up never asked which PSP the operation was sent to)."""
import uuid

from conftest import psql
from ingress_util import ingress  # noqa: F401
from webhooks_util import (events, new_order, new_refund, post_sandbox_event, of,
                          dead_lettered_once, worker_fixture)


wired = worker_fixture("wh710")


def attempt(kind, object_id, order_id, psp, amount=15000000):
    psql("INSERT INTO executor_attempts (command_id, attempt, kind, object_id, order_id, psp, "
         "method, idem_key, amount_minor, currency) VALUES ('cmd_%s', 1, '%s', '%s', %s, '%s', "
         "'VIRTUAL_ACCOUNT', 'idem_%s', %d, 'IDR')"
         % (uuid.uuid4().hex, kind, object_id, "'%s'" % order_id if order_id else "NULL", psp,
            uuid.uuid4().hex, amount))


def test_charge_sent_to_xendit_notified_by_sandbox(wired):
    ing, w = wired
    pay, order = new_order()
    attempt("CHARGE", order, order, "xendit")
    st, _ = post_sandbox_event(ing, "charge.succeeded", {
        "id": "sbch_" + uuid.uuid4().hex[:12], "object": "charge", "reference": order,
        "amount": "150000.00", "currency": "IDR", "status": "succeeded"})
    assert st == 200
    dead_lettered_once(order, "psp_mismatch")
    assert w.wait_outcomes(of(order), 1, timeout=3) == []
    assert events("sandbox", order) == []


def test_refund_sent_to_stripe_notified_by_sandbox(wired):
    ing, w = wired
    pay, order = new_order()
    psql("UPDATE payment_orders SET status = 'SUCCESS' WHERE order_id = '%s'" % order)
    rid = new_refund(pay, order, 5000000)
    attempt("REFUND", rid, order, "stripe", 5000000)
    st, _ = post_sandbox_event(ing, "refund.succeeded", {
        "id": "sbre_" + uuid.uuid4().hex[:12], "object": "refund", "reference": rid,
        "amount": "50000.00", "currency": "IDR", "status": "succeeded"})
    assert st == 200
    dead_lettered_once(rid, "psp_mismatch")
    assert w.wait_outcomes(of(rid), 1, timeout=3) == []


def test_same_psp_still_applied(wired):
    """The check does not refuse the PSP the operation was sent to."""
    ing, w = wired
    pay, order = new_order()
    attempt("CHARGE", order, order, "sandbox")
    st, _ = post_sandbox_event(ing, "charge.succeeded", {
        "id": "sbch_" + uuid.uuid4().hex[:12], "object": "charge", "reference": order,
        "amount": "150000.00", "currency": "IDR", "status": "succeeded"})
    assert st == 200
    got = w.wait_outcomes(of(order), 1)
    assert [m["value"]["status"] for m in got] == ["SUCCEEDED"], got
