"""700: kasir-webhooks end to end, for each PSP: the sandbox PSP holds the charge, refund or
payout (made through its PSP API, with Kasir's id as the merchant reference), sends its
real signed notification to a real kasir-ingress, which publishes it to
kasir.webhooks.received; kasir-webhooks turns it into a kasir.psp.PspOutcome (source
WEBHOOK) with the order's partner, payment, amount and the PSP's reference. Then the
Must-show line of issue 14: 10 duplicates of one event, paid-before-pending and a stale
event after a final one each lead to exactly one transition; an unknown reference and an
amount that is not the order's are dead-lettered with their reason."""
import time
import uuid

import pytest

from conftest import psql, psql_one
from ingress_util import ingress  # noqa: F401
from sandbox_util import new_keys, start_sandbox, stop_sandbox
from webhooks_util import (Worker, dead_letters, events, new_order, new_payout, new_refund,
                          outcome_id, post_sandbox_event, of, dead_lettered_once)


@pytest.fixture(scope="module")
def wired(ingress):  # noqa: F811
    keys = new_keys()
    keys["stripe_whsec"] = ingress.secrets["stripe"]
    keys["xendit_token"] = ingress.secrets["xendit"]
    keys["midtrans"] = ingress.secrets["midtrans"]
    keys["native_whsec"] = ingress.secrets["sandbox"]
    w = Worker("wh700")
    try:
        w.start()
        sb = start_sandbox(keys, {"KASIR_WEBHOOK_BASE": "http://127.0.0.1:%d/v1/webhooks" % ingress.port})
        yield sb, ingress, w
        assert stop_sandbox(sb) == 0
    finally:
        assert w.stop() == 0


def check(v, kind, obj, status, pay=None, amount=15000000, psp=None):
    assert v["kind"] == kind and v["status"] == status, v
    assert v["outcome_id"] == outcome_id(kind, obj, status)
    assert v["source"] == "WEBHOOK" and v["partner_id"] == "p-wh"
    assert v["amount_minor"] == amount and v["currency"] == "IDR"
    if pay:
        assert v["payment_id"] == pay
    if psp:
        assert v["psp"] == psp


def test_stripe_card_payment_and_refund(wired):
    sb, _, w = wired
    pay, order = new_order(method="CARD")
    pi = sb.stripe("POST", "/v1/payment_intents",
                   {"amount": 15000000, "currency": "idr", "payment_method": "pm_card_visa",
                    "confirm": True, "metadata": {"order_id": order}}).json()
    assert pi["status"] == "succeeded", pi
    got = w.wait_outcomes(of(order), 1)
    assert len(got) == 1, got
    v = got[0]["value"]
    check(v, "CHARGE", order, "SUCCEEDED", pay, psp="stripe")
    assert v["psp_reference"] == pi["id"] and v["order_id"] == order
    assert got[0]["key"] == order
    # a partial refund, asked with Kasir's refund id
    rid = new_refund(pay, order, 5000000)
    re = sb.stripe("POST", "/v1/refunds", {"payment_intent": pi["id"], "amount": 5000000,
                                           "metadata": {"refund_id": rid}}).json()
    got = w.wait_outcomes(of(rid), 1)
    assert len(got) == 1, got
    v = got[0]["value"]
    check(v, "REFUND", rid, "REFUNDED", pay, amount=5000000, psp="stripe")
    assert v["order_id"] == order and v["psp_reference"] == re["id"]
    assert got[0]["key"] == order  # refunds of an order stay in its partition


