"""711 (review of kasir-webhooks): a notification for an operation Kasir never sent to any
PSP moves nothing. A payout still HELD (risk hold, not approved: the executor never sees
it) or an order NOT_STARTED has no attempt in executor_attempts: a "paid" for it is either
forged or not ours, and reporting it would book money out of a seller's wallet (PAID_OUT)
or into it (SUCCEEDED) that no PSP moved. Expected: dead-lettered with the reason not_sent,
no outcome. Before the fix a PAID_OUT was emitted for the HELD payout (wh_table_state
reads HELD as "no state known", and wh_decide applies anything to no state)."""
import uuid

from conftest import psql
from ingress_util import ingress  # noqa: F401
from webhooks_util import (events, new_order, post_sandbox_event, of, dead_lettered_once,
                          worker_fixture)


wired = worker_fixture("wh711")


def test_payout_held_paid_notification_dead_lettered(wired):
    ing, w = wired
    po = "po_" + uuid.uuid4().hex
    psql("INSERT INTO payouts (payout_id, partner_id, seller_id, amount_minor, currency, channel, "
         "bank_code, destination_account, account_holder, status) VALUES ('%s', 'p-wh', 's-1', "
         "20000000, 'IDR', 'BANK_ACCOUNT', 'BCA', '1234567890', 'Budi', 'HELD')" % po)
    st, _ = post_sandbox_event(ing, "payout.paid", {
        "id": "sbpo_" + uuid.uuid4().hex[:12], "object": "payout", "reference": po,
        "amount": "200000.00", "currency": "IDR", "status": "paid"})
    assert st == 200
    dead_lettered_once(po, "not_sent")
    assert w.wait_outcomes(of(po), 1, timeout=3) == []
    assert events("sandbox", po) == []


def test_order_not_started_paid_notification_dead_lettered(wired):
    ing, w = wired
    pay, order = new_order(status="NOT_STARTED")
    st, _ = post_sandbox_event(ing, "charge.succeeded", {
        "id": "sbch_" + uuid.uuid4().hex[:12], "object": "charge", "reference": order,
        "amount": "150000.00", "currency": "IDR", "status": "succeeded"})
    assert st == 200
    dead_lettered_once(order, "not_sent")
    assert w.wait_outcomes(of(order), 1, timeout=3) == []
