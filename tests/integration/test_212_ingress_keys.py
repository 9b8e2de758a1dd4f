"""212: authorization and keys (issue 12).

- settlement files need the operator scope settlements:write, which no default key has;
  nor has any the operator scope ledger:global (adjustments against Kasir's own accounts,
  test_409), which an operator grants with `key add --scopes admin,ledger:global`;
  every published row carries its uploader (test_204 test_settlement_upload);
- `key revoke` ends a key at once, inside its rotation grace too; a Bearer token dies with
  its key; a partner can be disabled (and enabled), at once;
- an unknown scope name in --scopes is an error, never the default set;
- the token request's scope is covered by its signature;
- seller ids are the partner's: partner B cannot pay out partner A's seller;
- psp_preference "sandbox" only where the deployment enables the sandbox."""
import base64
import hashlib
import hmac
import json
import subprocess
import time
import uuid

from conftest import PG_DSN, psql_one
from ingress_util import (Partner, cli, cli_run, count_in_kafka, ingress, kafka_since,  # noqa: F401
                          new_key, now_ms, partners, payment_body, start_ingress)

READ = "/v1/payments?ids=pay_x"


def soon(ingress, auth, status, within=1.0):
    """The answer to READ with auth, once it is status or within seconds (a change reaches
    the ingress by NOTIFY: a few milliseconds, where the cache used to keep it 30 s)."""
    deadline = time.time() + within
    while True:
        r = ingress.request("GET", READ, auth=auth)
        if r.status == status or time.time() > deadline:
            return r
        time.sleep(0.02)


def _token(ingress, p, **kw):
    r = ingress.request("POST", "/v1/auth/token", p.sign_token_request(**kw))
    assert r.status == 200, r
    return "Bearer " + r.json()["access_token"]


def _as(p, api_key, key_id):
    q = Partner.__new__(Partner)
    q.api_key, q.key_id, q.partner_id = api_key, key_id, p.partner_id
    return q


def test_default_keys_lack_the_operator_scope():
    out = cli("partner", "add", "dflt-" + uuid.uuid4().hex[:6])
    assert "settlements:write" not in out["scopes"].split(), out
    assert "payments:write" in out["scopes"].split()
    assert psql_one("SELECT array_to_string(scopes, ' ') FROM api_keys WHERE key_id = '%s'"
                    % out["key_id"]) == out["scopes"]
    for scopes in (out["scopes"], cli("key", "add", out["partner_id"], "--scopes", "admin")["scopes"]):
        assert "ledger:global" not in scopes.split(), scopes


def test_operator_grants_ledger_global():
    p = Partner("glob-" + uuid.uuid4().hex[:6])
    out = cli("key", "add", p.partner_id, "--scopes", "admin,ledger:global")
    assert out["scopes"] == "admin ledger:global", out
    assert psql_one("SELECT array_to_string(scopes, ' ') FROM api_keys WHERE key_id = '%s'"
                    % out["key_id"]) == "admin ledger:global"
    assert "ledger:global" in cli_run("scopes").stdout.split()


def test_revoked_key_is_refused_at_once(ingress):
    p = Partner("rev-" + uuid.uuid4().hex[:6])
    assert ingress.request("GET", READ, auth=p).status == 200  # cached now
    cli("key", "revoke", p.key_id)
    r = soon(ingress, p, 401)
    assert r.status == 401 and r.code == "unauthorized", r


def test_revoke_inside_rotation_grace(ingress):
    p = Partner("grace-" + uuid.uuid4().hex[:6])
    out = cli("key", "rotate", p.key_id, "--grace", "3600")
    new = _as(p, out["api_key"], out["key_id"])
    assert ingress.request("GET", READ, auth=p).status == 200  # the old key, in its grace
    assert ingress.request("GET", READ, auth=new).status == 200
    out = cli("key", "revoke", p.key_id)  # was "no active key" while in its grace
    assert out["revoked"] == p.key_id
    r = soon(ingress, p, 401)
    assert r.status == 401, r
    assert ingress.request("GET", READ, auth=new).status == 200


def test_bearer_token_dies_with_its_key(ingress):
    p = Partner("tok-" + uuid.uuid4().hex[:6])
    tok = _token(ingress, p)
    assert ingress.request("GET", READ, auth=tok).status == 200
    cli("key", "revoke", p.key_id)
    r = soon(ingress, tok, 401)
    assert r.status == 401 and r.code == "unauthorized", r
    # and a token request with the revoked key's signing key gets nothing
    r = ingress.request("POST", "/v1/auth/token", p.sign_token_request())
    assert r.status == 401, r


