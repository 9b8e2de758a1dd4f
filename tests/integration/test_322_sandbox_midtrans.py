"""322: the sandbox speaks Midtrans: Core API /v2/charge (bank_transfer VA, qris, gopay),
/v2/{order_id}/status and refunds, Iris payouts, Basic auth with the server key and the
status_code/transaction_status answers, as Midtrans' API reference describes them; and
Midtrans' own Python SDK (midtransclient), pointed at the sandbox, works unchanged."""
import hashlib
import time
import uuid

from sandbox_util import run_sdk, sandbox  # noqa: F401


def order():
    return "C%s" % uuid.uuid4().hex[:12]


def sig(o, sc, gross, key):
    return hashlib.sha512((o + sc + gross + key).encode()).hexdigest()


def test_charge_bank_transfer(sandbox):
    # fixture: https://docs.midtrans.com/reference/charge-api (payment_type bank_transfer,
    # bank permata, order_id "C17550", gross_amount 145000)
    o = order()
    r = sandbox.midtrans("POST", "/v2/charge", {
        "payment_type": "bank_transfer", "bank_transfer": {"bank": "permata"},
        "transaction_details": {"order_id": o, "gross_amount": 145000}})
    assert r.status == 200, r
    b = r.json()
    assert b["status_code"] == "201" and b["transaction_status"] == "pending"
    assert b["order_id"] == o and b["gross_amount"] == "145000.00" and b["currency"] == "IDR"
    assert b["payment_type"] == "bank_transfer" and b["fraud_status"] == "accept"
    assert b["permata_va_number"].isdigit() and len(b["transaction_id"]) == 36
    assert len(b["transaction_time"]) == 19 and b["expiry_time"] > b["transaction_time"]
    # BCA answers va_numbers (https://docs.midtrans.com/reference-link/va-number-object)
    o2 = order()
    b2 = sandbox.midtrans("POST", "/v2/charge", {
        "payment_type": "bank_transfer", "bank_transfer": {"bank": "bca"},
        "transaction_details": {"order_id": o2, "gross_amount": 10000}}).json()
    assert b2["va_numbers"][0]["bank"] == "bca" and b2["va_numbers"][0]["va_number"].isdigit()
    # the order id is unique: a second charge is 406
    r = sandbox.midtrans("POST", "/v2/charge", {
        "payment_type": "bank_transfer", "bank_transfer": {"bank": "permata"},
        "transaction_details": {"order_id": o, "gross_amount": 145000}})
    assert r.status == 406 and r.json()["status_code"] == "406"
    # status, then the customer pays: settlement, status_code 200, signature_key
    st = sandbox.midtrans("GET", "/v2/%s/status" % o).json()
    assert st["status_code"] == "201" and st["transaction_status"] == "pending"
    assert st["signature_key"] == sig(o, "201", "145000.00", sandbox.keys["midtrans"])
    assert sandbox.event("midtrans", "paid", o).status == 202
    st = sandbox.midtrans("GET", "/v2/%s/status" % b["transaction_id"]).json()
    assert st["status_code"] == "200" and st["transaction_status"] == "settlement"
    assert st["settlement_time"]
    led = [x for x in sandbox.ledger("midtrans", "charge")["entries"] if x["reference"] == o]
    assert len(led) == 1 and led[0]["amount"] == 14500000 and led[0]["method"] == "virtual_account"
    # bank transfers cannot be refunded through the API
    r = sandbox.midtrans("POST", "/v2/%s/refund" % o, {"refund_key": "r1", "amount": 1000})
    assert r.status == 412 and r.json()["status_code"] == "412"


def test_charge_qris_gopay_refund(sandbox):
    # fixtures: https://docs.midtrans.com/reference/qris and /reference/gopay (Charge API)
    o = order()
    b = sandbox.midtrans("POST", "/v2/charge", {
        "payment_type": "qris", "qris": {"acquirer": "gopay"},
        "transaction_details": {"order_id": o, "gross_amount": 50000}}).json()
    assert b["status_code"] == "201" and b["payment_type"] == "qris" and b["qr_string"]
    assert b["actions"][0]["name"] == "generate-qr-code"
    og = order()
    g = sandbox.midtrans("POST", "/v2/charge", {
        "payment_type": "gopay", "transaction_details": {"order_id": og, "gross_amount": 20000},
        "gopay": {"enable_callback": True, "callback_url": "someapps://callback"}}).json()
    assert g["payment_type"] == "gopay" and g["transaction_status"] == "pending"
    assert {a["name"] for a in g["actions"]} >= {"generate-qr-code", "deeplink-redirect"}
    # pay the QRIS, refund part of it twice with one refund_key, then the rest
    # (https://docs.midtrans.com/reference/refund-transaction)
    assert sandbox.event("midtrans", "paid", o).status == 202
    r = sandbox.midtrans("POST", "/v2/%s/refund" % o,
                         {"refund_key": "reference1", "amount": 5000, "reason": "for some reason"})
    assert r.status == 200, r
    rf = r.json()
    assert rf["status_code"] == "200" and rf["transaction_status"] == "partial_refund"
    assert rf["refund_amount"] == "5000.00" and rf["refund_key"] == "reference1"
    again = sandbox.midtrans("POST", "/v2/%s/refund" % o,
                             {"refund_key": "reference1", "amount": 5000, "reason": "for some reason"})
    assert again.status == 200 and again.json()["refund_chargeback_id"] == rf["refund_chargeback_id"]
    r = sandbox.midtrans("POST", "/v2/%s/refund" % o, {"refund_key": "reference2", "amount": 60000})
    assert r.status == 412
    r = sandbox.midtrans("POST", "/v2/%s/refund" % o, {"refund_key": "reference3"})
    assert r.status == 200 and r.json()["transaction_status"] == "refund"
    assert r.json()["refund_amount"] == "45000.00"
    refunds = [x for x in sandbox.ledger("midtrans", "refund")["entries"] if x.get("refund_of") == o]
    assert sorted(x["amount"] for x in refunds) == [500000, 4500000]