def test_xendit_ten_duplicates_one_transition(wired):
    sb, _, w = wired
    pay, order = new_order()
    va = sb.xendit("POST", "/callback_virtual_accounts",
                   {"external_id": order, "bank_code": "BRI", "name": "Siti",
                    "expected_amount": 150000, "is_closed": True}).json()
    assert sb.event("xendit", "va_paid", order, duplicates=9).status == 202
    # all ten copies reach kasir-webhooks (same event id) ...
    deadline = time.time() + 30
    while time.time() < deadline and int(psql_one(
            "SELECT count(*) FROM webhook_events WHERE object_id = '%s'" % order)) < 1:
        time.sleep(0.2)
    deliveries = [d for d in sb.webhooks() if d["object_id"] == va["id"] and d["event"] == "va.paid"]
    deadline = time.time() + 20
    while time.time() < deadline and not (len(deliveries) == 10 and all(d["status"] == 200 for d in deliveries)):
        time.sleep(0.2)
        deliveries = [d for d in sb.webhooks() if d["object_id"] == va["id"] and d["event"] == "va.paid"]
    assert len(deliveries) == 10 and all(d["status"] == 200 for d in deliveries), deliveries
    time.sleep(2)
    # ... and exactly one outcome comes out
    got = w.wait_outcomes(of(order), 1)
    assert len({m["value"]["outcome_id"] for m in got}) == 1, got
    check(got[0]["value"], "CHARGE", order, "SUCCEEDED", pay, psp="xendit")
    assert got[0]["value"]["psp_reference"] == va["id"]
    assert events("xendit", order) == [["applied", "SUCCEEDED"]]


def test_xendit_paid_before_pending(wired):
    """A reusable VA's "updated" callback (ACTIVE: the buyer may pay) delivered after its
    payment: one transition, to SUCCEEDED; the pending is stale."""
    sb, _, w = wired
    pay, order = new_order()
    sb.xendit("POST", "/callback_virtual_accounts",
              {"external_id": order, "bank_code": "BNI", "name": "Agus", "expected_amount": 150000})
    assert sb.event("xendit", "va_paid", order, out_of_order=True).status == 202
    deadline = time.time() + 30
    while time.time() < deadline and len(events("xendit", order)) < 2:
        time.sleep(0.2)
    # 200 ms apart, the two can share a batch (and its received_at): compared as a set
    assert sorted(events("xendit", order)) == [["applied", "SUCCEEDED"], ["stale", "PENDING_CUSTOMER"]]
    got = w.wait_outcomes(of(order), 1)
    assert [m["value"]["status"] for m in got] == ["SUCCEEDED"], got


def test_midtrans_pending_settlement_and_stale_copy(wired):
    sb, _, w = wired
    pay, order = new_order(method="EWALLET")
    ch = sb.midtrans("POST", "/v2/charge", {"payment_type": "gopay", "transaction_details": {
        "order_id": order, "gross_amount": 150000}}).json()
    assert ch["transaction_status"] == "pending", ch
    # the pending notification is recorded, not reported: its payment instructions are
    # not signed (the executor reports the pending from the charge answer; test 714)
    def results():  # an ignored event names no object: found by its key
        return psql("SELECT result FROM webhook_events WHERE psp = 'midtrans' "
                    "AND event_key LIKE '%s:%%' ORDER BY received_at" % order)
    deadline = time.time() + 30
    while time.time() < deadline and not results():
        time.sleep(0.2)
    assert results() == [["ignored"]]
    # settlement, then a stale copy of the pending notification
    assert sb.event("midtrans", "paid", order, out_of_order=True).status == 202
    deadline = time.time() + 30
    while time.time() < deadline and len([d for d in sb.webhooks()
                                          if d["object_id"] == ch["transaction_id"]
                                          and d["status"] == 200]) < 3:
        time.sleep(0.2)
    time.sleep(2)
    got = w.wait_outcomes(of(order), 1)
    assert [m["value"]["status"] for m in got] == ["SUCCEEDED"], got
    check(got[0]["value"], "CHARGE", order, "SUCCEEDED", pay, psp="midtrans")
    assert results() == [["ignored"], ["applied"]]
    assert events("midtrans", order) == [["applied", "SUCCEEDED"]]