def test_partner_disabled_and_enabled(ingress):
    p = Partner("dis-" + uuid.uuid4().hex[:6])
    tok = _token(ingress, p)
    assert ingress.request("GET", READ, auth=p).status == 200
    assert cli("partner", "disable", p.partner_id)["disabled"] == p.partner_id
    for auth in (p, tok):
        r = soon(ingress, auth, 401)
        assert r.status == 401, r
    assert ingress.pay(p, payment_body(), key=new_key()).status == 401
    assert cli_run("partner", "disable", p.partner_id).returncode != 0  # already
    cli("partner", "enable", p.partner_id)
    assert soon(ingress, p, 200).status == 200
    assert soon(ingress, tok, 200).status == 200


def test_unknown_scope_is_an_error():
    before = psql_one("SELECT count(*) FROM partners")
    for scopes in ("payments:wrte", "payments:write admin:all", ",", ""):
        r = cli_run("partner", "add", "bad-" + uuid.uuid4().hex[:6], "--scopes", scopes)
        assert r.returncode == 2 and "api_key" not in r.stdout, (scopes, r.stdout, r.stderr)
        assert "scope" in r.stderr
    assert psql_one("SELECT count(*) FROM partners") == before
    p = Partner("scp-" + uuid.uuid4().hex[:6])
    r = cli_run("key", "add", p.partner_id, "--scopes", "refunds:wrte")
    assert r.returncode == 2 and "api_key" not in r.stdout, r.stdout
    out = cli("key", "add", p.partner_id, "--scopes", "payments:read")
    assert out["scopes"] == "payments:read"


def _signed_token(ingress, p, scope):
    """A Bearer token as an ingress signs them (HS256 with SHA-256 of auth.jwt_secret), here
    with a scope claim of the test's choosing: as a newer ingress could sign it."""
    def b64(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    now = int(time.time())
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({"iss": "kasir", "sub": p.partner_id, "kid": p.key_id, "scope": scope,
                           "jti": uuid.uuid4().hex, "iat": now, "exp": now + 300}).encode())
    key = hashlib.sha256(ingress.daemon.env["KASIR_AUTH_JWT_SECRET"].encode()).digest()
    sig = b64(hmac.new(key, (head + "." + body).encode(), hashlib.sha256).digest())
    return "Bearer %s.%s.%s" % (head, body, sig)


