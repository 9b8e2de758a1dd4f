"""105: two instances in one group, rebalances mid-stream (the second starts midway, then
the first stops) while messages keep coming: every input processed exactly once, fenced by
the PostgreSQL offsets; both instances did part of the work."""
import threading
import time

from runtime_util import Run, check_balances, check_outputs, metrics, produce

N = 30000
CHUNK = 1000


def test_rebalance_no_duplicate_effect(daemons):
    run = Run("t105", partitions=4)
    env = run.env(KASIR_WORKER_BATCH_MAX=200)

    def load():  # about 5,000 messages/s for 6 s
        for k in range(0, N, CHUNK):
            produce([run.event(i) for i in range(k, k + CHUNK)])
            time.sleep(0.1)

    a = daemons("demo", env=env)
    feeder = threading.Thread(target=load)
    feeder.start()
    run.wait_applied(2000, timeout=30)
    b = daemons("demo", env=env)                  # rebalance 1: the group grows
    time.sleep(2)
    a_done = int(metrics(a.port)["kasir_worker_messages_total"])
    assert a.term() == 0                          # rebalance 2: a leaves cleanly
    feeder.join()
    run.wait_applied(N, timeout=60)
    b_done = int(metrics(b.port)["kasir_worker_messages_total"])
    assert a_done > 0 and b_done > 0 and b_done < N, (a_done, b_done)
    processed, distinct = run.seen()
    assert (processed, distinct) == (N, N)
    check_balances(run)
    check_outputs(run, N)
    assert b.term() == 0