def test_errors_and_auth(sandbox):
    r = sandbox.midtrans("POST", "/v2/charge", {"payment_type": "bank_transfer",
                                                "transaction_details": {"order_id": order()}})
    assert r.status == 400 and r.json()["status_code"] == "400"
    assert r.json()["validation_messages"]
    r = sandbox.midtrans("GET", "/v2/%s/status" % order())
    assert r.status == 404 and r.json()["status_code"] == "404"
    r = sandbox.midtrans("GET", "/v2/x/status", key="SB-Mid-server-wrong")
    assert r.status == 401 and r.json()["status_code"] == "401"
    # a declined charge: status_code 202, transaction_status deny
    r = sandbox.midtrans("POST", "/v2/charge", {
        "payment_type": "gopay", "transaction_details": {"order_id": order(), "gross_amount": 1000}},
        fault="decline")
    assert r.status == 200 and r.json()["status_code"] == "202"
    assert r.json()["transaction_status"] == "deny"


def test_iris_payouts(sandbox):
    # fixture: Iris "Create Payouts" (https://docs.midtrans.com/reference/create-payouts)
    note = "Payout " + uuid.uuid4().hex[:8]
    body = {"payouts": [{"beneficiary_name": "Jon Snow", "beneficiary_account": "1172993826",
                         "beneficiary_bank": "bni", "beneficiary_email": "beneficiary@example.com",
                         "amount": "100000.00", "notes": note}]}
    key = "iris-" + uuid.uuid4().hex
    r = sandbox.iris("POST", "/api/v1/payouts", body, idem=key)
    assert r.status == 201, r
    p = r.json()["payouts"][0]
    assert p["status"] == "queued" and p["reference_no"]
    again = sandbox.iris("POST", "/api/v1/payouts", body, idem=key)
    assert again.status == 201 and again.body == r.body
    other = sandbox.iris("POST", "/api/v1/payouts", {"payouts": [dict(body["payouts"][0], amount="5.00")]},
                         idem=key)
    assert other.status == 409
    got = sandbox.iris("GET", "/api/v1/payouts/" + p["reference_no"]).json()
    assert got["reference_no"] == p["reference_no"] and got["amount"] == "100000.00"
    assert got["status"] == "queued"
    deadline = time.time() + 5  # completed once the result is notified (payout.delay)
    while got["status"] == "queued" and time.time() < deadline:
        time.sleep(0.05)
        got = sandbox.iris("GET", "/api/v1/payouts/" + p["reference_no"]).json()
    assert got["status"] == "completed"
    assert len([x for x in sandbox.ledger("midtrans", "payout")["entries"]
                if x["reference"] == note]) == 1
    r = sandbox.iris("POST", "/api/v1/payouts", {"payouts": [{"amount": "1.00"}]})
    assert r.status == 400 and r.json()["errors"]


SDK_SCRIPT = r"""
import json, os, midtransclient
# midtransclient has no base-URL setting: its sandbox base is a class attribute
midtransclient.config.ApiConfig.CORE_SANDBOX_BASE_URL = os.environ["BASE"]
core = midtransclient.CoreApi(is_production=False, server_key=os.environ["KEY"], client_key="c")
out = {}
r = core.charge({"payment_type": "bank_transfer", "bank_transfer": {"bank": "bni"},
                 "transaction_details": {"order_id": os.environ["O1"], "gross_amount": 44000}})
out["charge"] = [r["status_code"], r["transaction_status"], r["va_numbers"][0]["bank"]]
out["status"] = core.transactions.status(os.environ["O1"])["transaction_status"]
try:
    core.charge({"payment_type": "bank_transfer", "bank_transfer": {"bank": "bni"},
                 "transaction_details": {"order_id": os.environ["O1"], "gross_amount": 44000}})
except midtransclient.error_midtrans.MidtransAPIError as e:
    out["dup"] = e.http_status_code
q = core.charge({"payment_type": "qris", "transaction_details": {"order_id": os.environ["O2"],
                 "gross_amount": 30000}})
out["qris"] = q["payment_type"]
print(json.dumps(out))
"""


def test_midtransclient_sdk_unchanged(sandbox):
    o1, o2 = order(), order()
    out = run_sdk(SDK_SCRIPT, {"KEY": sandbox.keys["midtrans"], "BASE": sandbox.url,
                               "O1": o1, "O2": o2})
    assert out["charge"] == ["201", "pending", "bni"] and out["status"] == "pending"
    assert out["dup"] == 406 and out["qris"] == "qris"
