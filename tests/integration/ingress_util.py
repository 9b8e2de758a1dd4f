"""Helpers for the ingress tests (2xx): a kasir-ingress of our own with two fresh partners,
HTTP calls, token signing, webhook signing and Kafka look-ups.

Secrets (API keys, webhook secrets, the JWT key) are generated at test time and live only
in memory and in the daemon's environment; they are never written to a fixture file."""
import base64
import hashlib
import hmac
import http.client
import json
import os
import secrets
import subprocess
import time
import uuid

import pytest

from conftest import Daemon, PG_DSN, bin_path, kcat_messages

INGRESS = bin_path("ingress")


def cli(*args, env=None):
    """Runs kasir-ingress CLI; returns dict of its key=value lines."""
    e = dict(os.environ)
    e["KASIR_PG_DSN"] = PG_DSN
    e.update(env or {})
    p = subprocess.run([INGRESS, *args], capture_output=True, text=True, env=e, timeout=30)
    assert p.returncode == 0, p.stderr
    out = {}
    for line in p.stdout.splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            out[k] = v
    return out


class Partner:
    def __init__(self, name, rps=100000, scopes=None):
        args = ["partner", "add", name, "--rps", str(rps), "--burst", str(rps)]
        if scopes:
            args += ["--scopes", scopes]
        out = cli(*args)
        self.partner_id = out["partner_id"]
        self.key_id = out["key_id"]
        self.api_key = out["api_key"]

    def basic(self):
        return "Basic " + base64.b64encode((self.api_key + ":").encode()).decode()

    def sign_token_request(self, ts=None, nonce=None, scope=None, key=None):
        ts = int(time.time()) if ts is None else ts
        nonce = nonce or secrets.token_hex(16)
        sign_key = hmac.new((key or self.api_key).encode(), b"kasir-token-v1", hashlib.sha256).digest()
        msg = ("%s.%d.%s" % (self.key_id, ts, nonce)).encode()
        body = {"key_id": self.key_id, "timestamp": ts, "nonce": nonce,
                "signature": hmac.new(sign_key, msg, hashlib.sha256).hexdigest()}
        if scope:
            body["scope"] = scope
        return body


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    @property
    def code(self):
        try:
            return self.json().get("code")
        except ValueError:
            return None

    def __repr__(self):
        return "<%d %r>" % (self.status, self.body[:300])


class Ingress:
    def __init__(self, daemon, secrets_):
        self.daemon = daemon
        self.port = daemon.port
        self.secrets = secrets_

    def request(self, method, path, body=None, auth=None, headers=None, ctype="application/json",
                raw=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        h = {}
        if auth is not None:
            h["Authorization"] = auth.basic() if isinstance(auth, Partner) else auth
        data = raw
        if body is not None and raw is None:
            data = json.dumps(body).encode()
        if data is not None and ctype:
            h["Content-Type"] = ctype
        h.update(headers or {})
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        resp = Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        c.close()
        assert "x-trace-id" in resp.headers, resp
        return resp

    def pay(self, partner, body, key=None, **kw):
        h = kw.pop("headers", {}) or {}
        if key is not None:
            h["Idempotency-Key"] = key
        return self.request("POST", "/v1/payments", body, auth=partner, headers=h, **kw)


def payment_body(method="qris", amount="150000.00", currency="IDR", n=1, **extra):
    order = {"seller_id": "seller-1", "amount": amount, "currency": currency, "method": method}
    if method == "card":
        order["payment_token"] = "tok_" + uuid.uuid4().hex[:16]
    if method in ("virtual_account", "bank_transfer"):
        order["bank_code"] = "BCA"
    if method == "ewallet":
        order["ewallet_channel"] = "OVO"
    body = {"buyer": {"id": "buyer-" + uuid.uuid4().hex[:8]},
            "checkout_id": "co-" + uuid.uuid4().hex,
            "payment_orders": [dict(order) for _ in range(n)]}
    body.update(extra)
    return body


def new_key():
    return "idem-" + uuid.uuid4().hex


def kafka_since(topic, since_ms, timeout=30):
    """Every message of topic with a timestamp >= since_ms, as (key, value bytes)."""
    return kcat_messages(topic, timeout, offset="s@%d" % since_ms)


def count_in_kafka(topic, needle, since_ms):
    """Messages since since_ms whose payload contains needle (Avro strings are raw UTF-8)."""
    n = needle.encode() if isinstance(needle, str) else needle
    return sum(1 for _, v in kafka_since(topic, since_ms) if n in v)


def now_ms():
    return int(time.time() * 1000)


def start_ingress(extra_env=None):
    sec = {
        "stripe": "whsec_" + secrets.token_hex(16),
        "xendit": secrets.token_hex(24),
        "midtrans": "SB-Mid-server-" + secrets.token_hex(12),
        "sandbox": "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(),
    }
    env = {
        "KASIR_WEBHOOK_STRIPE_SECRET": sec["stripe"],
        "KASIR_WEBHOOK_XENDIT_TOKEN": sec["xendit"],
        "KASIR_WEBHOOK_MIDTRANS_SERVER_KEY": sec["midtrans"],
        "KASIR_WEBHOOK_SANDBOX_SECRET": sec["sandbox"],
        "KASIR_AUTH_JWT_SECRET": secrets.token_hex(32),
        "KASIR_KAFKA_MESSAGE_TIMEOUT_MS": "4000",
    }
    env.update(extra_env or {})
    d = Daemon("ingress", [], env)
    d.start(wait_path="/readyz", timeout=40)
    return Ingress(d, sec)


@pytest.fixture(scope="module")
def ingress():
    ing = start_ingress()
    yield ing
    ing.daemon.term()
    # no secret in the log: API keys, webhook secrets, bearer tokens
    log = open(ing.daemon.log_path, errors="replace").read()
    for s in ing.secrets.values():
        assert s not in log
    assert "eyJ" not in log  # a JWT header


@pytest.fixture(scope="module")
def partners():
    return Partner("test-a-" + uuid.uuid4().hex[:6]), Partner("test-b-" + uuid.uuid4().hex[:6])
