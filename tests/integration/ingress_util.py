"""Helpers for the ingress tests (2xx): a kasir-ingress of our own with two fresh partners,
HTTP calls, token signing, webhook signing and Kafka look-ups.

Secrets (API keys, webhook secrets, the JWT key) are generated at test time and live only
in memory and in the daemon's environment; they are never written to a fixture file."""
import base64
import contextlib
import hashlib
import hmac
import http.client
import json
import os
import re
import secrets
import select
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import uuid

import pytest

from conftest import (Daemon, PG_DSN, bin_path, daemon_dsn, free_port, http_get, kcat_messages,
                      psql, psql_one)

INGRESS = bin_path("ingress")
# KASIR_TEST_INGRESS_BIN runs the daemon from another binary (a test first seen failing on
# an older build, e.g. `git worktree add /tmp/old HEAD~1 && make -C /tmp/old`)
SERVE_BIN = os.environ.get("KASIR_TEST_INGRESS_BIN") or INGRESS
PG_TCP = (re.search(r"port=(\d+)", PG_DSN) or re.search("(5432)", "5432")).group(1)


def cli(*args, env=None):
    """Runs kasir-ingress CLI; returns dict of its key=value lines."""
    e = dict(os.environ)
    e["KASIR_PG_DSN"] = PG_DSN
    e.update(env or {})
    p = subprocess.run([SERVE_BIN, *args], capture_output=True, text=True, env=e, timeout=30)
    assert p.returncode == 0, p.stderr
    out = {}
    for line in p.stdout.splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            out[k] = v
    return out


def cli_run(*args, env=None):
    """Runs kasir-ingress CLI; the CompletedProcess (for commands expected to fail)."""
    e = dict(os.environ)
    e["KASIR_PG_DSN"] = PG_DSN
    e.update(env or {})
    return subprocess.run([SERVE_BIN, *args], capture_output=True, text=True, env=e, timeout=30)


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
        """The signed message is "<key_id>.<timestamp>.<nonce>", and with a scope
        "<key_id>.<timestamp>.<nonce> <scope>"."""
        ts = int(time.time()) if ts is None else ts
        nonce = nonce or secrets.token_hex(16)
        sign_key = hmac.new((key or self.api_key).encode(), b"kasir-token-v1", hashlib.sha256).digest()
        msg = "%s.%d.%s" % (self.key_id, ts, nonce)
        if scope:
            msg += " " + scope
        body = {"key_id": self.key_id, "timestamp": ts, "nonce": nonce,
                "signature": hmac.new(sign_key, msg.encode(), hashlib.sha256).hexdigest()}
        if scope:
            body["scope"] = scope
        return body


def operator(name=None):
    """A key with the operator scope settlements:write (no partner key has it by default)."""
    return Partner(name or ("ops-" + uuid.uuid4().hex[:6]), scopes="settlements:write")


def capture(order_id, amount_minor=None):
    """What the executor does once the PSP captured an order (the ingress never does)."""
    from runtime_util import wait_until
    # the order's row follows its payment's 202 by one group commit
    wait_until(lambda: psql_one("SELECT count(*) FROM payment_orders WHERE order_id = '%s'"
                                % order_id) == "1", timeout=10, what="order " + order_id)
    # the executor's two moves: its attempt (EXECUTING), then the capture (SUCCESS); the
    # status machine in SQL (810_status_machine.sql) allows no shortcut
    psql("UPDATE payment_orders SET status = 'EXECUTING' WHERE order_id = '%s' AND status = 'NOT_STARTED'; "
         "UPDATE payment_orders SET status = 'SUCCESS', captured_minor = %s WHERE order_id = '%s'"
         % (order_id, amount_minor if amount_minor is not None else "amount_minor", order_id))


