"""541 (review): TLS/SASL settings that librdkafka refuses when the client is created (a CA
file that does not load, an unknown SASL mechanism, acks contradicting idempotence) made
both tools exit 1, "failed, rerun", as if Kafka were down: they are bad settings, exit 2
with the setting named, as the daemons' other bad settings are. No secret is echoed."""
import os
import subprocess

from conftest import bin_path
from runtime_util import Run, produce
from tools_util import dead_letter

SECRET = "s3cret-541-do-not-log"


def run_tool(args, extra):
    env = dict(os.environ, **extra)
    return subprocess.run([bin_path(args[0]), *args[1:]], capture_output=True, text=True,
                          timeout=120, env=env)


def test_refused_client_settings_exit_2():
    run = Run("t541", partitions=1)
    produce([dead_letter(run, 0)])
    bad = [
        ({"KASIR_KAFKA_SECURITY_PROTOCOL": "ssl",
          "KASIR_KAFKA_SSL_CA_LOCATION": "/nonexistent/541-ca.pem"}, "ssl.ca.location"),
        ({"KASIR_KAFKA_SECURITY_PROTOCOL": "sasl_plaintext",
          "KASIR_KAFKA_SASL_MECHANISMS": "BOGUS-541", "KASIR_KAFKA_SASL_USERNAME": "u",
          "KASIR_KAFKA_SASL_PASSWORD": SECRET}, "BOGUS-541"),
    ]
    for extra, want in bad:
        for args in (["dlq", "list", "--dlq", run.dlq], ["dlq", "replay", "--dlq", run.dlq],
                     ["tap", run.topic]):
            p = run_tool(args, extra)
            assert p.returncode == 2, (args, extra, p.returncode, p.stderr)
            assert want in p.stderr and SECRET not in p.stderr + p.stdout, (args, p.stderr)
    # only the producer refuses this one: the replay's copies would not be acks=all
    p = run_tool(["dlq", "replay", "--dlq", run.dlq], {"KASIR_KAFKA_ACKS": "1"})
    assert p.returncode == 2 and "acks" in p.stderr, (p.returncode, p.stderr)
    assert run_tool(["dlq", "list", "--dlq", run.dlq, "--status", "open"], {}).stdout.count(
        run.dlq) == 1
