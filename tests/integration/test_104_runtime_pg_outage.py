"""104: PostgreSQL stopped for 20 s under load: the worker stays up and in its group,
dead-letters nothing, and afterwards every input is applied exactly once."""
import os
import subprocess
import time

from conftest import TOP, http_get
from runtime_util import Run, check_balances, check_outputs, consume, produce

N = 10000


def stack(cmd):
    subprocess.run(["bash", os.path.join(TOP, "deploy/local/stack.sh"), cmd], check=True,
                   capture_output=True, timeout=90)


def status(port, path):
    try:
        return http_get("http://127.0.0.1:%d%s" % (port, path), 2)[0]
    except Exception as e:  # urllib raises for 503
        return getattr(e, "code", None)


def test_postgresql_outage_pauses_and_loses_nothing(daemons):
    run = Run("t104", partitions=3)
    produce([run.event(i) for i in range(N)])
    d = daemons("demo", env=run.env(KASIR_WORKER_BATCH_MAX=200))
    run.wait_applied(1, timeout=20)
    stack("pg-stop")
    try:
        produce([run.event(i) for i in range(N, 2 * N)])    # the load goes on meanwhile
        time.sleep(20)
        assert d.proc.poll() is None, "worker exited during the outage"
        assert status(d.port, "/healthz") == 200
        assert status(d.port, "/readyz") == 503
    finally:
        stack("pg-start")
    run.wait_applied(2 * N, timeout=60)
    processed, distinct = run.seen()
    assert (processed, distinct) == (2 * N, 2 * N)
    check_balances(run)
    assert consume(run.dlq, idle_ms=500) == []
    check_outputs(run, 2 * N)
    assert status(d.port, "/readyz") == 200
    assert d.term() == 0
