"""801: the one wiring of the pipeline (deploy/local/services.sh), on what exists today:
- `check` and `start` name every daemon whose program is missing, and start nothing then;
- `init` generates the secrets once and keeps them (ports may move), in a 0600 file, and
  var/demo.env is git-ignored;
- the sandbox PSP and the ingress started by `start` are wired: a webhook the sandbox signs
  is verified by the ingress (shared secret, webhook base URL), and each daemon's environment
  holds its own settings, no other daemon's secret;
- `stop` signals only processes named by its pid files that run one of its programs."""
import os
import shutil
import stat
import subprocess
import time

from conftest import TOP, kcat_messages
from pipeline_util import SERVICES, Pipeline, environ


def services(env, *args):
    return subprocess.run(["bash", SERVICES, *args], env=env, capture_output=True, text=True,
                          timeout=120)


def test_801_missing_programs_are_named_and_nothing_starts():
    pl = Pipeline("svc-miss")
    fake = os.path.join(pl.dir, "bin")
    os.makedirs(fake)
    for name in ("psp-sandbox", "ingress", "risk", "ledger"):
        os.symlink(os.path.join(TOP, "build", "bin", "kasir-" + name), os.path.join(fake, "kasir-" + name))
    env = dict(pl.env_vars, KASIR_SERVICES_BIN=fake)
    assert services(env, "init", "--port-base", str(pl.base)).returncode == 0
    p = services(env, "check")
    assert p.returncode == 1
    assert "kasir-executor" in p.stderr and "kasir-webhooks" in p.stderr, p.stderr
    assert "kasir-risk" not in p.stderr, p.stderr
    p = services(env, "start")
    assert p.returncode == 1 and "kasir-executor" in p.stderr, p.stderr
    assert os.listdir(os.path.join(pl.dir, "run")) == [], "a daemon was started anyway"
    # the subset that exists passes
    assert services(env, "check", "psp-sandbox", "ingress").returncode == 0


def test_801_init_keeps_secrets_and_the_file_is_private():
    pl = Pipeline("svc-init")
    env = pl.env_vars
    assert services(env, "init", "--port-base", str(pl.base)).returncode == 0
    first = open(pl.envfile).read()
    assert services(env, "init", "--port-base", str(pl.base + 10)).returncode == 0
    second = open(pl.envfile).read()
    for line in first.splitlines():
        if "SECRET" in line or "_KEY=" in line or "TOKEN" in line:
            assert line in second, "a secret changed on the second init: %s" % line.split("=")[0]
    assert 'KASIR_URL="http://127.0.0.1:%d"' % (pl.base + 10) in second
    assert stat.S_IMODE(os.stat(pl.envfile).st_mode) == 0o600
    assert subprocess.run(["git", "-C", TOP, "check-ignore", "-q", "var/demo.env"]).returncode == 0


def test_801_sandbox_and_ingress_are_wired():
    pl = Pipeline("svc-wire")
    pl.services("init", "--port-base", str(pl.base))
    pl.env_vars["KASIR_DEMO_DAEMONS"] = "psp-sandbox ingress"
    t0 = int(time.time() * 1000)
    pl.start()
    try:
        sb = pl.sandbox
        ref = "ord_wire_" + pl.name.replace("-", "_")
        r = sb.native("POST", "/sandbox/v1/charges", {"reference": ref, "amount": "25000.00",
                                                      "currency": "IDR", "method": "qris"},
                      idem="wire-" + pl.name)
        assert r.status in (200, 201), r
        assert sb.event("sandbox", "paid", ref).status == 202
        deadline = time.time() + 20
        got = []
        while time.time() < deadline:
            got = [d for d in sb.webhooks() if d.get("status")]
            if got and all(d["status"] == 200 for d in got):
                break
            time.sleep(0.2)
        assert got and all(d["status"] == 200 for d in got), got
        # 200 is the ingress's "verified and published" (a failed check is 401): it is in Kafka
        assert any(ref.encode() in v for _, v in
                   kcat_messages("kasir.webhooks.received", 30, offset="s@%d" % t0))
        pids = pl.pids()
        ing, sbx = environ(pids["ingress"]), environ(pids["psp-sandbox"])
        assert ing["KASIR_WEBHOOK_SANDBOX_SECRET"] == sbx["KASIR_SANDBOX_WEBHOOK_SECRET"]
        assert ing.get("KASIR_HTTP_PORT") == str(pl.base)
        assert "user=kasir_ingress" in ing["KASIR_PG_DSN"], "the ingress is not its own role"
        assert "KASIR_SANDBOX_API_KEY" not in ing and "KASIR_STRIPE_SECRET_KEY" not in ing
        assert "KASIR_AUTH_JWT_SECRET" not in sbx and "KASIR_PG_DSN" not in sbx
        assert "KASIR_SERVICES_ENV" not in ing, "the caller's KASIR_* leaked into a daemon"
    finally:
        pl.stop()
    for pid in pl.pids().values():
        raise AssertionError("pid file left: %d" % pid)


def test_801_stop_signals_only_its_own_programs():
    pl = Pipeline("svc-stop")
    foreign = subprocess.Popen(["sleep", "60"])
    try:
        with open(os.path.join(pl.dir, "run", "kasir-ingress.pid"), "w") as f:
            f.write("%d\n" % foreign.pid)
        p = services(pl.env_vars, "stop")
        assert p.returncode == 0, p.stderr
        time.sleep(0.3)
        assert foreign.poll() is None, "services.sh stop killed a process that is not its own"
        assert not os.path.exists(os.path.join(pl.dir, "run", "kasir-ingress.pid"))
    finally:
        foreign.kill()
        foreign.wait()
        shutil.rmtree(pl.dir, ignore_errors=True)
