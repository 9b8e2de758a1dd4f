"""320: the sandbox speaks Stripe: PaymentIntents and Refunds, form-encoded, Bearer/Basic
auth with the secret key, idempotency keys, the error object and the test payment
methods, as Stripe's API reference describes them; and Stripe's own Python SDK, pointed at
the sandbox, works unchanged."""
import json
import uuid

from sandbox_util import run_sdk, sandbox, splitmix_rolls  # noqa: F401


def oid():
    return "ord_" + uuid.uuid4().hex[:16]


def test_create_confirm_retrieve(sandbox):
    # fixture: https://docs.stripe.com/api/payment_intents/create (curl example:
    # amount=2000, currency=usd, automatic_payment_methods[enabled]=true)
    r = sandbox.stripe("POST", "/v1/payment_intents",
                       {"amount": 2000, "currency": "usd",
                        "automatic_payment_methods": {"enabled": True}})
    assert r.status == 200, r
    pi = r.json()
    assert pi["object"] == "payment_intent" and pi["id"].startswith("pi_")
    assert pi["amount"] == 2000 and pi["currency"] == "usd"
    assert pi["status"] == "requires_payment_method" and pi["livemode"] is False
    assert pi["client_secret"].startswith(pi["id"] + "_secret_")
    assert r.headers["request-id"].startswith("req_")
    # confirm with a test payment method (https://docs.stripe.com/api/payment_intents/confirm)
    r = sandbox.stripe("POST", "/v1/payment_intents/%s/confirm" % pi["id"],
                       {"payment_method": "pm_card_visa"})
    assert r.status == 200, r
    done = r.json()
    assert done["status"] == "succeeded" and done["amount_received"] == 2000
    assert done["latest_charge"].startswith("ch_") and done["payment_method"] == "pm_card_visa"
    # confirming again is payment_intent_unexpected_state
    r = sandbox.stripe("POST", "/v1/payment_intents/%s/confirm" % pi["id"], {})
    assert r.status == 400 and r.json()["error"]["code"] == "payment_intent_unexpected_state", r
    # retrieve (https://docs.stripe.com/api/payment_intents/retrieve)
    r = sandbox.stripe("GET", "/v1/payment_intents/" + pi["id"])
    assert r.status == 200 and r.json()["status"] == "succeeded"
    r = sandbox.stripe("GET", "/v1/payment_intents/pi_doesnotexist")
    err = r.json()["error"]
    assert r.status == 404 and err["type"] == "invalid_request_error"
    assert err["code"] == "resource_missing" and err["param"] == "intent"


def test_create_and_confirm_in_one_call_with_metadata(sandbox):
    o = oid()
    r = sandbox.stripe("POST", "/v1/payment_intents",
                       {"amount": 1500000, "currency": "idr", "payment_method": "pm_card_visa",
                        "confirm": True, "metadata": {"order_id": o}})
    assert r.status == 200, r
    pi = r.json()
    assert pi["status"] == "succeeded" and pi["metadata"] == {"order_id": o}
    led = sandbox.ledger("stripe", "charge")
    mine = [e for e in led["entries"] if e["reference"] == o]
    assert len(mine) == 1 and mine[0]["amount"] == 1500000 and mine[0]["object_id"] == pi["id"]


def test_declines_are_card_errors(sandbox):
    # https://docs.stripe.com/testing#declined-payments and https://docs.stripe.com/api/errors
    cases = [("pm_card_chargeDeclined", "card_declined", "generic_decline"),
             ("pm_card_chargeDeclinedInsufficientFunds", "card_declined", "insufficient_funds"),
             ("pm_card_chargeDeclinedExpiredCard", "expired_card", "expired_card"),
             ("pm_card_chargeDeclinedIncorrectCvc", "incorrect_cvc", "incorrect_cvc")]
    for pm, code, decline in cases:
        o = oid()
        r = sandbox.stripe("POST", "/v1/payment_intents",
                           {"amount": 5000, "currency": "usd", "payment_method": pm,
                            "confirm": True, "metadata": {"order_id": o}})
        assert r.status == 402, (pm, r)
        e = r.json()["error"]
        assert e["type"] == "card_error" and e["code"] == code and e["decline_code"] == decline
        assert e["charge"].startswith("ch_") and e["message"]
        assert e["payment_intent"]["status"] == "requires_payment_method"
        assert e["payment_intent"]["last_payment_error"]["decline_code"] == decline
        assert not [x for x in sandbox.ledger("stripe")["entries"] if x["reference"] == o]
    # an unknown payment method is a 400 naming the param
    r = sandbox.stripe("POST", "/v1/payment_intents",
                       {"amount": 5000, "currency": "usd", "payment_method": "pm_nope",
                        "confirm": True})
    assert r.status == 400 and r.json()["error"]["param"] == "payment_method"
    assert r.json()["error"]["code"] == "resource_missing"


