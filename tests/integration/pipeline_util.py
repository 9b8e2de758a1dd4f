"""Helpers of the end-to-end tests (800-819): the whole pipeline (sandbox PSP, ingress, risk,
executor, ledger, webhooks) started by deploy/local/services.sh, the one wiring `make demo`
uses, from an env file of the test's own: its own ports, consumer groups suffixed with the
test's name (so it reads only traffic sent after it started), short retry delays, secrets
made at test time. Then what the tests read: quiet (deploy/local/pipeline.py), the sandbox's
record, the ledger.

A test needing the pipeline calls require_pipeline() first: it is skipped, naming the
daemons not built, until every branch of the pipeline is merged."""
import os
import random
import re
import socket
import subprocess
import sys
import time

import pytest

from conftest import LOGDIR, PG_DSN, STACK, TOP, bin_path, create_topics, daemon_dsn, psql, unique
from ingress_util import Ingress
from sandbox_util import Sandbox

sys.path.insert(0, os.path.join(TOP, "deploy", "local"))
import pipeline  # noqa: E402

SERVICES = os.path.join(TOP, "deploy", "local", "services.sh")
DAEMONS = ("psp-sandbox", "ingress", "risk", "executor", "ledger", "webhooks")
INPUTS = ("kasir.payments.requested", "kasir.payouts.requested", "kasir.psp.commands",
          "kasir.refunds.requested", "kasir.psp.outcomes", "kasir.webhooks.received")
LEDGER_DSN = daemon_dsn("ledger")


def missing():
    return [d for d in DAEMONS if not os.access(bin_path(d), os.X_OK)]


def require_pipeline():
    m = missing()
    if m:
        pytest.skip("needs the whole pipeline; not built: %s (branches not merged yet)"
                    % ", ".join("kasir-" + d for d in m))
    # a demo pipeline on this stack would act on this test's traffic as well
    run = os.path.join(TOP, "var", "run")
    for f in os.listdir(run) if os.path.isdir(run) else []:
        if f.endswith(".pid"):
            try:
                pid = int(open(os.path.join(run, f)).read().strip())
                os.kill(pid, 0)
            except (ValueError, OSError):
                continue
            raise AssertionError("the demo's %s is running (var/run/%s): stop it first "
                                 "(bash deploy/local/services.sh stop)" % (f[:-4], f))


def free_block(n):
    """A base port with n free ports above it, below the ephemeral range."""
    rnd = random.Random()
    for _ in range(200):
        base = rnd.randint(20000, 31000)
        ok = True
        for p in range(base, base + n):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise AssertionError("no block of %d free ports" % n)


class _Listener:
    """What Ingress and Sandbox need of a daemon: its ports."""

    def __init__(self, port, admin_port=None):
        self.port, self.admin_port = port, admin_port


