"""202: authentication, partner isolation, scopes, token exchange, rate limits."""
import base64
import json
import secrets
import time

from ingress_util import (Partner, capture, ingress, new_key, partners, payment_body)  # noqa: F401


def _b64(d):
    return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()


def test_missing_and_bad_credentials(ingress, partners):
    r = ingress.pay(None, payment_body(), key=new_key())
    assert r.status == 401 and r.code == "unauthorized" and "www-authenticate" in r.headers
    r = ingress.pay("Basic " + base64.b64encode(b"ksk_nope:").decode(), payment_body(), key=new_key())
    assert r.status == 401 and r.code == "unauthorized"
    a, _ = partners
    r = ingress.pay("Basic " + base64.b64encode((a.api_key + ":x").encode()).decode(),
                    payment_body(), key=new_key())
    assert r.status == 401, r  # the password must be empty


def test_other_partners_objects_are_404(ingress, partners):
    a, b = partners
    pay = ingress.pay(a, payment_body(n=2), key=new_key()).json()
    oid = pay["payment_orders"][0]["payment_order_id"]
    capture(oid)
    ref = ingress.request("POST", "/v1/refunds", {"payment_order_id": oid, "amount": "1000.00",
                                                  "currency": "IDR"}, auth=a,
                          headers={"Idempotency-Key": new_key()})
    assert ref.status == 202, ref
    po = ingress.request("POST", "/v1/payouts", {"seller_id": "seller-1", "amount": "5000.00",
                                                 "currency": "IDR", "channel": "bank_account",
                                                 "bank_code": "BCA",
                                                 "destination_account": "1234567890"},
                         auth=a, headers={"Idempotency-Key": new_key()})
    assert po.status == 202, po
    reads = ["/v1/payments/" + pay["payment_id"], "/v1/refunds/" + ref.json()["refund_id"],
             "/v1/payouts/" + po.json()["payout_id"]]
    for path in reads:
        assert ingress.request("GET", path, auth=a).status == 200, path
        r = ingress.request("GET", path, auth=b)
        assert r.status == 404 and r.code == "not_found", (path, r)
    r = ingress.request("GET", "/v1/payments?ids=" + pay["payment_id"], auth=b)
    assert r.status == 200 and r.json()["payments"] == [] and r.json()["not_found"] == [pay["payment_id"]]
    # writing against another partner's order is a 404 as well
    r = ingress.request("POST", "/v1/refunds", {"payment_order_id": oid}, auth=b,
                        headers={"Idempotency-Key": new_key()})
    assert r.status == 404 and r.code == "not_found", r


def _token(ingress, p, **kw):
    return ingress.request("POST", "/v1/auth/token", p.sign_token_request(**kw))


def test_token_exchange_and_scopes(ingress, partners):
    a, _ = partners
    r = _token(ingress, a, scope="payments:read")
    assert r.status == 200, r
    tok = r.json()["access_token"]
    assert r.json()["expires_in"] == 900
    pid = ingress.pay(a, payment_body(), key=new_key()).json()["payment_id"]
    assert ingress.request("GET", "/v1/payments/" + pid, auth="Bearer " + tok).status == 200
    r = ingress.pay("Bearer " + tok, payment_body(), key=new_key())
    assert r.status == 403 and r.code == "forbidden_scope", r
    full = _token(ingress, a).json()["access_token"]
    assert ingress.pay("Bearer " + full, payment_body(), key=new_key()).status == 202
    # a key without admin cannot get an admin token, nor call admin endpoints
    assert _token(ingress, a, scope="admin").status == 403
    assert ingress.request("GET", "/v1/admin/partners", auth=a).status == 403


def test_token_request_checks(ingress, partners):
    a, _ = partners
    r = _token(ingress, a, ts=int(time.time()) - 120)
    assert r.status == 401 and r.code == "auth_timestamp_skew", r
    r = _token(ingress, a, key="ksk_wrong")
    assert r.status == 401 and r.code == "auth_signature_invalid", r
    body = a.sign_token_request()
    assert ingress.request("POST", "/v1/auth/token", body).status == 200
    r = ingress.request("POST", "/v1/auth/token", body)
    assert r.status == 401 and r.code == "auth_nonce_replayed", r


def test_jwt_algorithm_pinned(ingress, partners):
    a, _ = partners
    tok = _token(ingress, a).json()["access_token"]
    h, p, s = tok.split(".")
    claims = json.loads(base64.urlsafe_b64decode(p + "=="))
    for hdr, sig in (({"alg": "none", "typ": "JWT"}, ""), ({"alg": "HS512", "typ": "JWT"}, s),
                     ({"alg": "hs256", "typ": "JWT"}, s)):
        forged = "%s.%s.%s" % (_b64(hdr), p, sig)
        r = ingress.request("GET", "/v1/payments?ids=pay_x", auth="Bearer " + forged)
        assert r.status == 401, (hdr, r)
    # a tampered payload (another partner) fails the signature
    claims["sub"] = "ptn_someone_else"
    r = ingress.request("GET", "/v1/payments?ids=pay_x", auth="Bearer %s.%s.%s" % (h, _b64(claims), s))
    assert r.status == 401


def test_rate_limit(ingress):
    slow = Partner("slow-" + secrets.token_hex(3), rps=1)
    codes = [ingress.request("GET", "/v1/payments?ids=pay_x", auth=slow) for _ in range(5)]
    limited = [r for r in codes if r.status == 429]
    assert limited, [r.status for r in codes]
    assert limited[0].code == "rate_limited" and int(limited[0].headers["retry-after"]) >= 1


def test_key_rotation(ingress):
    from ingress_util import cli
    p = Partner("rot-" + secrets.token_hex(3))
    assert ingress.request("GET", "/v1/payments?ids=pay_x", auth=p).status == 200
    out = cli("key", "rotate", p.key_id)
    assert out["revoked"] == p.key_id and out["api_key"] != p.api_key
    newp = Partner.__new__(Partner)
    newp.api_key, newp.key_id, newp.partner_id = out["api_key"], out["key_id"], p.partner_id
    assert ingress.request("GET", "/v1/payments?ids=pay_x", auth=newp).status == 200
