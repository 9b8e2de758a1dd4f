"""331: the sandbox's asynchronous webhooks, in each PSP's format and signature scheme, are
verified by the real kasir-ingress (POST /v1/webhooks/{psp}) and land in
kasir.webhooks.received: a card payment, a VA paid, a QRIS paid, an e-wallet paid, an
expiry and a payout result, with duplicates and out-of-order delivery on request. Iris
payout notifications (no ingress route yet) are checked by a local receiver."""
import hashlib
import json
import time
import uuid

import pytest

from ingress_util import ingress, kafka_since, now_ms  # noqa: F401
from sandbox_util import Receiver, new_keys, run_sdk, start_sandbox, stop_sandbox


@pytest.fixture(scope="module")
def wired(ingress):
    keys = new_keys()
    keys["stripe_whsec"] = ingress.secrets["stripe"]
    keys["xendit_token"] = ingress.secrets["xendit"]
    keys["midtrans"] = ingress.secrets["midtrans"]
    rx = Receiver()
    sb = start_sandbox(keys, {
        "KASIR_WEBHOOK_BASE": "http://127.0.0.1:%d/v1/webhooks" % ingress.port,
        "KASIR_WEBHOOK_IRIS_URL": "http://127.0.0.1:%d/iris" % rx.port,
    })
    yield sb, ingress, rx
    assert stop_sandbox(sb) == 0
    rx.close()


