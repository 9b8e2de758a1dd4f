"""146: a worker does not fetch its retry partitions while they have nothing to read (each
fetch costs the broker work per partition it names, and retry topics are most of a worker's
partitions); a retry copy written to one is still read and applied after its delay, and the
partition is parked again once it is read. The kasir_worker_retry_partitions_parked gauge
shows how many are parked."""
import time

from runtime_util import Run, metrics, produce, wait_until


def parked(d):
    return metrics(d.port).get("kasir_worker_retry_partitions_parked")


def test_empty_retry_partition_parked_and_unparked_for_a_copy(daemons):
    run = Run("t146", partitions=1, delays=("1s",))
    produce([run.event(0)])
    d = daemons("demo", env=run.env())
    run.wait_applied(1, timeout=20)
    wait_until(lambda: parked(d) == "1", 10, what="retry partition parked")

    t0 = time.time()
    produce([run.event(1, note="fail-once")])
    run.wait_applied(2, timeout=20)
    # 1 s +/- 20 % of retry delay, and a parked partition is looked at every 200 ms
    assert time.time() - t0 < 1.2 + 0.2 + 2.5, time.time() - t0
    wait_until(lambda: parked(d) == "1", 10, what="retry partition parked again")
    assert run.applied() == 2
    assert d.term() == 0
