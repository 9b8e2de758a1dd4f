"""606: kasir-executor's settings. Every bad one is reported as one JSON line (config.invalid
naming the setting) and the daemon exits 2 before it joins its group; config-doc prints
its table; a secret given in the environment never reaches the log."""
import json
import subprocess

from conftest import STACK, bin_path


def run(**env):
    e = dict(STACK)
    e.update(env)
    return subprocess.run([bin_path("executor")], env=e, capture_output=True, timeout=30)


def test_bad_settings_exit_2():
    p = run(KASIR_EXECUTOR_FAILOVER="CARD:sandbox", KASIR_EXECUTOR_STRIPE_URL="ftp://x",
            KASIR_EXECUTOR_BREAKER_FAILURE_PCT="150", KASIR_EXECUTOR_MAX_IN_FLIGHT="lots",
            KASIR_EXECUTOR_STRIPE_SECRET="sk_test_do_not_log_me")
    assert p.returncode == 2, p
    out = (p.stdout + p.stderr).decode()
    lines = [json.loads(l) for l in out.splitlines() if l.strip()]
    bad = {l["setting"] for l in lines if l.get("event") == "config.invalid"}
    assert "executor.max_in_flight" in bad, lines  # malformed: the table's own check
    assert "sk_test_do_not_log_me" not in out
    p = run(KASIR_EXECUTOR_FAILOVER="CARD:sandbox", KASIR_EXECUTOR_STRIPE_URL="ftp://x",
            KASIR_EXECUTOR_BREAKER_FAILURE_PCT="150")
    assert p.returncode == 2, p
    lines = [json.loads(l) for l in (p.stdout + p.stderr).decode().splitlines() if l.strip()]
    bad = {l["setting"] for l in lines if l.get("event") == "config.invalid"}
    assert bad == {"executor.failover", "executor.stripe.url", "executor.breaker.failure_pct"}, lines


def test_config_doc():
    p = subprocess.run([bin_path("executor"), "config-doc"], capture_output=True, timeout=30)
    assert p.returncode == 0
    out = p.stdout.decode()
    assert out.startswith("## kasir-executor")
    for name in ("executor.sandbox.url", "executor.sandbox.secret", "executor.failover",
                 "executor.breaker.failure_pct", "executor.max_in_flight"):
        assert "`%s`" % name in out
