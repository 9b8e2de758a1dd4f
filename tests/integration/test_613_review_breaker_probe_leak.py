"""613 (review): a batch that fails after taking a half-open probe gives the probe back.

A half-open circuit lets executor.breaker.probes calls through and closes when they all
succeed. A new attempt takes its probe slot in step 2 (decide); when the batch then fails
before step 5 records the call (the journal hits a lock timeout, PostgreSQL goes away, the
partition is fenced), the slot was never given back nor its call recorded. With every
slot taken and no result ever coming, the circuit stays half-open for good: every later
command is refused "circuit open", retried and dead-lettered, although the PSP is healthy.
Here the journal of the probe's command waits on its order's row (held by another session)
past worker.pg.lock_timeout; after that a healthy PSP must get the next command through and
the circuit must close."""
import json
import subprocess
import time

from conftest import PG_DSN
from executor_util import Exec, consume, metrics, produce, wait_until
from fakepsp_util import FakePsp, charge_body


def state(port):
    return int(metrics(port).get('kasir_executor_breaker_state{psp="sandbox",method="CARD"}', "-1"))


def test_failed_batch_returns_its_probe(daemons):
    ex = Exec("ex613", partitions=1)
    o = [ex.order_id(i) for i in range(4)]
    ex.orders([(x, 40000, "CARD") for x in o])
    mode = {"fail": True}

    def answer(method, path, headers, body):
        if mode["fail"]:
            return 503, "application/json", b'{"error":{"code":"unavailable"}}'
        b = charge_body(body)
        return 200, "application/json", json.dumps(
            {"id": "sbch_" + b.get("reference", "")[-10:], "object": "charge", "status": "succeeded",
             "reference": b.get("reference"), "amount": b.get("amount"),
             "currency": b.get("currency"), "method": "card"}).encode()

    psp = FakePsp(answer)
    holder = None
    try:
        d = daemons("executor", env=ex.env(
            psp, KASIR_EXECUTOR_BREAKER_WINDOW="2", KASIR_EXECUTOR_BREAKER_MIN_CALLS="2",
            KASIR_EXECUTOR_BREAKER_FAILURE_PCT="50", KASIR_EXECUTOR_BREAKER_OPEN="2s",
            KASIR_EXECUTOR_BREAKER_PROBES="1", KASIR_WORKER_RETRY_MAX_ATTEMPTS="2",
            KASIR_WORKER_PG_LOCK_TIMEOUT="1s"))
        # 1. two 503s open the circuit; their retries find it open and are dead-lettered
        produce([ex.command(x, 40000) for x in o[:2]])
        wait_until(lambda: state(d.port) == 1, timeout=30, what="circuit open")
        wait_until(lambda: len(ex.dlq(idle_ms=300)) >= 2, timeout=30, what="2 in the DLQ")
        mode["fail"] = False
        time.sleep(2.5)  # past executor.breaker.open: the next call is the half-open probe
        # 2. the probe's journal waits on its order's row past the lock timeout
        holder = subprocess.Popen(
            ["psql", PG_DSN, "-qtAX", "-c", "BEGIN; SELECT 1 FROM payment_orders WHERE order_id = "
             "'%s' FOR UPDATE; SELECT pg_sleep(5); COMMIT;" % o[2]],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        produce([ex.command(o[2], 40000)])
        holder.wait(timeout=30)
        wait_until(lambda: len(ex.dlq(idle_ms=300)) >= 3 or
                   any(m["value"]["order_id"] == o[2] for m in consume(ex.outcomes, idle_ms=300)),
                   timeout=40, what="the probe's command ended")
        # 3. the PSP is healthy: the next command goes through and the circuit closes
        produce([ex.command(o[3], 40000)])
        wait_until(lambda: any(m["value"]["order_id"] == o[3] and m["value"]["status"] == "SUCCEEDED"
                               for m in consume(ex.outcomes, idle_ms=300)),
                   timeout=40, what="a command through the half-open circuit")
        assert state(d.port) == 0
    finally:
        if holder and holder.poll() is None:
            holder.kill()
        psp.close()
