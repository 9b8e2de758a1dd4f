"""147 (review): while the broker does not answer, the look-up of parked retry partitions'
end offsets fails after 500 ms on the worker's loop thread and every retry partition is
fetched again. The worker re-parked them at once from its cached offsets and failed the
next look-up too: a 500 ms stall of the loop every few seconds for as long as the broker
hung. Now a failed look-up is followed by 30 s without parking; the worker still applies
what arrives once the broker is back."""
import os
import signal
import time

from conftest import TOP
from runtime_util import Run, metrics, produce, wait_until


def parked(d):
    return metrics(d.port).get("kasir_worker_retry_partitions_parked")


def unreadable(d):
    with open(d.log_path, errors="replace") as f:
        return sum("worker.retry.unpark" in line for line in f)


def test_failed_end_offsets_lookup_backs_off(daemons):
    run = Run("t147", partitions=1, delays=("1s",))
    produce([run.event(0)])
    d = daemons("demo", env=dict(run.env(), KASIR_LOG_LEVEL="debug"))
    run.wait_applied(1, timeout=20)
    wait_until(lambda: parked(d) == "1", 10, what="retry partition parked")

    with open(os.path.join(TOP, "var", "kafka", "kafka.pid")) as f:
        broker = int(f.read().split()[0])
    before = unreadable(d)
    os.kill(broker, signal.SIGSTOP)
    try:
        time.sleep(16)
    finally:
        os.kill(broker, signal.SIGCONT)
    failed = unreadable(d) - before
    # one failed look-up, then none for 30 s (before: one every ~5 s, 3-4 in 16 s)
    assert failed == 1, failed

    produce([run.event(1)])
    run.wait_applied(2, timeout=60)
    assert d.term() == 0