def test_a_scope_this_ingress_does_not_know_leaves_the_others(ingress):
    """A key stored with a scope name this ingress does not know (one a newer ingress added,
    as ledger:global was) had no scope at all here: every request 403, no token for it, and
    a token a newer ingress signed with such a name refused as lacking kasir claims. The
    unknown name now grants nothing and the other scopes stand (session 20's review); the
    CLI still refuses an unknown name typed in (test_unknown_scope_is_an_error), and a
    rotation that could not copy it is refused, revoking nothing."""
    p = Partner("scf-" + uuid.uuid4().hex[:6])
    psql_one("UPDATE api_keys SET scopes = ARRAY['payments:read', 'future:scope'] "
             "WHERE key_id = '%s' RETURNING key_id" % p.key_id)
    r = ingress.request("GET", "/v1/payments?ids=pay_none", auth=p)
    assert r.status == 200, r
    r = ingress.request("POST", "/v1/payouts", {"seller_id": "s1"}, auth=p,
                        headers={"Idempotency-Key": new_key()})
    assert r.status == 403 and r.code == "forbidden_scope", r
    tok = ingress.request("POST", "/v1/auth/token", p.sign_token_request())
    assert tok.status == 200 and tok.json()["scope"] == "payments:read", tok
    # a token signed with the unknown name beside a known one, or alone
    r = ingress.request("GET", "/v1/payments?ids=pay_none",
                        auth=_signed_token(ingress, p, "payments:read future:scope"))
    assert r.status == 200, r
    r = ingress.request("GET", "/v1/payments?ids=pay_none", auth=_signed_token(ingress, p, "future:scope"))
    assert r.status == 403 and r.code == "forbidden_scope", r
    # the rotation would lose future:scope: refused, the old key still works
    r = cli_run("key", "rotate", p.key_id, "--grace", "0")
    assert r.returncode == 2 and "future:scope" in r.stderr, (r.stdout, r.stderr)
    assert "api_key" not in r.stdout and "revoked" not in r.stdout, r.stdout
    assert psql_one("SELECT revoked_at IS NULL FROM api_keys WHERE key_id = '%s'" % p.key_id) == "t"
    assert ingress.request("GET", "/v1/payments?ids=pay_none", auth=p).status == 200
    # every stored element is one name (migration 951): a part of one is never read as a scope
    for bad in ("'admin readonly'", "'x,ledger:global'", "''", "NULL", "'Admin'"):
        r = subprocess.run(["psql", PG_DSN, "-v", "ON_ERROR_STOP=1", "-qtAX", "-c",
                            "UPDATE api_keys SET scopes = ARRAY['payments:read', %s] "
                            "WHERE key_id = '%s'" % (bad, p.key_id)],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode != 0 and "api_keys_scope_names" in r.stderr, (bad, r.stderr)


def test_token_scope_is_signed(ingress, partners):
    a, _ = partners
    # signed without a scope, a scope added afterwards
    body = a.sign_token_request()
    body["scope"] = "payments:read"
    r = ingress.request("POST", "/v1/auth/token", body)
    assert r.status == 401 and r.code == "auth_signature_invalid", r
    # signed with a narrow scope, the scope taken away (which would mean all of the key's)
    body = a.sign_token_request(scope="payments:read")
    del body["scope"]
    r = ingress.request("POST", "/v1/auth/token", body)
    assert r.status == 401 and r.code == "auth_signature_invalid", r
    # signed with one scope, another put in its place
    body = a.sign_token_request(scope="payments:read")
    body["scope"] = "payments:write"
    r = ingress.request("POST", "/v1/auth/token", body)
    assert r.status == 401 and r.code == "auth_signature_invalid", r
    # as signed
    r = ingress.request("POST", "/v1/auth/token", a.sign_token_request(scope="payments:read"))
    assert r.status == 200 and r.json()["scope"] == "payments:read", r


def _payout(ingress, p, seller, amount="5000.00"):
    return ingress.request("POST", "/v1/payouts", {
        "seller_id": seller, "amount": amount, "currency": "IDR", "channel": "bank_account",
        "bank_code": "BCA", "destination_account": "1234567890"}, auth=p,
        headers={"Idempotency-Key": new_key()})


def test_partner_b_cannot_pay_out_partner_a_seller(ingress, partners):
    """A seller id is the partner's: the same name under another partner is another wallet.
    B's payout of "A's seller" is B's own seller's, in the event, its key and the reads."""
    a, b = partners
    t0 = now_ms()
    seller = "seller-" + uuid.uuid4().hex[:8]
    assert ingress.pay(a, payment_body(), key=new_key()).status == 202
    pa = _payout(ingress, a, seller)
    pb = _payout(ingress, b, seller)
    assert pa.status == 202 and pb.status == 202, (pa, pb)
    time.sleep(0.5)
    msgs = [(k, v) for k, v in kafka_since("kasir.payouts.requested", t0) if seller.encode() in v]
    keys = {k for k, v in msgs}
    assert keys == {"%s:%s" % (a.partner_id, seller), "%s:%s" % (b.partner_id, seller)}, keys
    for k, v in msgs:
        pid = a.partner_id if pa.json()["payout_id"].encode() in v else b.partner_id
        assert k == "%s:%s" % (pid, seller) and pid.encode() in v
    # A sees its payout only; B's is not A's
    assert ingress.request("GET", "/v1/payouts/" + pb.json()["payout_id"], auth=a).status == 404
    assert psql_one("SELECT partner_id FROM payouts WHERE payout_id = '%s'"
                    % pb.json()["payout_id"]) == b.partner_id


def test_sandbox_psp_only_where_enabled(ingress, partners):
    a, _ = partners
    body = payment_body()
    body["payment_orders"][0]["psp_preference"] = "sandbox"
    assert ingress.pay(a, body, key=new_key()).status == 202  # start_ingress enables it
    ing = start_ingress({"KASIR_PSP_SANDBOX": "false"})
    try:
        r = ing.pay(a, payment_body(**{}) | {"payment_orders": body["payment_orders"]}, key=new_key())
        assert r.status == 400 and r.code == "value_not_allowed", r
        assert r.json()["field"] == "payment_orders[0].psp_preference"
        body2 = payment_body()
        body2["payment_orders"][0]["psp_preference"] = "xendit"
        assert ing.pay(a, body2, key=new_key()).status == 202
    finally:
        ing.daemon.term()