def rows_written(*payment_ids, timeout=30):
    """Waits until each payment's row exists: a payment is answered once its event is
    confirmed, and kasir-risk writes its rows when it reads the event (payment_rows; a read
    through the API waits for them a second; a look at the table does not)."""
    from runtime_util import wait_until
    ids = ",".join("'%s'" % p for p in payment_ids)
    wait_until(lambda: psql_one("SELECT count(*) FROM payments WHERE payment_id IN (%s)" % ids)
               == str(len(set(payment_ids))), timeout=timeout,
               what="the rows of %d payments" % len(payment_ids))


def in_thread(fn, out):
    """Runs fn() on a thread of its own, started now; appends (its result, seconds taken) to
    out. Returns the thread."""
    def run():
        t0 = time.time()
        r = fn()
        out.append((r, time.time() - t0))
    t = threading.Thread(target=run)
    t.start()
    return t


class TableLock:
    """A lock on a table held by a psql session of its own, from creation (or `with`) until
    release(): EXCLUSIVE on payments lets reads (the claim's checkout probe) go on while
    inserts (kasir-risk writing a payment's rows) wait (tests 225, 229); ACCESS EXCLUSIVE on
    api_keys holds credential look-ups (test 220)."""

    def __init__(self, table="payments", mode="EXCLUSIVE"):
        self.p = subprocess.Popen(["psql", PG_DSN, "-qtAX", "-v", "ON_ERROR_STOP=1"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        self.p.stdin.write("BEGIN; LOCK TABLE %s IN %s MODE; SELECT 'locked';\n" % (table, mode))
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        assert "locked" in line, line

    def release(self):
        if self.p.poll() is None:
            self.p.stdin.write("ROLLBACK;\n")
            self.p.stdin.close()
            self.p.wait(timeout=10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


@contextlib.contextmanager
def payout_finish_refused():
    """While inside, PostgreSQL refuses to move to REQUESTED the payouts whose description
    starts with the marker it yields (a trigger of this block's own, dropped on the way
    out): the event is published, but the payout's finish is refused, so the writers keep
    it and the client is answered 503 (tests 227, 228, 230). A payment has no finish."""
    tag = uuid.uuid4().hex[:12]
    marker, trig = "refused %s " % tag, "test_refuse_finish_" + tag
    psql("CREATE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql AS $$ "
         "BEGIN IF NEW.status = 'REQUESTED' AND NEW.description LIKE '%s%%' THEN "
         "RAISE EXCEPTION 'test refuses'; END IF; RETURN NEW; END $$" % (trig, marker))
    try:
        psql("CREATE TRIGGER %s BEFORE UPDATE ON payouts FOR EACH ROW EXECUTE FUNCTION %s()"
             % (trig, trig))
        yield marker
    finally:
        psql("DROP TRIGGER IF EXISTS %s ON payouts" % trig)
        psql("DROP FUNCTION IF EXISTS %s()" % trig)


def payouts_requested(marker):
    """How many payouts of payout_finish_refused's marker have their finish recorded"""
    return int(psql_one("SELECT count(*) FROM payouts WHERE description LIKE '%s%%' AND "
                        "status = 'REQUESTED'" % marker))


def payout_body(description=None, amount="250000.00"):
    b = {"seller_id": "seller-9", "amount": amount, "currency": "IDR", "channel": "ewallet",
         "ewallet_channel": "OVO", "destination_account": "+6281234567890",
         "account_holder": "Siti"}
    if description is not None:
        b["description"] = description
    return b


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
        self.admin_port = getattr(daemon, "admin_port", None)
        self.secrets = secrets_

    def admin(self, path, timeout=5):
        """GET on the admin listener (/healthz, /readyz, /metrics): (status, body)."""
        try:
            return http_get("http://127.0.0.1:%d%s" % (self.admin_port, path), timeout)
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def metric(self, name):
        """The value of a metric line that starts with name (0 when absent)."""
        for line in self.admin("/metrics")[1].decode().splitlines():
            key, _, val = line.rpartition(" ")
            if key == name:
                return float(val)
        return 0.0

    def request(self, method, path, body=None, auth=None, headers=None, ctype="application/json",
                raw=None, source=None, timeout=30):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout,
                                       source_address=(source, 0) if source else None)
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


def checkout_id():
    """A random id that never holds a run of 13 digits: a hex UUID has one about once in 25
    ids, and then, once in a few thousand, it passes a card number's checks (issuer prefix,
    length, Luhn) and is refused as card data, as it should be."""
    h = uuid.uuid4().hex
    return "co-" + "x".join(h[i:i + 8] for i in range(0, 32, 8))


def payment_body(method="qris", amount="150000.00", currency="IDR", n=1, **extra):
    order = {"seller_id": "seller-1", "amount": amount, "currency": currency, "method": method}
    if method == "card":
        order["payment_token"] = "tok_" + uuid.uuid4().hex[:16]
    if method in ("virtual_account", "bank_transfer"):
        order["bank_code"] = "BCA"
    if method == "ewallet":
        order["ewallet_channel"] = "OVO"
    body = {"buyer": {"id": "buyer-" + uuid.uuid4().hex[:8]},
            "checkout_id": checkout_id(),
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


def kafka_headers(topic, needle, since_ms, timeout=30):
    """The headers ({name: value}) of the messages of topic since since_ms whose payload
    contains needle."""
    p = subprocess.run(["kcat", "-b", os.environ["KASIR_KAFKA_BROKERS"], "-C", "-t", topic,
                        "-o", "s@%d" % since_ms, "-e", "-q", "-f", "%h\x1e%s\x1d"],
                       capture_output=True, timeout=timeout)
    assert p.returncode == 0, p.stderr
    out = []
    n = needle.encode()
    for rec in p.stdout.split(b"\x1d"):
        h, _, v = rec.partition(b"\x1e")
        if n in v:
            out.append(dict(kv.split("=", 1) for kv in h.decode().split(",") if "=" in kv))
    return out


def now_ms():
    return int(time.time() * 1000)


def two_free_ports():
    """Two distinct free ports (conftest.free_port: free on every address, below the
    ephemeral range): the daemon listens on all addresses, tests connect from 127.0.0.x."""
    a = free_port()
    b = free_port()
    while b == a:
        b = free_port()
    return a, b


class IngressDaemon(Daemon):
    """kasir-ingress with an admin listener; started from SERVE_BIN, optionally with a
    lower descriptor limit (nofile)."""

    def __init__(self, env, nofile=None, block_term=False):
        port, self.admin_port = two_free_ports()
        super().__init__("ingress", [], env, port=port)
        self.env["KASIR_HTTP_ADMIN_PORT"] = str(self.admin_port)
        self.nofile = nofile
        self.block_term = block_term  # started with SIGTERM blocked, as some supervisors do

    def start(self, wait_path="/readyz", timeout=40):
        import resource
        logf = open(self.log_path, "ab")
        self.log_offset = logf.tell()  # this start's lines begin here (the file is appended to)
        n, block = self.nofile, self.block_term

        def pre():
            if n:
                resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
            if block:
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        self.proc = subprocess.Popen([SERVE_BIN], env=self.env, stdout=logf, stderr=logf,
                                     stdin=subprocess.DEVNULL, preexec_fn=pre)
        logf.close()
        deadline = time.time() + timeout
        while wait_path and time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("ingress exited with %s:\n%s" % (self.proc.returncode,
                                                                      self.log_tail()))
            for port in (self.admin_port, self.port):  # the main port: an older binary
                try:
                    if http_get("http://127.0.0.1:%d%s" % (port, wait_path), 1)[0] == 200:
                        return self
                except Exception:
                    pass
            time.sleep(0.1)
        if wait_path:
            raise AssertionError("ingress not ready after %ss:\n%s" % (timeout, self.log_tail()))
        return self

    def rss_kb(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0


def start_ingress(extra_env=None, wait_path="/readyz", nofile=None, block_term=False):
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
        "KASIR_PSP_SANDBOX": "true",
    }
    env.update(extra_env or {})
    d = IngressDaemon(env, nofile=nofile, block_term=block_term)
    d.start(wait_path=wait_path, timeout=40)
    return Ingress(d, sec)


@pytest.fixture(scope="module")
def ingress(payment_rows):
    ing = start_ingress()
    yield ing
    ing.daemon.term()
    # no secret in the log: API keys, webhook secrets, bearer tokens
    log = open(ing.daemon.log_path, errors="replace").read()
    for s in ing.secrets.values():
        assert s not in log
    assert "eyJ" not in log  # a JWT header


def raw_request(port, head, body=b"", source=None, timeout=5):
    """Sends head (+ body) on a fresh socket; returns (socket, status, headers, body) of the
    answer, read while whatever else is unsent stays unsent."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                 source_address=(source, 0) if source else None)
    s.sendall(head + body)
    status, headers, rbody = read_response(s, timeout)
    return s, status, headers, rbody


def read_response(s, timeout=5):
    """One HTTP/1.1 response from s: (status, {lower-case header: value}, body)."""
    s.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the headers: %r" % buf[:200])
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    while len(rest) < n:
        chunk = s.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, headers, rest[:n]


def closed_within(s, seconds):
    """True when the peer closes s (EOF or reset) within seconds; data read is dropped."""
    deadline = time.time() + seconds
    s.setblocking(False)
    while time.time() < deadline:
        r, _, _ = select.select([s], [], [], max(0.0, deadline - time.time()))
        if r:
            try:
                if not s.recv(65536):
                    return True
            except (ConnectionResetError, BrokenPipeError):
                return True
            except BlockingIOError:
                pass
    return False


class PgProxy:
    """A TCP proxy in front of the stack's PostgreSQL that a test can freeze (nothing
    passes, connections stay open: a hung server) or cut (every connection closed: a
    restart). hang_on(pattern): a connection whose client sends pattern hangs there on
    its own (the statement is not passed on, nothing comes back), the others go on.
    hold_ready(pattern): the server's answer to the statement that contains pattern comes
    back whole except its ReadyForQuery, and then that connection hangs (with cut=True: is
    closed). cut_on(pattern, nth=1):
    the statement goes to the server, which runs it, and the connection is then closed
    before any of the answer comes back (lost with the outcome unknown to the client); with
    nth, from the nth statement that contains pattern on (the ones before it pass).
    delay_on(pattern, seconds): the statement that contains pattern is passed on that much
    later (a client that gave up meanwhile and closed has still sent it: the server runs it).
    copy_on(pattern): the statement that contains pattern is not passed on; the proxy
    answers it as the start of a COPY TO STDOUT (ParseComplete, BindComplete, NoData,
    CopyOutResponse), then that connection hangs.
    delay_answer_on(pattern, seconds, count=1): the statement that contains pattern goes to
    the server at once (it runs then), and its answer comes back that much later; the first
    count such statements only. answer_held is set while one is held."""

    def __init__(self):
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(128)
        self.port = self.ls.getsockname()[1]
        self.frozen = threading.Event()
        self.refusing = threading.Event()
        self.pairs = []
        self.hang_pattern = None
        self.ready_pattern = None
        self.ready_cut = False
        self.cut_pattern = None
        self.copy_pattern = None
        self.delay_pattern, self.delay_s = None, 0.0
        self.answer_pattern, self.answer_s, self.answer_left = None, 0.0, 0
        self.answer_held = threading.Event()
        self.cut_nth = self.cut_seen = 0
        self.cuts = 0
        self.hung = 0
        self.lock = threading.Lock()
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def dsn(self):
        # as the ingress's own role, which every test that uses a proxy starts
        return daemon_dsn("ingress", "host=127.0.0.1 port=%d dbname=kasir user=kasir" % self.port)

    def _accept(self):
        while not self.stopped:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            if self.refusing.is_set():
                c.close()
                continue
            try:
                u = socket.create_connection(("127.0.0.1", int(PG_TCP)))
            except OSError:
                c.close()
                continue
            with self.lock:
                self.pairs.append((c, u))
            threading.Thread(target=self._pump, args=(c, u), daemon=True).start()

    def _hang_until_closed(self, a):
        """This connection only, until its client closes it (then the server's side goes
        too: no backend is left behind)."""
        with self.lock:
            self.hung += 1
        while not self.stopped:
            if select.select([a], [], [], 0.05)[0] and not a.recv(65536):
                break
        raise OSError("closed")

    def _pump(self, a, b):
        socks = [a, b]
        armed, held = False, b""  # hold_ready: the server's messages, whole ones only
        late = False  # delay_answer_on: this connection's next answer is held
        try:
            while not self.stopped:
                if self.frozen.is_set():
                    time.sleep(0.05)
                    continue
                r, _, _ = select.select(socks, [], [], 0.05)
                for s in r:
                    if self.frozen.is_set():
                        break
                    d = s.recv(65536)
                    if not d:
                        raise OSError("closed")
                    if s is a and self.hang_pattern and self.hang_pattern in d:
                        self._hang_until_closed(a)
                    if s is a and self.delay_pattern and self.delay_pattern in d:
                        time.sleep(self.delay_s)
                        b.sendall(d)
                        continue
                    if s is a and not late and self.answer_pattern and self.answer_pattern in d:
                        with self.lock:
                            late = self.answer_left > 0
                            self.answer_left -= late
                    if s is b and late:
                        late = False
                        self.answer_held.set()
                        time.sleep(self.answer_s)
                        self.answer_held.clear()
                    if s is a and self.copy_pattern and self.copy_pattern in d:
                        a.sendall(b"1\0\0\0\4" b"2\0\0\0\4" b"n\0\0\0\4"
                                  b"H\0\0\0\7\0\0\0")
                        self._hang_until_closed(a)
                    if s is a and self.ready_pattern and self.ready_pattern in d:
                        armed = True
                    if s is a and self.cut_pattern and self.cut_pattern in d:
                        with self.lock:
                            self.cut_seen += 1
                            before_nth = self.cut_seen < self.cut_nth
                        b.sendall(d)
                        if before_nth:
                            continue
                        time.sleep(0.5)  # the server runs (and commits) it meanwhile
                        with self.lock:
                            self.cuts += 1
                        raise OSError("cut")
                    if s is b and armed:
                        held += d
                        while len(held) >= 5:
                            n = 1 + int.from_bytes(held[1:5], "big")
                            if len(held) < n:
                                break
                            if held[0:1] == b"Z":
                                if self.ready_cut:
                                    raise OSError("cut")
                                self._hang_until_closed(a)
                            a.sendall(held[:n])
                            held = held[n:]
                        continue
                    (b if s is a else a).sendall(d)
        except OSError:
            pass
        for s in socks:
            try:
                s.close()
            except OSError:
                pass

    def hang_on(self, pattern):
        self.hang_pattern = pattern

    def hold_ready(self, pattern, cut=False):
        self.ready_pattern, self.ready_cut = pattern, cut

    def delay_on(self, pattern, seconds):
        self.delay_pattern, self.delay_s = pattern, seconds

    def delay_answer_on(self, pattern, seconds, count=1):
        with self.lock:
            self.answer_pattern, self.answer_s, self.answer_left = pattern, seconds, count

    def copy_on(self, pattern):
        self.copy_pattern = pattern

    def cut_on(self, pattern, nth=1):
        self.cut_pattern, self.cut_nth, self.cut_seen = pattern, nth, 0

    def freeze(self):
        self.frozen.set()

    def thaw(self):
        self.frozen.clear()

    def cut(self):
        """Closes every proxied connection (new ones are accepted again)."""
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for a, b in pairs:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def close(self):
        self.stopped = True
        self.cut()
        self.ls.close()


@pytest.fixture(scope="module")
def partners():
    return Partner("test-a-" + uuid.uuid4().hex[:6]), Partner("test-b-" + uuid.uuid4().hex[:6])
