"""120 (review): a retry copy's kasir.retry.not_before is trusted without a bound. A copy on
the worker's own retry topic whose not_before lies years ahead (a forged header, or a copy
written by an instance whose clock was far off) is held at the head of its partition and
the partition is paused until then: every genuine retry copy behind it (somebody's payment)
waits for years. A retry copy can never be due later than the longest retry delay plus its
jitter after it was written; a due time beyond that must not hold the partition.

Fails today: the genuine retry copy behind the forged one is never applied."""
import time

from runtime_util import Run, produce, wait_until


def test_far_future_not_before_does_not_stall_retry_partition(daemons):
    run = Run("t120", partitions=1, delays=("1s",))
    now_ms = int(time.time() * 1000)

    def retry_copy(i, not_before):
        ev = run.event(i)
        ev["topic"] = run.retry[0]
        ev["headers"] = {"kasir.message_id": "%s-m%d" % (run.name, i),
                         "kasir.origin.topic": run.topic, "kasir.origin.partition": "0",
                         "kasir.origin.offset": str(i), "kasir.attempt": "2",
                         "kasir.retry.not_before": str(not_before)}
        return ev

    ten_years = 10 * 365 * 24 * 3600 * 1000
    produce([retry_copy(1, now_ms + ten_years),   # forged / skewed clock
             retry_copy(2, now_ms)])               # a genuine retry copy, due now
    d = daemons("demo", env=run.env())
    # the genuine copy is due at once; the longest delay is 1s (+20% jitter): 15s is ample
    wait_until(lambda: run.applied() >= 1, 15,
               what="the genuine retry copy behind a far-future one applied")
    assert d.term() == 0