def test_sandbox_va_paid_stale_pending_and_payout(wired):
    sb, _, w = wired
    pay, order = new_order()
    ch = sb.native("POST", "/sandbox/v1/charges", {
        "reference": order, "amount": "150000.00", "currency": "IDR",
        "method": "virtual_account", "bank_code": "BCA"}).json()
    got = w.wait_outcomes(of(order), 1)
    assert len(got) == 1, got
    v = got[0]["value"]
    check(v, "CHARGE", order, "PENDING_CUSTOMER", pay, psp="sandbox")
    assert v["next_action"]["va_number"] == ch["next_action"]["va_number"]
    assert v["psp_reference"] == ch["id"]
    # paid, and a stale charge.pending (a new event id) after it: nothing more
    assert sb.event("sandbox", "paid", order, out_of_order=True).status == 202
    deadline = time.time() + 30
    while time.time() < deadline and len(events("sandbox", order)) < 3:
        time.sleep(0.2)
    # the paid and the stale pending 200 ms apart can share a batch (and its received_at):
    # compared as a set, the status saying which one was stale
    assert sorted(events("sandbox", order)) == [["applied", "PENDING_CUSTOMER"],
                                                ["applied", "SUCCEEDED"],
                                                ["stale", "PENDING_CUSTOMER"]]
    got = w.wait_outcomes(of(order), 2)
    assert [m["value"]["status"] for m in got] == ["PENDING_CUSTOMER", "SUCCEEDED"], got
    # a payout: paid out after the sandbox's payout delay
    po = new_payout(20000000)
    sb.native("POST", "/sandbox/v1/payouts", {
        "reference": po, "amount": "200000.00", "currency": "IDR", "bank_code": "BCA",
        "account_number": "1234567890", "account_name": "Budi"})
    got = w.wait_outcomes(of(po), 1)
    assert len(got) == 1, got
    check(got[0]["value"], "PAYOUT", po, "PAID_OUT", amount=20000000, psp="sandbox")
    assert got[0]["value"]["order_id"] is None and got[0]["key"] == po


def test_stale_final_after_final(wired):
    """A failure signed and sent after the success of the same charge changes nothing."""
    _, ing, w = wired
    pay, order = new_order()
    data = {"id": "sbch_" + uuid.uuid4().hex[:12], "object": "charge", "reference": order,
            "amount": "150000.00", "currency": "IDR", "method": "virtual_account"}
    # one at a time: the three go to different partitions (keyed by event id), so sent
    # together they may be processed in any order
    sent = [("charge.succeeded", dict(data, status="succeeded")),
            ("charge.failed", dict(data, status="failed", failure_code="declined")),
            ("charge.expired", dict(data, status="expired"))]
    for n, (kind, body) in enumerate(sent, 1):
        assert post_sandbox_event(ing, kind, body)[0] == 200
        deadline = time.time() + 30
        while time.time() < deadline and len(events("sandbox", order)) < n:
            time.sleep(0.2)
    assert events("sandbox", order) == [["applied", "SUCCEEDED"], ["stale", "FAILED"],
                                        ["stale", "EXPIRED"]]
    got = w.wait_outcomes(of(order), 1)
    assert [m["value"]["status"] for m in got] == ["SUCCEEDED"], got
    assert psql_one("SELECT status FROM webhook_operations WHERE kind = 'CHARGE' "
                    "AND object_id = '%s'" % order) == "SUCCEEDED"


def test_unknown_reference_and_amount_mismatch_dead_lettered(wired):
    _, ing, w = wired
    ghost = "ord_" + uuid.uuid4().hex
    st, ev = post_sandbox_event(ing, "charge.succeeded", {
        "id": "sbch_x", "reference": ghost, "amount": "150000.00", "currency": "IDR"})
    assert st == 200
    dl = dead_letters(ghost)
    assert len(dl) == 1, dl
    h = dl[0]["headers"]
    assert h["kasir.error.message"].startswith("unknown_reference:"), h
    assert h["kasir.error.group"] == w.group
    pay, order = new_order()
    st, ev = post_sandbox_event(ing, "charge.succeeded", {
        "id": "sbch_y", "reference": order, "amount": "150.00", "currency": "IDR"})
    dead_lettered_once(order, "amount_mismatch")
    # no success was reported for it, and nothing was recorded as processed
    assert w.wait_outcomes(of(order), 1, timeout=3) == []
    assert events("sandbox", order) == []


