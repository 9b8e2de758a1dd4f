"""Helpers for the PSP sandbox tests (32x, 33x): a kasir-psp-sandbox of our own with
credentials made at test time, HTTP calls in each PSP's encoding, and the sandbox's control
API (ledger, webhook log, faults, events, settlement files).

Secrets live only in memory and in the daemon's environment, never in a fixture file."""
import base64
import http.client
import http.server
import json
import os
import secrets
import subprocess
import threading
import urllib.parse

import pytest

from conftest import TOP, Daemon

VENV_PY = os.path.join(TOP, "var", "venv-psp", "bin", "python")


def new_keys():
    return {
        "stripe": "sk_test_" + secrets.token_hex(12),
        "stripe_whsec": "whsec_" + secrets.token_hex(16),
        "xendit": "xnd_development_" + secrets.token_hex(16),
        "xendit_token": secrets.token_hex(24),
        "midtrans": "SB-Mid-server-" + secrets.token_hex(12),
        "iris": "IRIS-" + secrets.token_hex(12),
        "iris_merchant": "IRIS-MK-" + secrets.token_hex(12),
        "native": "sbx_" + secrets.token_hex(16),
        "native_whsec": "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(),
    }


class Resp:
    def __init__(self, status, headers, body, dropped=False):
        self.status = status
        self.headers = headers
        self.body = body
        self.dropped = dropped

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<%s %r>" % ("dropped" if self.dropped else self.status, self.body[:400])


def form_pairs(d, prefix=None):
    """Stripe's form encoding: nested dicts as a[b]=c, lists as a[0]=c."""
    out = []
    for k, v in d.items():
        key = "%s[%s]" % (prefix, k) if prefix else k
        if isinstance(v, dict):
            out += form_pairs(v, key)
        elif isinstance(v, (list, tuple)):
            for i, x in enumerate(v):
                out.append(("%s[%d]" % (key, i), str(x)))
        elif isinstance(v, bool):
            out.append((key, "true" if v else "false"))
        else:
            out.append((key, str(v)))
    return out


def basic(user):
    return "Basic " + base64.b64encode((user + ":").encode()).decode()


