"""321: the sandbox speaks Xendit: fixed virtual accounts, QR codes (v1) and disbursements,
Basic auth with the secret key, X-IDEMPOTENCY-KEY, external_id and the {"error_code",
"message"} errors, as Xendit's API reference describes them; and Xendit's own Python SDK
(xendit-python 0.2.2, the release that has these APIs), pointed at the sandbox, works
unchanged."""
import time
import uuid

from sandbox_util import basic, run_sdk, sandbox  # noqa: F401


def wait_status(sb, path, status, timeout=5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = sb.xendit("GET", path).json()
        if got.get("status") == status:
            return got
        time.sleep(0.05)
    return None


def ext(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:12])


def test_fixed_virtual_account(sandbox):
    # fixture: "Create Fixed Virtual Account" in https://archive.developers.xendit.co/api-reference/
    # (external_id "demo-1475804036622", bank_code "BNI", name "Rika Sutanto")
    e = ext("demo")
    r = sandbox.xendit("POST", "/callback_virtual_accounts",
                       {"external_id": e, "bank_code": "BNI", "name": "Rika Sutanto",
                        "expected_amount": 150000, "is_closed": True, "is_single_use": True})
    assert r.status == 200, r
    va = r.json()
    for k in ("owner_id", "external_id", "bank_code", "merchant_code", "name", "account_number",
              "is_closed", "id", "is_single_use", "status", "expiration_date"):
        assert k in va, k
    assert va["external_id"] == e and va["status"] == "PENDING" and va["currency"] == "IDR"
    assert va["account_number"].startswith(va["merchant_code"])
    r = sandbox.xendit("GET", "/callback_virtual_accounts/" + va["id"])
    assert r.status == 200 and r.json()["status"] == "ACTIVE"
    # Xendit's test-mode "simulate payment" endpoint
    r = sandbox.xendit("POST", "/callback_virtual_accounts/external_id=%s/simulate_payment" % e,
                       {"amount": 150000})
    assert r.status == 200 and r.json()["status"] == "COMPLETED", r
    led = [x for x in sandbox.ledger("xendit", "charge")["entries"] if x["reference"] == e]
    assert len(led) == 1 and led[0]["amount"] == 15000000 and led[0]["currency"] == "IDR"
    # a single-use VA is spent
    assert sandbox.xendit("GET", "/callback_virtual_accounts/" + va["id"]).json()["status"] == "INACTIVE"
    r = sandbox.xendit("POST", "/callback_virtual_accounts/external_id=%s/simulate_payment" % e,
                       {"amount": 150000})
    assert r.status == 400 and r.json()["error_code"] == "INACTIVE_VIRTUAL_ACCOUNT_ERROR"
    r = sandbox.xendit("GET", "/callback_virtual_accounts/nope")
    assert r.status == 404
    assert r.json() == {"error_code": "CALLBACK_VIRTUAL_ACCOUNT_NOT_FOUND_ERROR",
                        "message": "Could not find callback virtual account"}


def test_validation_auth_and_idempotency(sandbox):
    r = sandbox.xendit("POST", "/callback_virtual_accounts", {"bank_code": "BNI", "name": "A"})
    assert r.status == 400 and r.json()["error_code"] == "API_VALIDATION_ERROR"
    assert "external_id" in r.json()["message"]
    r = sandbox.xendit("POST", "/callback_virtual_accounts",
                       {"external_id": ext("x"), "bank_code": "NOPE", "name": "A"})
    assert r.status == 400 and r.json()["error_code"] == "BANK_NOT_SUPPORTED_ERROR"
    r = sandbox.xendit("GET", "/callback_virtual_accounts/x", key="xnd_development_wrong")
    assert r.status == 401 and r.json()["error_code"] == "INVALID_API_KEY"
    r = sandbox.request("POST", "/callback_virtual_accounts", b"{not json",
                        {"Authorization": basic(sandbox.keys["xendit"]),
                         "Content-Type": "application/json"})
    assert r.status == 400 and r.json()["error_code"] == "INVALID_JSON_FORMAT"
    # same key, same body: the first answer; same key, another body: 409
    key, e = "k-" + uuid.uuid4().hex, ext("va")
    body = {"external_id": e, "bank_code": "BCA", "name": "Budi"}
    a = sandbox.xendit("POST", "/callback_virtual_accounts", body, idem=key)
    b = sandbox.xendit("POST", "/callback_virtual_accounts", body, idem=key)
    assert a.status == b.status == 200 and a.body == b.body
    c = sandbox.xendit("POST", "/callback_virtual_accounts", dict(body, name="Other"), idem=key)
    assert c.status == 409 and c.json()["error_code"] == "DUPLICATE_TRANSACTION_ERROR"


def test_qr_codes(sandbox, tmp_path):
    # fixture: "Create QR Code" in https://archive.developers.xendit.co/api-reference/qr-codes/
    # is form-encoded: external_id=testing_id_123, type=DYNAMIC, callback_url=..., amount=1500
    e = ext("testing_id")
    r = sandbox.xendit("POST", "/qr_codes", {"external_id": e, "type": "DYNAMIC",
                                             "callback_url": "http://127.0.0.1:9/callback",
                                             "amount": "1500"}, form=True)
    assert r.status == 201, r
    qr = r.json()
    assert qr["id"].startswith("qr_") and qr["external_id"] == e and qr["amount"] == 1500
    assert qr["status"] == "ACTIVE" and qr["type"] == "DYNAMIC" and qr["qr_string"].startswith("000201")
    r = sandbox.xendit("GET", "/qr_codes/" + e)
    assert r.status == 200 and r.json()["id"] == qr["id"]
    r = sandbox.xendit("POST", "/qr_codes", {"external_id": e, "type": "DYNAMIC",
                                             "callback_url": "http://127.0.0.1:9/cb", "amount": 1500})
    assert r.status == 409 and r.json()["error_code"] == "DUPLICATE_ERROR"
    r = sandbox.xendit("POST", "/qr_codes/%s/payments/simulate" % e, {})
    assert r.status == 200, r
    pay = r.json()
    assert pay["id"].startswith("qrpy_") and pay["status"] == "COMPLETED" and pay["amount"] == 1500
    assert pay["qr_code"]["external_id"] == e
    r = sandbox.xendit("POST", "/qr_codes", {"external_id": ext("q"), "type": "DYNAMIC",
                                             "callback_url": "http://x/cb", "amount": 10})
    assert r.status == 400 and r.json()["error_code"] == "API_VALIDATION_ERROR"


