"""207: the OpenAPI document served at /openapi.json is honest: every route and every
problem code of the server is in it, and every request example is accepted as it stands
(ids that must exist are swapped for real ones, signatures made fresh)."""
import base64
import json
import subprocess
import time
import uuid

from conftest import psql
from ingress_util import INGRESS, Partner, capture, cli, ingress, new_key, operator  # noqa: F401
from risk_util import fund_suspense
from test_203_ingress_webhooks import stripe_sig


def served(ingress):
    r = ingress.request("GET", "/openapi.json")
    assert r.status == 200
    return r.json()


def test_routes_and_codes_documented(ingress):
    doc = served(ingress)
    assert doc["openapi"].startswith("3.1")
    routes = subprocess.run([INGRESS, "routes"], capture_output=True, text=True, check=True).stdout
    for line in routes.splitlines():
        method, path = line.split()
        assert path in doc["paths"], path
        assert method.lower() in doc["paths"][path], (method, path)
    codes = subprocess.run([INGRESS, "codes"], capture_output=True, text=True, check=True).stdout
    documented = set(doc["components"]["schemas"]["Problem"]["properties"]["code"]["enum"])
    server = {l.split()[0] for l in codes.splitlines()}
    assert server == documented, (server ^ documented)
    # every status a problem code can have is a documented response somewhere
    statuses = {l.split()[1] for l in codes.splitlines()}
    responses = {s for p in doc["paths"].values() for op in p.values() for s in op["responses"]}
    assert statuses <= responses, statuses - responses


def examples(doc, path, method):
    content = doc["paths"][path][method]["requestBody"]["content"]
    for ctype, c in content.items():
        for ex in c["examples"].values():
            yield ctype, ex["value"]


def test_every_request_example_is_accepted(ingress):
    doc = served(ingress)
    p = Partner("openapi-" + uuid.uuid4().hex[:6])
    seen = 0
    for ctype, ex in examples(doc, "/v1/payments", "post"):
        r = ingress.request("POST", "/v1/payments", ex, auth=p, headers={"Idempotency-Key": new_key()})
        assert r.status == 202, r
        order = r.json()["payment_orders"][0]["payment_order_id"]
        seen += 1
    capture(order)
    for ctype, ex in examples(doc, "/v1/refunds", "post"):
        ex = dict(ex, payment_order_id=order)
        r = ingress.request("POST", "/v1/refunds", ex, auth=p, headers={"Idempotency-Key": new_key()})
        assert r.status == 202, r
        seen += 1
    for ctype, ex in examples(doc, "/v1/payouts", "post"):
        r = ingress.request("POST", "/v1/payouts", ex, auth=p, headers={"Idempotency-Key": new_key()})
        assert r.status == 202, r
        seen += 1
    for ctype, ex in examples(doc, "/v1/auth/token", "post"):
        fresh = p.sign_token_request(scope=ex.get("scope"))
        assert set(fresh) == set(ex), (fresh.keys(), ex.keys())
        r = ingress.request("POST", "/v1/auth/token", fresh)
        assert r.status == 200, r
        seen += 1
    for ctype, ex in examples(doc, "/v1/webhooks/{psp}", "post"):
        b = json.dumps(ex).encode()
        r = ingress.request("POST", "/v1/webhooks/stripe", raw=b, headers={
            "Stripe-Signature": stripe_sig(ingress.secrets["stripe"], int(time.time()), b)})
        assert r.status == 200, r
        seen += 1
    for ctype, ex in examples(doc, "/v1/settlements/{psp}", "post"):
        r = ingress.request("POST", "/v1/settlements/sandbox", raw=ex.encode(), auth=operator(),
                            ctype=ctype)
        assert r.status == 202, r
        seen += 1
    # the hold decisions need a hold of the partner and a key with scope admin
    admin = "Basic " + base64.b64encode(
        (cli("key", "add", p.partner_id, "--scopes", "admin")["api_key"] + ":").encode()).decode()
    for path in ("/v1/admin/holds/{id}/approve", "/v1/admin/holds/{id}/reject"):
        for ctype, ex in examples(doc, path, "post"):
            hold = "pay_openapi_" + uuid.uuid4().hex
            psql("INSERT INTO risk_holds (hold_id, kind, partner_id, party_id, currencies, amounts, "
                 "reasons, rules, outbox_worker) VALUES ('%s', 'payment', '%s', 'b', '{IDR}', "
                 "'{100}', '{NEW_BUYER_CAP}', '{nb}', 'risk/kasir-risk')" % (hold, p.partner_id))
            r = ingress.request("POST", path.replace("{id}", hold), ex, auth=admin)
            assert r.status == 200, r
            seen += 1
    # the ledger's admin endpoints (admin_ledger.c): an adjustment asked by one admin key
    # and decided by another; a retry of a payout that failed for a retriable reason
    admin2 = "Basic " + base64.b64encode(
        (cli("key", "add", p.partner_id, "--scopes", "admin")["api_key"] + ":").encode()).decode()
    fund_suspense(p.partner_id, 1000)  # a credit of a seller from suspense needs its balance
    for ctype, ex in examples(doc, "/v1/admin/adjustments", "post"):
        r = ingress.request("POST", "/v1/admin/adjustments", ex, auth=admin)
        assert r.status == 201, r
        seen += 1
    for path in ("/v1/admin/adjustments/{id}/approve", "/v1/admin/adjustments/{id}/reject"):
        for ctype, ex in examples(doc, path, "post"):
            adj = ingress.request("POST", "/v1/admin/adjustments", {
                "seller_id": "s1", "direction": "credit", "amount": "1.00", "currency": "IDR",
                "counter_account": "suspense", "reason": "openapi"}, auth=admin).json()
            r = ingress.request("POST", path.replace("{id}", adj["adjustment"]["adjustment_id"]),
                                ex, auth=admin2)
            assert r.status == 200, r
            seen += 1
    for ctype, ex in examples(doc, "/v1/admin/payouts/{id}/retry", "post"):
        po = "pyo_openapi_" + uuid.uuid4().hex
        psql("INSERT INTO payouts (payout_id, partner_id, seller_id, amount_minor, currency, channel, "
             "bank_code, destination_account, status, failure_code) VALUES ('%s', '%s', 's1', 100, "
             "'IDR', 'BANK_ACCOUNT', 'BCA', '1234567890', 'FAILED', 'psp_unavailable')"
             % (po, p.partner_id))
        r = ingress.request("POST", "/v1/admin/payouts/%s/retry" % po, ex, auth=admin)
        assert r.status == 202, r
        seen += 1
    with_body = [(path, m) for path, ops in doc["paths"].items() for m, op in ops.items()
                 if "requestBody" in op]
    assert seen >= len(with_body) == 12
