"""105: two instances in one group, a rebalance mid-stream (the second starts midway, then
the first stops): every input processed exactly once, fenced by the PostgreSQL offsets."""
import time

from conftest import psql_one
from runtime_util import Run, check_balances, check_outputs, produce

N = 30000


def test_rebalance_no_duplicate_effect(daemons):
    run = Run("t105", partitions=4)
    produce([run.event(i) for i in range(N // 3)])
    env = run.env(KASIR_WORKER_BATCH_MAX=200)
    a = daemons("demo", env=env)
    run.wait_applied(1000, timeout=30)
    b = daemons("demo", env=env)
    produce([run.event(i) for i in range(N // 3, 2 * N // 3)])
    time.sleep(3)
    assert a.term() == 0                          # leaves the group cleanly
    produce([run.event(i) for i in range(2 * N // 3, N)])
    run.wait_applied(N, timeout=60)
    processed, distinct = run.seen()
    assert (processed, distinct) == (N, N)
    check_balances(run)
    check_outputs(run, N)
    owners = int(psql_one("SELECT count(DISTINCT instance) FROM kasir_offsets WHERE group_id = '%s'" % run.group))
    assert owners == 2, "both instances committed offsets"
    assert b.term() == 0
