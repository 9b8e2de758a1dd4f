"""148 (review, session 12): a partition whose kasir_offsets row another session holds
locked leaves the worker "pending", and the loop looks again every second
(wk_sync_assignment). Each look re-assigned every partition it already had at its stored
position, so librdkafka fetched again what the worker had already taken: the batch in hand
or the tail in flight. Those copies passed the stale-offset filter, which knew only the
stored position, and were processed a second time (kasir_offsets then moved past them: the
fence saw nothing wrong). A runtime without spec.dedup (the demo here, with its audit
table; the executor and the ledger rely on their own keys) runs each message exactly once
by its offsets, so every processing of an event beyond the first is the defect.

Here partition 0's row is held FOR SHARE (as a stopped zombie's journal would) while
steady traffic goes to partition 1 for ~8 s: ~8 re-assignments under load. Failed before:
events of partition 1 were processed twice (demo_seen had more rows than events)."""
import time

from conftest import psql
from runtime_util import Run, metrics, produce


def test_pending_partition_does_not_reprocess_taken_messages(daemons):
    run = Run("t148", partitions=2)
    psql("INSERT INTO kasir_offsets (group_id, topic, partition) VALUES ('%s', '%s', 0), "
         "('%s', '%s', 1)" % (run.group, run.topic, run.group, run.topic))
    holder = run.hold_offsets(12, partition=0)
    n = 0
    try:
        time.sleep(0.5)
        # fetch.min.bytes 1: a fetch answers at once; "stall" holds the handler
        # 300 ms a burst: the copies fetched again reach the worker while the batch they duplicate
        # is in hand or in flight
        d = daemons("demo", env=run.env(KASIR_WORKER_PG_LOCK_TIMEOUT="500ms",
                                         KASIR_WORKER_BATCH_WAIT="200ms",
                                         KASIR_KAFKA_FETCH_MIN_BYTES="1",
                                         KASIR_DEMO_STALL="300ms"))
        deadline = time.time() + 8
        while time.time() < deadline:  # bounded: ~8 s of 200-event bursts, the first of each stalls
            produce([run.event(n + i, partition=1, note="stall" if i == 0 else None)
                     for i in range(200)])
            n += 200
            time.sleep(0.2)
        assert holder.poll() is None, "the lock holder ended early; the test proves nothing"
    finally:
        holder.kill()
        holder.wait()
    run.wait_applied(n, timeout=60)
    time.sleep(2)  # a late second processing would show here
    processings, events = run.seen()
    assert events == n, "%d of %d events processed" % (events, n)
    assert processings == events, (
        "%d processings of %d events: messages taken before a re-assignment were fetched and "
        "processed again" % (processings, events))
    # the scene happened: copies of messages in hand came again, and were dropped
    assert int(metrics(d.port).get("kasir_worker_refetched_total", "0")) > 0
    d.term()
