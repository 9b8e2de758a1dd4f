"""Shared fixtures for the integration tests: the real Kafka and PostgreSQL of `make up`.

Tests are numbered by area: 0xx foundation, 1xx worker runtime, 2xx ingress.
Every test makes its own names (topics, groups, ids) so tests never see each other's data.
"""
import json
import os
import random
import re
import signal
import socket
import subprocess
import time
import urllib.request
import uuid

import pytest

TOP = os.environ.get("KASIR_TOP") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.join(TOP, "build", "bin")
LOGDIR = os.path.join(TOP, "var", "log", "tests")


def _stack_env():
    env = {}
    with open(os.path.join(TOP, "var", "stack.env")) as f:
        for line in f:
            line = line.strip()
            if line and "=" in line and not line.startswith("#"):
                k, v = line.split("=", 1)
                env[k] = v.strip('"')
    return env


STACK = _stack_env()
os.environ.update(STACK)
PG_DSN = STACK["KASIR_PG_DSN"]
BROKERS = STACK["KASIR_KAFKA_BROKERS"]


# the daemons that connect to PostgreSQL, each as its own role: kasir-X as kasir_X (migration
# 952; deploy/local/services.sh wires them the same way). The stack's kasir, the superuser
# that owns every table, is the operator's: migrations, CLIs, the tests' own SQL.
DAEMON_ROLES = ("ingress", "risk", "executor", "webhooks", "ledger", "demo")


def daemon_dsn(name, dsn=None):
    """The DSN daemon kasir-<name> connects with: dsn (the stack's) as the daemon's role."""
    return re.sub(r"user=\S+", "user=kasir_" + name, dsn or PG_DSN)


def bin_path(name):
    """Path of build/bin/kasir-<name>."""
    return os.path.join(BIN, "kasir-" + name)


def unique(prefix):
    """A name no other test run uses: prefix + 12 hex digits."""
    return "%s-%s" % (prefix, uuid.uuid4().hex[:12])


def httpburst(url, conns, waves, *args, timeout_ms=10000):
    """kasir-httpburst: waves of conns requests at once (tests/tools/httpburst; args are its
    -H/-d options). The finished process; its stdout is the summary line."""
    return subprocess.run([os.path.join(BIN, "kasir-httpburst"), url, str(conns), str(waves),
                           str(timeout_ms)] + list(args),
                          capture_output=True, text=True, timeout=900)


def burst_connections_kept(out, conns):
    """The server kept the connections of a kasir-httpburst run: about one per client
    connection in all, not one per request."""
    return int(re.search(r"connects=(\d+)", out).group(1)) <= 2 * conns


def psql(sql, *, check=True):
    """Runs sql on the real PostgreSQL; returns rows as lists of strings."""
    p = subprocess.run(
        ["psql", PG_DSN, "-v", "ON_ERROR_STOP=1", "-qtAX", "-F", "\x1f", "-c", sql],
        capture_output=True, text=True, timeout=60,
    )
    if check and p.returncode != 0:
        raise AssertionError("psql failed: %s\n%s" % (sql, p.stderr))
    return [line.split("\x1f") for line in p.stdout.splitlines() if line != ""]


def psql_one(sql):
    rows = psql(sql)
    assert len(rows) == 1 and len(rows[0]) == 1, rows
    return rows[0][0]


def table_scans(table):
    """Scans of table started and the rows they fetched (index and sequential), as the
    sessions have reported them so far: what statements read, which a vacuum's reads do
    not move"""
    scans, fetched = psql("SELECT coalesce(idx_scan, 0) + seq_scan, coalesce(idx_tup_fetch, 0) "
                          "+ seq_tup_read FROM pg_stat_user_tables WHERE relname = '%s'"
                          % table)[0]
    return int(scans), int(fetched)


def ledger_entries_posted(partner_id, chain, n):
    """n balanced entries of partner_id on chain through ledger_post (an adjustment of i
    between suspense and seller s1's wallet, 500 a transaction: one transaction moving a
    chain head thousands of times slows down with every version of the head it leaves),
    taken off the publication queue: no kasir-ledger runs to publish them."""
    for lo in range(1, n + 1, 500):
        psql("SELECT count(ledger_post('%s', '%s:' || i, 'adjustment', 'j' || i, '%s', "
             "'entry ' || i, ARRAY[ledger_account('suspense', '%s', NULL, NULL, 'IDR'), "
             "ledger_account('seller_wallet', '%s', 's1', NULL, 'IDR')], "
             "ARRAY[i, -i]::bigint[], 'IDR')) FROM generate_series(%d, %d) AS i"
             % (chain, chain, partner_id, partner_id, partner_id, lo, min(lo + 499, n)))
    psql("DELETE FROM ledger_unpublished u USING ledger_entries e "
         "WHERE e.entry_id = u.entry_id AND e.chain = '%s'" % chain)


def create_topics(*specs):
    """specs: 'name' or 'name:partitions'; idempotent."""
    subprocess.run([bin_path("topics"), "--brokers", BROKERS, *specs], check=True,
                   capture_output=True, timeout=60)


def kcat_messages(topic, timeout=20, offset="beginning"):
    """Every message of topic from offset (kcat -o: "beginning", "s@<ms>" ...) to the end,
    as (key, value bytes) pairs."""
    p = subprocess.run(
        ["kcat", "-b", BROKERS, "-C", "-t", topic, "-o", offset, "-e", "-q",
         "-f", "%k\x1e%s\x1d"],
        capture_output=True, timeout=timeout,
    )
    assert p.returncode == 0, p.stderr
    out = []
    for rec in p.stdout.split(b"\x1d"):
        if rec:
            k, _, v = rec.partition(b"\x1e")
            out.append((k.decode(errors="replace"), v))
    return out


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port():
    """A port free on every address and below the ephemeral range: a port the kernel hands
    out to outgoing connections (thousands of them on a busy test machine) could be taken
    between this check and the daemon's bind."""
    low = _ephemeral_low()
    for _ in range(200):
        port = random.randrange(20000, max(20001, low))
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read()