def test_validation_and_auth(sandbox):
    r = sandbox.stripe("POST", "/v1/payment_intents", {"currency": "usd"})
    e = r.json()["error"]
    assert r.status == 400 and e["code"] == "parameter_missing" and e["param"] == "amount"
    r = sandbox.stripe("POST", "/v1/payment_intents", {"amount": 100, "currency": "usd",
                                                       "colour": "blue"})
    e = r.json()["error"]
    assert r.status == 400 and e["code"] == "parameter_unknown" and e["param"] == "colour"
    r = sandbox.stripe("POST", "/v1/payment_intents", {"amount": -5, "currency": "usd"})
    assert r.status == 400 and r.json()["error"]["param"] == "amount"
    # Bearer works as Basic does; a wrong or missing key is 401 invalid_request_error
    r = sandbox.stripe("POST", "/v1/payment_intents", {"amount": 100, "currency": "usd"},
                       bearer=True)
    assert r.status == 200, r
    r = sandbox.stripe("POST", "/v1/payment_intents", {"amount": 100, "currency": "usd"},
                       key="sk_test_wrong")
    assert r.status == 401 and r.json()["error"]["type"] == "invalid_request_error"
    assert "sk_test_wrong" not in r.body.decode()
    r = sandbox.request("GET", "/v1/payment_intents/pi_x")
    assert r.status == 401 and "API key" in r.json()["error"]["message"]
    r = sandbox.request("PUT", "/v1/payment_intents/pi_x")
    assert r.status == 405


def test_idempotency_replay_and_mismatch(sandbox):
    # https://docs.stripe.com/api/idempotent_requests
    o, key = oid(), "idem-" + uuid.uuid4().hex
    params = {"amount": 777, "currency": "usd", "payment_method": "pm_card_visa",
              "confirm": True, "metadata": {"order_id": o}}
    first = sandbox.stripe("POST", "/v1/payment_intents", params, idem=key)
    assert first.status == 200 and "idempotent-replayed" not in first.headers
    again = sandbox.stripe("POST", "/v1/payment_intents", params, idem=key)
    assert again.status == 200 and again.headers.get("idempotent-replayed") == "true"
    assert again.body == first.body
    # the same key with other parameters
    r = sandbox.stripe("POST", "/v1/payment_intents", dict(params, amount=778), idem=key)
    e = r.json()["error"]
    assert r.status == 400 and e["type"] == "idempotency_error" and key in e["message"]
    # a declined attempt is replayed as the same 402 (it ran)
    key2 = "idem-" + uuid.uuid4().hex
    d = {"amount": 10, "currency": "usd", "payment_method": "pm_card_chargeDeclined",
         "confirm": True}
    a = sandbox.stripe("POST", "/v1/payment_intents", d, idem=key2)
    b = sandbox.stripe("POST", "/v1/payment_intents", d, idem=key2)
    assert a.status == b.status == 402 and a.body == b.body
    assert b.headers.get("idempotent-replayed") == "true"
    led = [e for e in sandbox.ledger("stripe", "charge")["entries"] if e["reference"] == o]
    assert len(led) == 1 and led[0]["idempotency_key"] == key