def test_disbursements(sandbox):
    # fixture: "Using Disbursements" https://docs.xendit.co/xendisburse/apis/using-disbursement/
    e = ext("demo")
    body = {"external_id": e, "amount": 17000, "bank_code": "BCA",
            "account_holder_name": "Bob Jones", "account_number": "1231241231",
            "description": "Reimbursement for shoes"}
    key = "d-" + uuid.uuid4().hex
    r = sandbox.xendit("POST", "/disbursements", body, idem=key)
    assert r.status == 200, r
    d = r.json()
    assert d["status"] == "PENDING" and d["external_id"] == e and d["amount"] == 17000
    assert d["disbursement_description"] == "Reimbursement for shoes" and "user_id" in d
    # a disbursement's idempotency key is spent: any reuse is 409 DUPLICATE_TRANSACTION_ERROR
    # (https://docs.xendit.co/id/xendisburse/disbursement-errors)
    r = sandbox.xendit("POST", "/disbursements", body, idem=key)
    assert r.status == 409 and r.json()["error_code"] == "DUPLICATE_TRANSACTION_ERROR"
    # ... and the client finds the first by external_id
    r = sandbox.xendit("GET", "/disbursements?external_id=" + e)
    assert r.status == 200 and [x["id"] for x in r.json()] == [d["id"]]
    # PENDING until the result is notified (payout.delay, 300 ms here), then COMPLETED
    assert sandbox.xendit("GET", "/disbursements/" + d["id"]).json()["status"] == "PENDING"
    assert wait_status(sandbox, "/disbursements/" + d["id"], "COMPLETED")
    payouts = [x for x in sandbox.ledger("xendit", "payout")["entries"] if x["reference"] == e]
    assert len(payouts) == 1 and payouts[0]["amount"] == 1700000
    # a declined payout ends FAILED with a failure_code, and moves no money
    e2 = ext("fail")
    r = sandbox.xendit("POST", "/disbursements", dict(body, external_id=e2), fault="decline")
    assert r.status == 200
    got = wait_status(sandbox, "/disbursements/" + r.json()["id"], "FAILED")
    assert got and got["failure_code"] == "INVALID_DESTINATION"
    assert not [x for x in sandbox.ledger("xendit")["entries"] if x["reference"] == e2]
    r = sandbox.xendit("POST", "/disbursements", dict(body, external_id=ext("low"), amount=5))
    assert r.status == 400 and r.json()["error_code"] == "RECIPIENT_AMOUNT_ERROR"


SDK_SCRIPT = r"""
import json, os, xendit
from xendit import Xendit, XenditError
x = Xendit(api_key=os.environ["KEY"], base_url=os.environ["BASE"])
out = {}
va = x.VirtualAccount.create(external_id=os.environ["E1"], bank_code="BNI", name="Rika Sutanto",
                             x_idempotency_key=os.environ["E1"])
out["va"] = [va.status, va.bank_code, va.external_id]
out["va_get"] = x.VirtualAccount.get(id=va.id).status
qr = x.QRCode.create(external_id=os.environ["E2"], type="DYNAMIC",
                     callback_url="http://127.0.0.1:9/cb", amount=25000)
out["qr"] = [qr.status, qr.amount, qr.external_id]
out["qr_get"] = x.QRCode.get_by_ext_id(external_id=os.environ["E2"]).id == qr.id
d = x.Disbursement.create(external_id=os.environ["E3"], bank_code="BCA",
                          account_holder_name="Bob Jones", account_number="1231241231",
                          description="Reimbursement for shoes", amount=17000,
                          x_idempotency_key=os.environ["E3"])
out["disb"] = [d.status, d.amount]
try:
    x.Disbursement.create(external_id=os.environ["E3"], bank_code="BCA",
                          account_holder_name="Bob Jones", account_number="1231241231",
                          description="Reimbursement for shoes", amount=17000,
                          x_idempotency_key=os.environ["E3"])
except XenditError as e:
    out["dup"] = [e.status_code, e.error_code]
out["by_ext"] = len(x.Disbursement.get_by_ext_id(external_id=os.environ["E3"]))
print(json.dumps(out))
"""


def test_xendit_python_sdk_unchanged(sandbox):
    e1, e2, e3 = ext("sdk-va"), ext("sdk-qr"), ext("sdk-d")
    out = run_sdk(SDK_SCRIPT, {"KEY": sandbox.keys["xendit"], "BASE": sandbox.url,
                               "E1": e1, "E2": e2, "E3": e3})
    assert out["va"] == ["PENDING", "BNI", e1] and out["va_get"] == "ACTIVE"
    assert out["qr"] == ["ACTIVE", 25000, e2] and out["qr_get"] is True
    assert out["disb"] == ["PENDING", 17000]
    assert out["dup"] == [409, "DUPLICATE_TRANSACTION_ERROR"] and out["by_ext"] == 1
    assert len([x for x in sandbox.ledger("xendit", "payout")["entries"]
                if x["reference"] == e3]) == 1
