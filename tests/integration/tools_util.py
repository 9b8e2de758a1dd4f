"""Helpers of the tools tests (5xx): dead letters written as the runtime writes them,
running kasir-dlq / kasir-tap, and reading a topic with its headers."""
import json
import subprocess

from conftest import BROKERS, STACK, bin_path, psql_one
from runtime_util import produce, wait_until

CLASSES = ("poison", "invalid", "failed", "exhausted")


def dead_letter(run, i, cls=None, ts_ms=1700000000000):
    """A DLQ copy of run.event(i) with the headers the worker runtime writes (lib/worker.h)."""
    cls = cls or CLASSES[i % 4]
    line = run.event(i)
    line["topic"] = run.dlq
    line["headers"] = {
        "kasir.message_id": line["value"]["message_id"],
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "kasir.producer": "test",
        "kasir.attempt": "3" if cls == "exhausted" else "1",
        "kasir.origin.topic": run.topic,
        "kasir.origin.partition": str(i % 3),
        "kasir.origin.offset": str(i),
        "kasir.origin.timestamp": str(ts_ms),
        "kasir.error.group": run.group,
        "kasir.error.class": cls,
        "kasir.error.code": "invalid",
        "kasir.error.message": "test failure %d" % i,
        "kasir.error.field": "amount_minor",
        "kasir.error.first_failure": str(ts_ms),
        "kasir.error.last_failure": str(ts_ms + 10),
        "kasir.error.instance": "test-instance",
    }
    return line


def dlq(*args, timeout=120, check=True, env=None):
    """Runs kasir-dlq; returns the CompletedProcess (text)."""
    p = subprocess.run([bin_path("dlq"), *args], capture_output=True, text=True, timeout=timeout,
                       env=env)
    if check:
        assert p.returncode == 0, (args, p.returncode, p.stderr)
    return p


def dlq_json(*args, **kw):
    """kasir-dlq ... --output json: the JSON lines it printed, parsed."""
    p = dlq(*args, "--output", "json", **kw)
    # lines end at "\n" only: splitlines() would also cut at U+0085/U+2028 inside a string
    return [json.loads(l) for l in p.stdout.split("\n") if l.strip()]


def tap(*args, timeout=120, binary=False):
    p = subprocess.run([bin_path("tap"), *args], capture_output=True, timeout=timeout,
                       text=not binary)
    return p


def topic_records(topic, timeout=60):
    """Every record of topic from the beginning, decoded by kasir-consume: dicts with
    topic, partition, offset, timestamp, key, headers, schema, value (or raw_base64)."""
    p = subprocess.run([bin_path("consume"), "--brokers", BROKERS, "--topic", topic,
                        "--idle-ms", "2000"], capture_output=True, timeout=timeout)
    assert p.returncode == 0, p.stderr
    return [json.loads(l) for l in p.stdout.decode().splitlines() if l.strip()]


def marked(run):
    """replayed copies recorded for run's DLQ (kasir_dlq_replayed, one per copy)"""
    return int(psql_one("SELECT count(*) FROM kasir_dlq_replayed_messages WHERE topic = '%s'"
                        % run.dlq))


def replay_under_way(run, n, rate, at_least, *args):
    """n 'failed' dead letters in run.dlq and a replay of them at rate, returned (a Popen with
    text pipes) once at_least copies are recorded: for stopping it half way"""
    produce([dead_letter(run, i, cls="failed") for i in range(n)])
    p = subprocess.Popen([bin_path("dlq"), "replay", "--dlq", run.dlq, "--rate", str(rate),
                          *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: marked(run) >= at_least, timeout=60, step=0.1,
               what="the replay under way")
    return p