def test_bad_settings_exit_2_and_config_doc():
    import json
    import subprocess
    from conftest import STACK, bin_path
    env = dict(STACK, KASIR_WORKER_BATCH_MAX="lots")
    p = subprocess.run([bin_path("webhooks")], env=env, capture_output=True, timeout=30)
    assert p.returncode == 2, p
    lines = [json.loads(x) for x in (p.stdout + p.stderr).decode().splitlines() if x.strip()]
    assert "worker.batch.max" in {x.get("setting") for x in lines if x.get("event") == "config.invalid"}
    p = subprocess.run([bin_path("webhooks"), "config-doc"], capture_output=True, timeout=30)
    assert p.returncode == 0 and b"webhooks.output_topic" in p.stdout


def test_late_success_after_expiry_reported_once(wired):
    """Money that arrives after the charge expired is reported (the ledger books it to
    suspense), once; the operation stays EXPIRED."""
    _, ing, w = wired
    pay, order = new_order()
    data = {"id": "sbch_" + uuid.uuid4().hex[:12], "object": "charge", "reference": order,
            "amount": "150000.00", "currency": "IDR", "method": "virtual_account"}
    assert post_sandbox_event(ing, "charge.expired", dict(data, status="expired"))[0] == 200
    assert w.wait_outcomes(of(order), 1)[0]["value"]["status"] == "EXPIRED"
    for _ in range(2):  # two events (two ids) telling the same late payment
        assert post_sandbox_event(ing, "charge.succeeded", dict(data, status="succeeded"))[0] == 200
    deadline = time.time() + 30
    while time.time() < deadline and len(events("sandbox", order)) < 3:
        time.sleep(0.2)
    ev = events("sandbox", order)
    assert ev[0] == ["applied", "EXPIRED"], ev
    assert sorted(ev[1:]) == [["duplicate", "SUCCEEDED"], ["late_success", "SUCCEEDED"]], ev
    got = w.wait_outcomes(of(order), 2)
    assert [m["value"]["status"] for m in got] == ["EXPIRED", "SUCCEEDED"], got
    check(got[1]["value"], "CHARGE", order, "SUCCEEDED", pay, psp="sandbox")
    assert psql_one("SELECT status || ' ' || late_success FROM webhook_operations "
                    "WHERE kind = 'CHARGE' AND object_id = '%s'" % order) == "EXPIRED true"


def test_xendit_disbursement_and_va_expiry(wired):
    sb, _, w = wired
    po = new_payout(20000000)
    d = sb.xendit("POST", "/disbursements", {
        "external_id": po, "amount": 200000, "bank_code": "BCA", "account_holder_name": "Budi",
        "account_number": "1234567890", "description": "seller payout"}).json()
    got = w.wait_outcomes(of(po), 1)
    assert len(got) == 1, got
    check(got[0]["value"], "PAYOUT", po, "PAID_OUT", amount=20000000, psp="xendit")
    assert got[0]["value"]["psp_reference"] == d["id"]
    # a VA whose expiration date has passed, closed by Xendit: EXPIRED
    pay, order = new_order()
    sb.xendit("POST", "/callback_virtual_accounts",
              {"external_id": order, "bank_code": "BRI", "name": "Siti", "expected_amount": 150000,
               "expiration_date": "2020-01-01T00:00:00.000Z"})
    assert sb.event("xendit", "va_expired", order).status == 202
    got = w.wait_outcomes(of(order), 1)
    assert [m["value"]["status"] for m in got] == ["EXPIRED"], got
    check(got[0]["value"], "CHARGE", order, "EXPIRED", pay, psp="xendit")
