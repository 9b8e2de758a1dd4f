"""103: kill -9 of the worker mid-stream, several times: every input applied exactly once
(counted in the demo's audit table, which has no unique key to hide a second processing),
and every output present on the output topic. Guarantee: effects exactly once; outputs at
least once on the wire, duplicates carrying the same kasir.message_id."""
import random
import time

from runtime_util import Run, check_balances, check_outputs, consume, produce

N = 50000


def test_kill9_exactly_once(daemons):
    run = Run("t103", partitions=3)
    produce([run.event(i) for i in range(N)])
    # static membership: the restarted process takes its partitions back at once
    env = run.env(KASIR_INSTANCE_ID=run.name + "-i1", KASIR_WORKER_BATCH_MAX=500)
    rnd = random.Random(103)
    kills = 0
    d = daemons("demo", env=env)
    for _ in range(4):
        start = run.applied()
        deadline = time.time() + 20
        while run.applied() == start and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(rnd.uniform(0.0, 0.15))
        if run.applied() >= N:
            break
        d.kill9()
        kills += 1
        d = daemons("demo", env=env)
    run.wait_applied(N, timeout=60)
    assert kills >= 2
    processed, distinct = run.seen()
    assert (processed, distinct) == (N, N)
    check_balances(run)
    time.sleep(4)  # let the outbox sweep relay what a kill left unsent
    dups = check_outputs(run, N)
    print("kills=%d duplicate outputs on the wire=%d" % (kills, dups))
    assert consume(run.dlq, idle_ms=500) == []
    assert d.term() == 0
