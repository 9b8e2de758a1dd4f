"""323: the sandbox's own API (/sandbox/v1/, for Kasir's "sandbox" adapter): Kasir-style
JSON money, Bearer auth, Idempotency-Key with replay and 422 on another body, card /
pending methods, refunds bounded by the charge, payouts; its Standard Webhooks are verified
by kasir-ingress (POST /v1/webhooks/sandbox) and its settlement file is read by the
ingress's "sandbox" layout."""
import time
import uuid

import pytest

from ingress_util import ingress, kafka_since, now_ms, operator, partners  # noqa: F401
from sandbox_util import new_keys, start_sandbox, stop_sandbox


@pytest.fixture(scope="module")
def wired(ingress):
    keys = new_keys()
    keys["native_whsec"] = ingress.secrets["sandbox"]
    sb = start_sandbox(keys, {"KASIR_WEBHOOK_BASE": "http://127.0.0.1:%d/v1/webhooks" % ingress.port})
    yield sb
    assert stop_sandbox(sb) == 0


def ref():
    return "ord_" + uuid.uuid4().hex[:16]


def charge(sb, **kw):
    body = {"reference": ref(), "amount": "150000.00", "currency": "IDR", "method": "card",
            "payment_token": "tok_visa"}
    body.update(kw)
    return body


def test_card_charge_idempotency_and_refunds(wired):
    sb = wired
    b, key = charge(sb), "k-" + uuid.uuid4().hex
    r = sb.native("POST", "/sandbox/v1/charges", b, idem=key)
    assert r.status == 201, r
    ch = r.json()
    assert ch["status"] == "succeeded" and ch["amount"] == "150000.00" and ch["currency"] == "IDR"
    again = sb.native("POST", "/sandbox/v1/charges", b, idem=key)
    assert again.status == 201 and again.body == r.body
    assert again.headers.get("idempotent-replayed") == "true"
    other = sb.native("POST", "/sandbox/v1/charges", dict(b, amount="1.00"), idem=key)
    assert other.status == 422 and other.json()["error"]["code"] == "idempotency_key_reused"
    assert len([e for e in sb.ledger("sandbox", "charge")["entries"] if e["reference"] == b["reference"]]) == 1
    got = sb.native("GET", "/sandbox/v1/charges?reference=" + b["reference"]).json()["data"]
    assert [c["id"] for c in got] == [ch["id"]]
    # refunds up to the charge, each paid once
    r1 = sb.native("POST", "/sandbox/v1/refunds", {"charge": ch["id"], "amount": "50000.00",
                                                    "reference": "rf1-" + b["reference"]}, idem="rf1" + key)
    assert r1.status == 201 and r1.json()["status"] == "succeeded"
    assert sb.native("POST", "/sandbox/v1/refunds", {"charge": ch["id"], "amount": "50000.00",
                                                     "reference": "rf1-" + b["reference"]},
                     idem="rf1" + key).body == r1.body
    r2 = sb.native("POST", "/sandbox/v1/refunds", {"charge": ch["id"], "amount": "100000.01",
                                                    "reference": "rf2"})
    assert r2.status == 409 and r2.json()["error"]["code"] == "refund_exceeds_charge"
    refunds = [e for e in sb.ledger("sandbox", "refund")["entries"] if e.get("refund_of") == ch["id"]]
    assert [e["amount"] for e in refunds] == [5000000]


def test_declines_validation_auth(wired):
    sb = wired
    r = sb.native("POST", "/sandbox/v1/charges", charge(sb, payment_token="tok_decline"))
    assert r.status == 201 and r.json()["status"] == "failed"
    assert r.json()["failure_code"] == "card_declined"
    r = sb.native("POST", "/sandbox/v1/charges", charge(sb, amount="150000.001"))
    assert r.status == 400 and r.json()["error"]["field"] == "amount"
    r = sb.native("POST", "/sandbox/v1/charges", charge(sb, method="cash"))
    assert r.status == 400 and r.json()["error"]["field"] == "method"
    r = sb.native("GET", "/sandbox/v1/charges/nope", key="sbx_wrong")
    assert r.status == 401
    r = sb.native("POST", "/sandbox/v1/charges", charge(sb), fault="5xx")
    assert r.status == 503


def test_pending_methods_webhooks_through_the_ingress(wired):
    sb = wired
    t0 = now_ms()
    b = charge(sb, method="virtual_account", bank_code="BNI")
    del b["payment_token"]
    ch = sb.native("POST", "/sandbox/v1/charges", b).json()
    assert ch["status"] == "pending" and ch["next_action"]["type"] == "virtual_account"
    assert ch["next_action"]["va_number"].isdigit() and ch["next_action"]["expires_at"]
    assert sb.event("sandbox", "paid", b["reference"], duplicates=1, out_of_order=True).status == 202
    assert sb.native("GET", "/sandbox/v1/charges/" + ch["id"]).json()["status"] == "succeeded"
    q = charge(sb, method="qris")
    q.pop("payment_token")
    qc = sb.native("POST", "/sandbox/v1/charges", q).json()
    assert qc["next_action"]["qr_string"].startswith("000201")
    assert sb.event("sandbox", "expire", qc["id"]).status == 202
    deadline = time.time() + 10
    while time.time() < deadline:
        d = [x for x in sb.webhooks() if x["object_id"] in (ch["id"], qc["id"]) and x["attempts"]]
        if len(d) >= 6:
            break
        time.sleep(0.1)
    # pending, succeeded x2 (duplicate), stale pending x2 (out of order), then the QRIS:
    # pending, expired; every one verified by the ingress's Standard Webhooks check
    assert all(x["status"] == 200 for x in d), d
    assert {x["event"] for x in d} >= {"charge.pending", "charge.succeeded", "charge.expired"}
    deadline = time.time() + 15
    while time.time() < deadline:
        msgs = [(k, v) for k, v in kafka_since("kasir.webhooks.received", t0) if ch["id"].encode() in v]
        if len(msgs) >= 5:
            break
        time.sleep(0.3)
    assert len(msgs) == 5 and all(k.startswith("sandbox:") for k, _ in msgs)
    assert b"standard-webhooks" in msgs[0][1]


def test_payouts_and_settlement_file(wired, ingress, partners):
    sb = wired
    pr = ref()
    r = sb.native("POST", "/sandbox/v1/payouts", {"reference": pr, "amount": "75000.00",
                                                  "currency": "IDR", "bank_code": "BCA",
                                                  "account_number": "1234567890",
                                                  "account_name": "Seller"})
    assert r.status == 201 and r.json()["status"] == "pending"
    deadline = time.time() + 5
    while time.time() < deadline:
        st = sb.native("GET", "/sandbox/v1/payouts/" + r.json()["id"]).json()["status"]
        if st != "pending":
            break
        time.sleep(0.05)
    assert st == "paid"
    today = time.strftime("%Y-%m-%d", time.gmtime())
    f = sb.control("GET", "/_sandbox/settlements/sandbox?date=%s&discrepancies=amount:1&manifest=1" % today).json()
    assert f["csv"].startswith("psp_reference,amount,fee,currency,status,settled_at\n")
    assert len(f["injected"]) == 1
    up = ingress.request("POST", "/v1/settlements/sandbox", raw=f["csv"].encode(), auth=operator(),
                         ctype="text/csv")
    assert up.status == 202, up