class Sandbox:
    def __init__(self, daemon, keys):
        self.daemon = daemon
        self.port = daemon.port
        self.keys = keys
        self.url = "http://127.0.0.1:%d" % self.port

    def request(self, method, path, body=None, headers=None, timeout=30):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        except (http.client.RemoteDisconnected, ConnectionResetError, http.client.BadStatusLine):
            return Resp(0, {}, b"", dropped=True)
        finally:
            c.close()

    # --- the PSPs, each in its own encoding and auth ---
    def stripe(self, method, path, params=None, key=None, idem=None, fault=None, bearer=False):
        h = {"Authorization": ("Bearer " + (key or self.keys["stripe"])) if bearer
             else basic(key or self.keys["stripe"])}
        body = None
        if params is not None and method == "POST":
            body = urllib.parse.urlencode(form_pairs(params)).encode()
            h["Content-Type"] = "application/x-www-form-urlencoded"
        if idem:
            h["Idempotency-Key"] = idem
        if fault:
            h["X-Sandbox-Fault"] = fault
        return self.request(method, path, body, h)

    def _json(self, method, path, body, user, headers):
        """A JSON call with Basic auth (user as user name), as Xendit, Midtrans and Iris do."""
        h = {"Authorization": basic(user), "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        h.update({k: v for k, v in headers.items() if v})
        return self.request(method, path, data, h)

    def xendit(self, method, path, body=None, key=None, idem=None, fault=None, form=False):
        hdrs = {"X-IDEMPOTENCY-KEY": idem, "X-Sandbox-Fault": fault}
        if not form:
            return self._json(method, path, body, key or self.keys["xendit"], hdrs)
        h = {"Authorization": basic(key or self.keys["xendit"]),
             "Content-Type": "application/x-www-form-urlencoded"}
        h.update({k: v for k, v in hdrs.items() if v})
        return self.request(method, path, urllib.parse.urlencode(body).encode(), h)

    def midtrans(self, method, path, body=None, key=None, fault=None, headers=None):
        return self._json(method, path, body, key or self.keys["midtrans"],
                          dict(headers or {}, **{"X-Sandbox-Fault": fault}))

    def native(self, method, path, body=None, idem=None, fault=None, key=None):
        """The sandbox's own API: JSON, Bearer key, Idempotency-Key."""
        h = {"Authorization": "Bearer " + (key or self.keys["native"])}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        h.update({k: v for k, v in {"Idempotency-Key": idem, "X-Sandbox-Fault": fault}.items() if v})
        return self.request(method, path, data, h)

    def iris(self, method, path, body=None, idem=None):
        return self._json(method, path, body, self.keys["iris"], {"X-Idempotency-Key": idem})

    # --- the sandbox's own control API ---
    def control(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        r = self.request(method, path, data, {"Content-Type": "application/json"} if data else {})
        return r

    def ledger(self, psp="", kind=""):
        r = self.control("GET", "/_sandbox/ledger?psp=%s&kind=%s" % (psp, kind))
        assert r.status == 200, r
        return r.json()

    def webhooks(self):
        r = self.control("GET", "/_sandbox/webhooks")
        assert r.status == 200, r
        return r.json()["deliveries"]

    def faults(self, **kw):
        r = self.control("POST", "/_sandbox/faults", kw)
        assert r.status == 200, r
        return r.json()

    def event(self, psp, event, id_, **kw):
        body = dict(psp=psp, event=event, id=id_, **kw)
        return self.control("POST", "/_sandbox/events", body)

    def reset(self):
        assert self.control("POST", "/_sandbox/reset").status == 200


class Receiver:
    """A local HTTP endpoint that keeps what it is sent (Iris callbacks, the sandbox API's
    webhooks)."""

    def __init__(self):
        got = self.got = []

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                got.append((dict((k.lower(), v) for k, v in self.headers.items()),
                            self.rfile.read(n)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()


def start_sandbox(keys=None, extra_env=None):
    keys = keys or new_keys()
    env = {
        "KASIR_STRIPE_SECRET_KEY": keys["stripe"],
        "KASIR_STRIPE_WEBHOOK_SECRET": keys["stripe_whsec"],
        "KASIR_XENDIT_SECRET_KEY": keys["xendit"],
        "KASIR_XENDIT_CALLBACK_TOKEN": keys["xendit_token"],
        "KASIR_MIDTRANS_SERVER_KEY": keys["midtrans"],
        "KASIR_IRIS_API_KEY": keys["iris"],
        "KASIR_IRIS_MERCHANT_KEY": keys["iris_merchant"],
        "KASIR_SANDBOX_API_KEY": keys["native"],
        "KASIR_SANDBOX_WEBHOOK_SECRET": keys["native_whsec"],
        "KASIR_PAYOUT_DELAY": "300ms",
    }
    env.update(extra_env or {})
    d = Daemon("psp-sandbox", [], env)
    d.start(wait_path="/healthz", timeout=20)
    return Sandbox(d, keys)


def stop_sandbox(sb):
    code = sb.daemon.term()
    log = open(sb.daemon.log_path, errors="replace").read()
    for k in sb.keys.values():
        assert k not in log, "a credential reached the sandbox log"
    return code


@pytest.fixture(scope="module")
def sandbox():
    sb = start_sandbox()
    yield sb
    assert stop_sandbox(sb) == 0


def run_sdk(script, env):
    """Runs script with the venv that holds the PSPs' published SDKs (deploy/deps.sh pins
    them); skips the test when the venv is missing. Returns the JSON the script prints."""
    if not os.path.exists(VENV_PY):
        pytest.skip("no var/venv-psp: the PSP SDKs could not be installed (deploy/deps.sh)")
    e = dict(os.environ)
    e.update(env)
    p = subprocess.run([VENV_PY, "-c", script], capture_output=True, text=True, env=e, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def splitmix_rolls(seed, n):
    """The sandbox's fault rolls for a seed (splitmix64 % 100), to pick a seed that gives a
    wanted sequence."""
    out, s, m = [], seed, (1 << 64) - 1
    for _ in range(n):
        s = (s + 0x9E3779B97F4A7C15) & m
        z = s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
        out.append((z ^ (z >> 31)) % 100)
    return out
