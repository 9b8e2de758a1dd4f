"""Helpers of the worker-runtime tests (1xx): per-test topics, DemoEvents, the demo daemon,
kasir-produce / kasir-consume, and waiting on PostgreSQL."""
import base64
import json
import os
import struct
import subprocess
import time

from conftest import BROKERS, PG_DSN, bin_path, create_topics, http_get, psql_one, unique


class Run:
    """A test's own names: input topic (+ retry, dlq), output topic, group, event-id prefix."""

    def __init__(self, prefix, partitions=3, delays=("2s",)):
        self.name = unique(prefix)
        self.topic = self.name + ".in"
        self.retry = [self.topic + ".retry." + d for d in delays]
        self.dlq = self.topic + ".dlq"
        self.out = self.name + ".out"
        self.group = self.name + "-g"
        self.delays = ",".join(delays)
        create_topics("%s:%d" % (self.topic, partitions), *[r + ":1" for r in self.retry],
                      self.dlq + ":1", "%s:%d" % (self.out, partitions))

    def env(self, **extra):
        e = {"KASIR_WORKER_TOPICS": self.topic, "KASIR_WORKER_GROUP": self.group,
             "KASIR_DEMO_OUTPUT_TOPIC": self.out, "KASIR_WORKER_RETRY_DELAYS": self.delays,
             "KASIR_WORKER_RETRY_MAX_ATTEMPTS": "3", "KASIR_DEMO_AUDIT": "true",
             "KASIR_WORKER_OUTBOX_MIN_AGE": "3s", "KASIR_WORKER_OUTBOX_SWEEP": "1s"}
        e.update({k: str(v) for k, v in extra.items()})
        return e

    def event(self, i, account=None, amount=None, currency="IDR", note=None, partition=None):
        acct = account or "%s-a%d" % (self.name, i % 50)
        line = {"topic": self.topic, "key": acct, "schema": "kasir.demo.DemoEvent",
                "value": {"message_id": "%s-m%d" % (self.name, i), "occurred_at": 1700000000000000 + i,
                          "event_id": "%s-%d" % (self.name, i), "seq": i, "account": acct,
                          "amount_minor": 100 + i if amount is None else amount,
                          "currency": currency, "note": note}}
        if partition is not None:
            line["partition"] = partition
        return line

    def raw(self, data, key="acct0", partition=None):
        line = {"topic": self.topic, "key": key, "raw_base64": base64.b64encode(data).decode()}
        if partition is not None:
            line["partition"] = partition
        return line

    def applied(self):
        return int(psql_one("SELECT count(*) FROM demo_applied WHERE event_id LIKE '%s-%%'" % self.name))

    def seen(self):
        """(processings, distinct events) from the demo's audit table."""
        r = psql_one("SELECT count(*) || ',' || count(DISTINCT event_id) FROM demo_seen "
                     "WHERE event_id LIKE '%s-%%'" % self.name)
        a, b = r.split(",")
        return int(a), int(b)

    def hold_offsets(self, seconds, partition=None, mode="FOR SHARE"):
        """Another session holding this run's kasir_offsets row(s) of the input topic locked
        for `seconds` (as a stopped zombie's journal would); returns its Popen: kill it to
        release early."""
        where = "group_id = '%s' AND topic = '%s'" % (self.group, self.topic)
        if partition is not None:
            where += " AND partition = %d" % partition
        return subprocess.Popen(
            ["psql", PG_DSN, "-qtAX", "-c", "BEGIN; SELECT 1 FROM kasir_offsets WHERE %s %s; "
             "SELECT pg_sleep(%.1f); COMMIT;" % (where, mode, seconds)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def wait_applied(self, n, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.applied() >= n:
                return
            time.sleep(0.2)
        raise AssertionError("%d of %d applied after %ss" % (self.applied(), n, timeout))


def produce(lines, timeout=120):
    data = "".join(json.dumps(l) + "\n" for l in lines).encode()
    p = subprocess.run([bin_path("produce"), "--brokers", BROKERS], input=data,
                       capture_output=True, timeout=timeout)
    assert p.returncode == 0, p.stderr.decode()


def consume(topic, max_n=None, idle_ms=3000, timeout=120):
    args = [bin_path("consume"), "--brokers", BROKERS, "--topic", topic, "--idle-ms", str(idle_ms)]
    if max_n is not None:
        args += ["--max", str(max_n)]
    p = subprocess.run(args, capture_output=True, timeout=timeout)
    assert p.returncode == 0, p.stderr.decode()
    return [json.loads(l) for l in p.stdout.decode().splitlines() if l.strip()]


def unknown_fingerprint_bytes():
    """Avro single-object magic with a fingerprint no schema has, then some body."""
    return b"\xc3\x01" + struct.pack("<Q", 0x0123456789ABCDEF) + b"\x02\x04abc"


def metrics(port):
    status, body = http_get("http://127.0.0.1:%d/metrics" % port)
    assert status == 200
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            out[k] = v
    return out


def wait_until(fn, timeout=30, step=0.2, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if fn():
            return
        time.sleep(step)
    raise AssertionError("%s not met after %ss" % (what, timeout))


def check_outputs(run, n):
    """Every applied event has its DemoApplied on the output topic; duplicates on the topic
    (allowed: relay is at-least-once) carry the same message id and the same event."""
    msgs = consume(run.out, idle_ms=3000)
    by_id = {}
    for m in msgs:
        mid = m["headers"]["kasir.message_id"]
        assert m["value"]["message_id"] == mid
        prev = by_id.setdefault(mid, m["value"]["event_id"])
        assert prev == m["value"]["event_id"], "one message id, two events"
    events = set(by_id.values())
    assert len(by_id) == n, (len(by_id), n)
    assert len(events) == n
    return len(msgs) - n  # duplicates on the wire


def check_balances(run):
    """Balances and counts per account equal the applied rows; applied_seq is 1..n."""
    bad = psql_one(
        "SELECT count(*) FROM (SELECT account, currency, sum(amount_minor) s, count(*) c, "
        "min(applied_seq) lo, max(applied_seq) hi, count(DISTINCT applied_seq) d "
        "FROM demo_applied WHERE event_id LIKE '%s-%%' GROUP BY 1, 2) x "
        "JOIN demo_accounts a USING (account, currency) "
        "WHERE a.balance_minor <> x.s OR a.applied <> x.c OR x.lo <> 1 OR x.hi <> x.c OR x.d <> x.c"
        % run.name)
    assert bad == "0", "accounts inconsistent with applied rows"