def test_refunds(sandbox):
    o = oid()
    pi = sandbox.stripe("POST", "/v1/payment_intents",
                        {"amount": 10000, "currency": "usd", "payment_method": "pm_card_visa",
                         "confirm": True, "metadata": {"order_id": o}}).json()
    # https://docs.stripe.com/api/refunds/create: payment_intent and an optional amount
    r = sandbox.stripe("POST", "/v1/refunds", {"payment_intent": pi["id"], "amount": 3000,
                                                "metadata": {"refund_id": o + "-r1"}},
                       idem="rf-" + o)
    assert r.status == 200, r
    re1 = r.json()
    assert re1["object"] == "refund" and re1["status"] == "succeeded" and re1["amount"] == 3000
    assert re1["payment_intent"] == pi["id"] and re1["charge"] == pi["latest_charge"]
    r = sandbox.stripe("POST", "/v1/refunds", {"payment_intent": pi["id"], "amount": 9000})
    e = r.json()["error"]
    assert r.status == 400 and e["code"] == "amount_too_large" and e["param"] == "amount"
    # the same key replays the first refund; nothing is paid twice
    r = sandbox.stripe("POST", "/v1/refunds", {"payment_intent": pi["id"], "amount": 3000,
                                                "metadata": {"refund_id": o + "-r1"}},
                       idem="rf-" + o)
    assert r.status == 200 and r.json()["id"] == re1["id"]
    # by charge id, the rest
    r = sandbox.stripe("POST", "/v1/refunds", {"charge": pi["latest_charge"]})
    assert r.status == 200 and r.json()["amount"] == 7000
    r = sandbox.stripe("POST", "/v1/refunds", {"payment_intent": pi["id"]})
    assert r.status == 400 and r.json()["error"]["code"] == "charge_already_refunded"
    r = sandbox.stripe("GET", "/v1/refunds/" + re1["id"])
    assert r.status == 200 and r.json()["id"] == re1["id"]
    refunds = [e for e in sandbox.ledger("stripe", "refund")["entries"]
               if e.get("refund_of") == pi["id"]]
    assert sorted(e["amount"] for e in refunds) == [3000, 7000]


SDK_SCRIPT = r"""
import json, os, stripe
client = stripe.StripeClient(os.environ["SK"], base_addresses={"api": os.environ["BASE"]},
                             max_network_retries=2)
out = {}
pi = client.payment_intents.create(params={"amount": 2000, "currency": "usd",
        "payment_method": "pm_card_visa", "metadata": {"order_id": os.environ["OID"]}})
out["created"] = pi.status
pi = client.payment_intents.confirm(pi.id)
out["confirmed"] = pi.status
out["retrieved"] = client.payment_intents.retrieve(pi.id).amount_received
re = client.refunds.create(params={"payment_intent": pi.id, "amount": 500})
out["refund"] = [re.status, re.amount]
try:
    client.payment_intents.create(params={"amount": 100, "currency": "usd",
        "payment_method": "pm_card_chargeDeclinedInsufficientFunds", "confirm": True})
except stripe.CardError as e:
    out["decline"] = [e.code, e.error.decline_code, e.http_status]
# the SDK's own retry: the first attempt is charged and its answer lost, the retry carries
# the same (SDK-made) Idempotency-Key and gets the first answer
pi2 = client.payment_intents.create(params={"amount": 4242, "currency": "usd",
        "payment_method": "pm_card_visa", "confirm": True,
        "metadata": {"order_id": os.environ["OID2"]}})
out["retried"] = [pi2.status, pi2.last_response.headers.get("Idempotent-Replayed")]
print(json.dumps(out))
"""


def test_stripe_python_sdk_unchanged(sandbox):
    o, o2 = oid(), oid()
    # a seed whose first roll is a timeout (< 50) and the next two are not: the first
    # attempt of the fourth call below is charged and dropped, its retry answered
    seed = next(s for s in range(1, 10000)
                if [x < 50 for x in splitmix_rolls(s, 1)] == [True]
                and all(x >= 50 for x in splitmix_rolls(s, 3)[1:]))
    env = {"SK": sandbox.keys["stripe"], "BASE": sandbox.url, "OID": o, "OID2": o2}
    # the first four calls run with no faults; the fault roll applies from the charge on
    script = SDK_SCRIPT.replace(
        "pi2 = client", "import urllib.request\n"
        "req = urllib.request.Request(os.environ['BASE'] + '/_sandbox/faults', method='POST',"
        " data=json.dumps({'timeout_pct': 50, 'seed': %d}).encode(),"
        " headers={'Content-Type': 'application/json'})\n"
        "urllib.request.urlopen(req).read()\npi2 = client" % seed)
    try:
        out = run_sdk(script, env)
    finally:
        sandbox.faults(timeout_pct=0, error_pct=0, decline_pct=0)
    assert out["created"] == "requires_confirmation" and out["confirmed"] == "succeeded"
    assert out["retrieved"] == 2000 and out["refund"] == ["succeeded", 500]
    assert out["decline"] == ["card_declined", "insufficient_funds", 402]
    assert out["retried"] == ["succeeded", "true"], out
    charges = [e for e in sandbox.ledger("stripe", "charge")["entries"] if e["reference"] == o2]
    assert len(charges) == 1, charges  # charged once, though the SDK sent it twice
    assert json.loads(sandbox.control("GET", "/_sandbox/faults").body)["injected"]["timeouts"] >= 1
