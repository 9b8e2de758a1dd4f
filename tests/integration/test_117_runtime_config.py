"""117: a worker reports every bad setting as one JSON line (event config.invalid, the
setting and its source) and exits 2, as docs/CONFIG.md promises; config-doc prints its own
settings table."""
import json
import subprocess

from conftest import STACK, bin_path


def test_bad_settings_are_json_lines_and_exit_2():
    env = dict(STACK, KASIR_WORKER_BATCH_MAX="lots", KASIR_WORKER_BATCH_WAIT="soon",
               KASIR_DEMO_AUDIT="maybe")
    p = subprocess.run([bin_path("demo")], env=env, capture_output=True, timeout=30)
    assert p.returncode == 2, p
    lines = [json.loads(l) for l in (p.stdout + p.stderr).decode().splitlines() if l.strip()]
    bad = {l["setting"]: l for l in lines if l.get("event") == "config.invalid"}
    assert set(bad) == {"worker.batch.max", "worker.batch.wait", "demo.audit"}, lines
    assert bad["worker.batch.max"]["source"] == "env KASIR_WORKER_BATCH_MAX"


def test_unusable_runtime_setting_exits_2():
    env = dict(STACK, KASIR_WORKER_RETRY_DELAYS="5s,never")
    p = subprocess.run([bin_path("demo")], env=env, capture_output=True, timeout=30)
    assert p.returncode == 2
    line = json.loads((p.stdout + p.stderr).decode().strip().splitlines()[-1])
    assert line["event"] == "config.invalid" and line["setting"] == "worker.retry.delays"


def test_kafka_property_librdkafka_refuses_exits_2():
    """A Kafka property librdkafka refuses when the client is created (here a TLS CA file it
    cannot load) is a bad setting like any other: exit 2, config.invalid (it was exit 1,
    worker.start_failed, which a supervisor restarts for ever)."""
    env = dict(STACK, KASIR_KAFKA_SECURITY_PROTOCOL="ssl",
               KASIR_KAFKA_SSL_CA_LOCATION="/nonexistent/kasir-117-ca.pem")
    p = subprocess.run([bin_path("demo")], env=env, capture_output=True, timeout=30)
    assert p.returncode == 2, p
    lines = [json.loads(l) for l in (p.stdout + p.stderr).decode().splitlines()
             if l.startswith("{")]
    assert any(l.get("event") == "config.invalid" and "could not create" in
               l.get("msg", l.get("message", "")) for l in lines), lines


def test_config_doc():
    p = subprocess.run([bin_path("demo"), "config-doc"], capture_output=True, timeout=30)
    assert p.returncode == 0
    out = p.stdout.decode()
    assert out.startswith("## kasir-demo")
    for name in ("demo.output_topic", "demo.audit", "demo.stall"):
        assert "`%s`" % name in out