class Pipeline:
    """The pipeline of one test: start(), then .ingress (ingress_util.Ingress), .sandbox
    (sandbox_util.Sandbox), .quiet(), .verify(); stop() at the end."""

    def __init__(self, prefix, retry_delays="1s,2s", max_attempts=6, log_level="info"):
        self.name = unique(prefix)
        self.dir = os.path.join(TOP, "var", "tmp", self.name)
        os.makedirs(os.path.join(self.dir, "run"), exist_ok=True)
        self.logs = os.path.join(LOGDIR, self.name)
        os.makedirs(self.logs, exist_ok=True)
        self.suffix = "-" + self.name
        self.delays = retry_delays
        self.base = free_block(7)
        self.envfile = os.path.join(self.dir, "pipeline.env")
        self.env_vars = dict(os.environ)
        self.env_vars.update({
            "KASIR_SERVICES_ENV": self.envfile, "KASIR_SERVICES_RUN": os.path.join(self.dir, "run"),
            "KASIR_SERVICES_LOG": self.logs, "KASIR_GROUP_SUFFIX": self.suffix,
            "KASIR_RETRY_DELAYS": retry_delays, "KASIR_RETRY_MAX_ATTEMPTS": str(max_attempts),
            "KASIR_SERVICES_LOG_LEVEL": log_level,
            "KASIR_DEMO_DAEMONS": " ".join(DAEMONS)})
        # retry topics of the short delays: created before a worker subscribes to them
        create_topics(*["%s.retry.%s:3" % (t, d) for t in INPUTS for d in retry_delays.split(",")])
        self.env = {}
        self.ingress = self.sandbox = None

    def services(self, *args, timeout=120):
        p = subprocess.run(["bash", SERVICES, *args], env=self.env_vars, capture_output=True,
                           text=True, timeout=timeout)
        assert p.returncode == 0, "services.sh %s: %s%s" % (" ".join(args), p.stdout, p.stderr)
        return p.stdout

    def start(self):
        self.services("init", "--port-base", str(self.base))
        self.started = self.services("start")
        for line in open(self.envfile):
            m = re.match(r'^([A-Z0-9_]+)="(.*)"$', line.strip())
            if m:
                self.env[m.group(1)] = m.group(2)
        e = self.env
        self.ingress = Ingress(_Listener(self.base, self.base + 1), {
            "stripe": e["KASIR_STRIPE_WEBHOOK_SECRET"], "xendit": e["KASIR_XENDIT_CALLBACK_TOKEN"],
            "midtrans": e["KASIR_MIDTRANS_SERVER_KEY"], "sandbox": e["KASIR_SANDBOX_WEBHOOK_SECRET"]})
        self.sandbox = Sandbox(_Listener(self.base + 2), {
            "stripe": e["KASIR_STRIPE_SECRET_KEY"], "xendit": e["KASIR_XENDIT_SECRET_KEY"],
            "midtrans": e["KASIR_MIDTRANS_SERVER_KEY"], "iris": e["KASIR_IRIS_API_KEY"],
            "native": e["KASIR_SANDBOX_API_KEY"]})
        return self

    def groups(self):
        return pipeline.groups(self.suffix)

    def quiet(self, timeout=90):
        """(True, state) once every group's lag is 0, its outbox empty and every sandbox
        webhook delivered (or given up), twice in a row."""
        def delivered():
            return all(200 <= d.get("status", 0) < 300 or d.get("attempts", 0) >= 5
                       for d in self.sandbox.webhooks())
        return pipeline.quiet(self.groups(), timeout, extra=delivered)

    def pids(self):
        out = {}
        run = os.path.join(self.dir, "run")
        for f in os.listdir(run):
            if f.endswith(".pid"):
                out[f[len("kasir-"):-4]] = int(open(os.path.join(run, f)).read().strip())
        return out

    def log(self, name):
        try:
            return open(os.path.join(self.logs, "kasir-%s.log" % name), errors="replace").read()
        except OSError:
            return ""

    def stop(self):
        self.services("stop")
        # no secret of the wiring in any daemon's log
        secrets = [v for k, v in self.env.items()
                   if re.search(r"SECRET|TOKEN|_KEY$|SERVER_KEY|API_KEY", k) and len(v) >= 16]
        for d in DAEMONS:
            text = self.log(d)
            for s in secrets:
                assert s not in text, "a secret of the wiring is in kasir-%s's log" % d


def environ(pid):
    """A running process's environment (what services.sh wired it with)."""
    with open("/proc/%d/environ" % pid, "rb") as f:
        return dict(kv.decode().split("=", 1) for kv in f.read().split(b"\0") if b"=" in kv)


def verify():
    """`kasir-ledger verify` as the ledger's role: (exit code, last line)."""
    env = dict(os.environ)
    env.update(STACK)
    env["KASIR_PG_DSN"] = LEDGER_DSN
    p = subprocess.run([bin_path("ledger"), "verify"], env=env, capture_output=True, text=True,
                       timeout=300)
    return p.returncode, (p.stdout.strip().splitlines() or [p.stderr.strip()])[-1]


def wait_for(cond, timeout, what, every=0.5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(every)
    raise AssertionError("not within %ss: %s" % (timeout, what))


def statuses(table, col, ids):
    if not ids:
        return {}
    return dict((r[0], r[1]) for r in psql("SELECT %s, status FROM %s WHERE %s = ANY(%s)"
                                           % (col, table, col, pipeline.sql_list(list(ids)))))


__all__ = ["Pipeline", "require_pipeline", "verify", "wait_for", "statuses", "pipeline",
           "missing", "DAEMONS", "LEDGER_DSN"]
