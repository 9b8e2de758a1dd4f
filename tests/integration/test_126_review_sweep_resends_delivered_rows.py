"""126 (review): the sweep re-sends outputs this process has just relayed. A row is "presumed
lost in flight" when created_at <= now() - worker.outbox.min_age, and created_at is the
batch transaction's start (now()). Delivered rows are marked (deleted) only on an idle loop
turn or in the next batch's tail, but housekeeping() runs the sweep on busy turns too. So
every output of a batch whose transaction lasted longer than min_age (default 30 s: a batch
with lock waits, the isolated pass of a large batch, the executor calling a PSP inside its
batch, a slow Kafka) is produced again by each sweep until its mark is written - here every
output three times - and retry and DLQ copies likewise (the DLQ shows each failure twice;
an operator replays it twice). Readers dedup by message id, but the wire carries 2-3x the
traffic exactly when the system is slow, and per-key order breaks (old outputs re-sent after
newer ones) without any crash, which lib/README.md does not allow for. The sweep must skip
ids this producer has in flight or delivered-unmarked (or age rows from their relay).

Fails today: 10 outputs, 20 extra copies on the wire."""
from runtime_util import Run, check_outputs, produce


def test_slow_batch_outputs_sent_once(daemons):
    run = Run("t126", partitions=1)
    produce([run.event(i, note="stall" if i == 0 else None) for i in range(10)])
    d = daemons("demo", env=run.env(KASIR_DEMO_STALL="4s", KASIR_WORKER_OUTBOX_MIN_AGE="3s",
                                    KASIR_WORKER_OUTBOX_SWEEP="300ms"))
    run.wait_applied(10, timeout=30)
    import time
    time.sleep(5)
    extra = check_outputs(run, 10)
    assert extra == 0, "%d extra copies of 10 outputs on the wire (nothing failed)" % extra
    assert d.term() == 0