class Daemon:
    """A kasir daemon started for a test, logging to var/log/tests/<name>.log."""

    def __init__(self, name, args=(), env=None, port=None):
        self.name = name
        self.port = port or free_port()
        os.makedirs(LOGDIR, exist_ok=True)
        self.log_path = os.path.join(LOGDIR, "%s-%d.log" % (name, self.port))
        self.env = dict(os.environ)
        self.env.update(STACK)
        if name in DAEMON_ROLES:
            self.env["KASIR_PG_DSN"] = daemon_dsn(name)
        self.env["KASIR_HTTP_PORT"] = str(self.port)
        self.env.update(env or {})
        self.args = list(args)
        self.proc = None
        self.port_tries = 0
        # where this daemon's lines begin: the file is named by port, and an earlier test's
        # daemon on the same port wrote its own lines before (log_tail must not find theirs:
        # test 129 took another test's "demo.stall" for its own). Set here, not in start(),
        # so that a subclass with a start() of its own (ingress_util's) has it too.
        try:
            self.log_first = os.path.getsize(self.log_path)
        except OSError:
            self.log_first = 0

    def start(self, wait_path="/healthz", timeout=30):
        logf = open(self.log_path, "ab")
        self.log_offset = logf.tell()  # this start's lines begin here (the file is appended to)
        self.proc = subprocess.Popen([bin_path(self.name), *self.args], env=self.env,
                                     stdout=logf, stderr=logf, stdin=subprocess.DEVNULL)
        logf.close()
        if wait_path:
            deadline = time.time() + timeout
            while time.time() < deadline:
                if self.proc.poll() is not None:
                    if "could not listen on port" in self.log_tail(5) and self.port_tries < 3:
                        # the free port was taken between free_port() and the bind (other
                        # processes on the machine open connections too): another one
                        self.port_tries += 1
                        self.port = free_port()
                        self.env["KASIR_HTTP_PORT"] = str(self.port)
                        return self.start(wait_path, timeout)
                    raise AssertionError("%s exited with %s; log %s:\n%s" % (
                        self.name, self.proc.returncode, self.log_path, self.log_tail()))
                try:
                    if http_get("http://127.0.0.1:%d%s" % (self.port, wait_path), 1)[0] == 200:
                        return self
                except Exception:
                    pass
                time.sleep(0.1)
            raise AssertionError("%s not healthy after %ss:\n%s" % (self.name, timeout, self.log_tail()))
        return self

    def log_tail(self, n=40):
        """The last n lines this daemon wrote (since its first start)."""
        try:
            with open(self.log_path, errors="replace") as f:
                f.seek(self.log_first)
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def term(self, timeout=30):
        """SIGTERM and wait; returns the exit code."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def daemons():
    """Start daemons with daemons(name, args, env); all are stopped after the test."""
    started = []

    def start(name, args=(), env=None, **kw):
        d = Daemon(name, args, env)
        started.append(d)
        return d.start(**kw)

    yield start
    for d in started:
        d.kill9()


ROWS_GROUP = "kasir-test-rows"


def start_payment_rows():
    """kasir-risk reading kasir.payments.requested with no rules (every payment approved):
    the writer of the payments' rows (payment and orders, NOT_STARTED), from their events,
    as in production; the ingress writes none (producers/ingress/README.md). A group of the
    tests' own, which resumes where the last module left it; its commands go to a topic of
    its own, which nothing executes."""
    out = ROWS_GROUP + ".commands"
    create_topics(out + ":1", "kasir.payments.requested.retry.1s:3")
    d = os.path.join(TOP, "var", "tmp")
    os.makedirs(d, exist_ok=True)
    rules = os.path.join(d, ROWS_GROUP + ".rules.json")
    with open(rules, "w") as f:
        json.dump({"rules": []}, f)
    risk = Daemon("risk", (), {"KASIR_WORKER_TOPICS": "kasir.payments.requested",
                               "KASIR_WORKER_GROUP": ROWS_GROUP, "KASIR_RISK_RULES": rules,
                               "KASIR_RISK_OUTPUT_TOPIC": out,
                               "KASIR_WORKER_RETRY_DELAYS": "1s"})
    risk.start()
    # caught up with what the topic holds (the first start of the group reads all of it):
    # nothing left to fetch, and nothing more done in the last half second
    deadline, last = time.time() + 300, None
    while time.time() < deadline:
        text = http_get("http://127.0.0.1:%d/metrics" % risk.port, 5)[1].decode()
        lags = [int(float(m.group(1))) for m in re.finditer(
            r'^kasir_worker_consumer_lag\{topic="kasir\.payments\.requested",[^}]*\} (\S+)$',
            text, re.M)]
        done = sum(float(m.group(1)) for m in re.finditer(
            r'^kasir_worker_messages_total(?:\{[^}]*\})? (\S+)$', text, re.M))
        if len(lags) == 6 and max(lags) == 0:
            if last == done:
                return risk
            last = done
        else:
            last = None
        time.sleep(0.5)
    raise AssertionError("kasir-risk (payment rows) did not catch up with "
                         "kasir.payments.requested in 300 s; log %s" % risk.log_path)


@pytest.fixture(scope="module")
def payment_rows():
    """For a module whose payments are read or refunded: their rows, written by kasir-risk
    (start_payment_rows) while the module runs."""
    risk = start_payment_rows()
    yield risk
    risk.term()
