"""145: the cap on a retry copy's due time (test 120) is measured from the copy's own Kafka
timestamp, which its producer chooses (CreateTime, the topics' default). lib/worker_msg.c
item_prepare bounds kasir.retry.not_before by m->timestamp_ms + the longest delay (+ its
jitter) + 1 s, so a copy whose timestamp is as far ahead as its not_before passes the cap:
a forged copy (headers and CreateTime both ten years ahead), or a copy relayed by an
instance whose clock runs ten years fast (its relay stamps both with its own clock, the
very case the cap's comment names). It is held at the head of its retry partition, the
partition is paused, and every genuine retry copy behind it (somebody's payment) waits for
ten years. Test 120 forged only the header, with the timestamp of now, and so held.

Scenario: the forged copy (timestamp and not_before ten years ahead), then a genuine copy
due now on the same retry partition: the genuine copy must be applied within seconds.

Proposed fix: measure the cap from the reader's clock as well, base = min(timestamp, now)
(a copy is never due later than the longest delay + jitter after it is read), or from the
broker's LogAppendTime (message.timestamp.type on the retry topics, set by deploy/topics)."""
import time

import pytest

from runtime_util import Run, produce, wait_until


def test_future_timestamp_does_not_stall_retry_partition(daemons):
    run = Run("t145", partitions=1, delays=("1s",))
    now_ms = int(time.time() * 1000)
    ten_years = 10 * 365 * 24 * 3600 * 1000

    def retry_copy(i, not_before, ts=None):
        ev = run.event(i)
        ev["topic"] = run.retry[0]
        ev["headers"] = {"kasir.message_id": "%s-m%d" % (run.name, i),
                         "kasir.origin.topic": run.topic, "kasir.origin.partition": "0",
                         "kasir.origin.offset": str(i), "kasir.attempt": "2",
                         "kasir.retry.not_before": str(not_before)}
        if ts is not None:
            ev["timestamp_ms"] = ts
        return ev

    produce([retry_copy(1, now_ms + ten_years, ts=now_ms + ten_years),
             retry_copy(2, now_ms)])
    d = daemons("demo", env=run.env())
    # the genuine copy is due at once; the longest delay is 1s (+20% jitter): 15s is ample
    wait_until(lambda: run.applied() >= 1, 15,
               what="the genuine retry copy behind a far-future one applied")
    assert d.term() == 0
