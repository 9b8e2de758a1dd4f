"""714 (review of kasir-webhooks): a Midtrans notification signs only order_id,
status_code and gross_amount. A "pending" notification's payment instructions
(va_numbers, permata_va_number, qr_string, expiry_time) are not signed: a proxy that saw
one signed pending notification can rewrite va_numbers to its own account, and the worker
reported them as the order's next_action - which the ledger writes to the order and the
partner shows the buyer (pay into the attacker's VA). The executor already reports the
pending state with the instructions from Midtrans' charge answer (adapter_midtrans.c), an
authenticated response. Expected: the pending notification is recorded as ignored and no
outcome carries the unsigned VA number."""
import hashlib
import json
import time

from ingress_util import ingress  # noqa: F401
from conftest import psql
from webhooks_util import new_order, worker_fixture


wired = worker_fixture("wh714")


def keyed(order):
    """webhook_events rows of an order's Midtrans events (an ignored one names no object)"""
    return psql("SELECT event_key, result FROM webhook_events WHERE psp = 'midtrans' "
                "AND event_key LIKE '%s:%%' ORDER BY received_at" % order)


def test_midtrans_pending_va_numbers_not_trusted(wired):
    ing, w = wired
    pay, order = new_order()
    code, gross = "201", "150000.00"
    sig = hashlib.sha512((order + code + gross + ing.secrets["midtrans"]).encode()).hexdigest()
    body = json.dumps({
        "transaction_time": "2026-12-02 10:00:00", "transaction_status": "pending",
        "transaction_id": "mt-altered", "status_message": "midtrans payment notification",
        "status_code": code, "signature_key": sig, "payment_type": "bank_transfer",
        "order_id": order, "gross_amount": gross, "currency": "IDR", "fraud_status": "accept",
        "va_numbers": [{"va_number": "999000111222", "bank": "bca"}],
        "expiry_time": "2026-12-03 10:00:00"}).encode()
    r = ing.request("POST", "/v1/webhooks/midtrans", raw=body,
                    headers={"Content-Type": "application/json"})
    assert r.status == 200
    deadline = time.time() + 30
    while time.time() < deadline and not keyed(order):
        time.sleep(0.2)
    got = w.wait_outcomes(lambda v: v.get("order_id") == order, 1, timeout=5)
    assert not any("999000111222" in json.dumps(m["value"]) for m in got), got
    assert keyed(order) == [["%s:201:150000.00:pending" % order, "ignored"]]