def wait_deliveries(sb, pred, n, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = [d for d in sb.webhooks() if pred(d)]
        if len(got) >= n and all(d["attempts"] > 0 for d in got):
            return got
        time.sleep(0.1)
    raise AssertionError("deliveries: %r" % [d for d in sb.webhooks() if pred(d)])


def kafka_with(needle, t0, n, timeout=15):
    deadline = time.time() + timeout
    while True:
        msgs = [(k, v) for k, v in kafka_since("kasir.webhooks.received", t0) if needle.encode() in v]
        if len(msgs) >= n or time.time() > deadline:
            return msgs
        time.sleep(0.3)


def test_stripe_card_payment_and_expiry(wired):
    sb, _, _ = wired
    t0 = now_ms()
    pi = sb.stripe("POST", "/v1/payment_intents",
                   {"amount": 2500, "currency": "usd", "payment_method": "pm_card_visa",
                    "confirm": True}).json()
    d = wait_deliveries(sb, lambda d: d["object_id"] == pi["id"], 1)
    assert d[0]["event"] == "payment_intent.succeeded" and d[0]["status"] == 200, d
    msgs = kafka_with(pi["id"], t0, 1)
    assert len(msgs) == 1 and msgs[0][0].startswith("stripe:evt_")
    assert b"stripe-signature" in msgs[0][1]
    # a PaymentIntent that is never paid expires (payment_intent.canceled)
    pi2 = sb.stripe("POST", "/v1/payment_intents", {"amount": 10, "currency": "usd"}).json()
    assert sb.event("stripe", "expire", pi2["id"]).status == 202
    d = wait_deliveries(sb, lambda d: d["object_id"] == pi2["id"], 1)
    assert d[0]["event"] == "payment_intent.canceled" and d[0]["status"] == 200
    assert sb.stripe("GET", "/v1/payment_intents/" + pi2["id"]).json()["status"] == "canceled"


def test_xendit_va_paid_with_duplicates(wired):
    sb, _, _ = wired
    t0 = now_ms()
    e = "va-" + uuid.uuid4().hex[:12]
    va = sb.xendit("POST", "/callback_virtual_accounts",
                   {"external_id": e, "bank_code": "BRI", "name": "Siti", "expected_amount": 75000,
                    "is_closed": True}).json()
    assert sb.event("xendit", "va_paid", e, duplicates=2).status == 202
    mine = wait_deliveries(sb, lambda d: d["object_id"] == va["id"] and d["event"] == "va.paid", 3)
    assert len(mine) == 3 and all(d["status"] == 200 for d in mine), mine
    assert len({d["event_id"] for d in mine}) == 1  # copies of one event share its id
    msgs = kafka_with(e, t0, 3)
    assert len(msgs) == 3, msgs
    assert len({k for k, _ in msgs}) == 1  # the ingress keys all three by that event id
    assert sb.xendit("GET", "/callback_virtual_accounts/" + va["id"]).status == 200


def test_xendit_qris_paid_and_disbursement(wired):
    sb, ing, _ = wired
    t0 = now_ms()
    e = "qr-" + uuid.uuid4().hex[:12]
    qr = sb.xendit("POST", "/qr_codes", {
        "external_id": e, "type": "DYNAMIC", "amount": 30000,
        "callback_url": "http://127.0.0.1:%d/v1/webhooks/xendit" % ing.port}).json()
    pay = sb.xendit("POST", "/qr_codes/%s/payments/simulate" % e, {}).json()
    d = wait_deliveries(sb, lambda d: d["object_id"] == pay["id"], 1)
    assert d[0]["event"] == "qr.payment" and d[0]["status"] == 200
    assert len(kafka_with(pay["id"], t0, 1)) == 1
    assert qr["id"] in json.dumps(pay)
    de = "disb-" + uuid.uuid4().hex[:10]
    disb = sb.xendit("POST", "/disbursements", {
        "external_id": de, "amount": 50000, "bank_code": "BCA", "account_holder_name": "Budi",
        "account_number": "1234567890", "description": "seller payout"}).json()
    d = wait_deliveries(sb, lambda d: d["object_id"] == disb["id"], 1)
    assert d[0]["event"] == "disbursement.completed" and d[0]["status"] == 200
    assert len(kafka_with(de, t0, 1)) == 1


def test_midtrans_ewallet_out_of_order_and_expiry(wired):
    sb, _, _ = wired
    t0 = now_ms()
    o = "GP" + uuid.uuid4().hex[:12]
    ch = sb.midtrans("POST", "/v2/charge", {"payment_type": "gopay",
                                            "transaction_details": {"order_id": o, "gross_amount": 64000}}).json()
    tid = ch["transaction_id"]
    wait_deliveries(sb, lambda d: d["object_id"] == tid, 1)  # the pending notification
    assert sb.event("midtrans", "paid", o, out_of_order=True).status == 202
    got = wait_deliveries(sb, lambda d: d["object_id"] == tid, 3)
    assert [d["event"] for d in got] == ["pending", "settlement", "pending"]
    assert all(d["status"] == 200 for d in got), got  # signature_key verified by the ingress
    # the stale "pending" copy arrived after the settlement
    assert got[2]["last_attempt_us"] > got[1]["last_attempt_us"]
    msgs = kafka_with(o, t0, 3)
    assert len(msgs) == 3
    assert len({k for k, _ in msgs}) == 2  # tid:pending and tid:settlement
    # a VA that is never paid expires: status_code 407
    o2 = "VA" + uuid.uuid4().hex[:12]
    ch2 = sb.midtrans("POST", "/v2/charge", {"payment_type": "bank_transfer",
                                             "bank_transfer": {"bank": "bni"},
                                             "transaction_details": {"order_id": o2, "gross_amount": 10000}}).json()
    assert sb.event("midtrans", "expire", o2).status == 202
    got = wait_deliveries(sb, lambda d: d["object_id"] == ch2["transaction_id"], 2)
    assert [d["event"] for d in got] == ["pending", "expire"] and got[1]["status"] == 200
    st = sb.midtrans("GET", "/v2/%s/status" % o2).json()
    assert st["status_code"] == "407" and st["transaction_status"] == "expire"


def test_iris_payout_notification_signature(wired):
    sb, _, rx = wired
    note = "iris-" + uuid.uuid4().hex[:8]
    r = sb.iris("POST", "/api/v1/payouts", {"payouts": [{
        "beneficiary_name": "Jon", "beneficiary_account": "1172993826", "beneficiary_bank": "bni",
        "amount": "250000.00", "notes": note}]})
    ref = r.json()["payouts"][0]["reference_no"]
    deadline = time.time() + 10
    while time.time() < deadline and not [b for _, b in rx.got if ref.encode() in b]:
        time.sleep(0.1)
    hdrs, body = [(h, b) for h, b in rx.got if ref.encode() in b][0]
    want = hashlib.sha512(body + sb.keys["iris_merchant"].encode()).hexdigest()
    assert hdrs["iris-signature"] == want
    n = json.loads(body)
    assert n["reference_no"] == ref and n["status"] == "completed" and n["amount"] == "250000.00"


def test_wrong_secret_is_refused_and_retried(ingress):
    keys = new_keys()  # secrets the ingress does not know
    sb = start_sandbox(keys, {"KASIR_WEBHOOK_BASE": "http://127.0.0.1:%d/v1/webhooks" % ingress.port,
                              "KASIR_WEBHOOK_ATTEMPTS": "2"})
    try:
        pi = sb.stripe("POST", "/v1/payment_intents",
                       {"amount": 99, "currency": "usd", "payment_method": "pm_card_visa",
                        "confirm": True}).json()
        deadline = time.time() + 10
        while time.time() < deadline:
            d = [x for x in sb.webhooks() if x["object_id"] == pi["id"]]
            if d and d[0]["attempts"] == 2:
                break
            time.sleep(0.1)
        assert d[0]["status"] == 401 and d[0]["delivered"] is False and d[0]["attempts"] == 2
    finally:
        assert stop_sandbox(sb) == 0


SDK_VERIFY = r"""
import json, os, stripe
payload = open(os.environ["BODY"], "rb").read().decode()
ev = stripe.Webhook.construct_event(payload, os.environ["SIG"], os.environ["WHSEC"])
out = {"type": ev.type, "id": ev.data.object.id}
try:
    stripe.Webhook.construct_event(payload, os.environ["SIG"], "whsec_other")
except stripe.SignatureVerificationError:
    out["wrong_secret"] = "refused"
print(json.dumps(out))
"""


def test_stripe_sdk_verifies_the_signature(tmp_path):
    """Stripe's own SDK (an implementation independent of lib/webhook.c) accepts the
    sandbox's Stripe-Signature and parses the event."""
    rx = Receiver()
    keys = new_keys()
    sb = start_sandbox(keys, {"KASIR_WEBHOOK_STRIPE_URL": "http://127.0.0.1:%d/stripe" % rx.port})
    try:
        pi = sb.stripe("POST", "/v1/payment_intents",
                       {"amount": 1234, "currency": "usd", "payment_method": "pm_card_visa",
                        "confirm": True}).json()
        deadline = time.time() + 10
        while time.time() < deadline and not [b for _, b in rx.got if pi["id"].encode() in b]:
            time.sleep(0.1)
        hdrs, body = [(h, b) for h, b in rx.got if pi["id"].encode() in b][0]
        (tmp_path / "body").write_bytes(body)
        out = run_sdk(SDK_VERIFY, {"BODY": str(tmp_path / "body"), "SIG": hdrs["stripe-signature"],
                                   "WHSEC": keys["stripe_whsec"]})
        assert out == {"type": "payment_intent.succeeded", "id": pi["id"], "wrong_secret": "refused"}
    finally:
        assert stop_sandbox(sb) == 0
        rx.close()
