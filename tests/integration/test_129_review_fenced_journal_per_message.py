"""129 (review): with a per-message handler, a zombie's fenced journal write dead-letters
the payment instead of dropping the zombie's batch. Per-message handlers (spec.handle_msg)
always run under ks_batch_run_msg(): the KS_ECONFLICT of a fenced ks_batch_journal() is
taken as that message's own failure - rolled back to its savepoint and ks_batch_fail()ed
(non-retriable: class "failed", to the DLQ) - and the batch goes on to its end.
w->journal_fenced is only looked at by classify(), which runs when the batch fails, so the
zombie's batch commits: kasir_offsets_advance fences by next_offset alone, and the new
owner has not committed yet. Result: the zombie dead-letters the message and commits the
rest; the new owner, whose journal write went through (so the executor would have called
the PSP), then loses its commit to KS409 and resumes after the zombie's position. The
payment is charged and sits in the DLQ as "failed: fenced".

Same scenario as test 114b, in per-message mode, with the new owner still inside its batch
when the zombie resumes.
Fails today: event 0 is in the DLQ and never applied."""
import os
import signal

from conftest import psql_one
from runtime_util import Run, consume, produce, wait_until

FAST_GROUP = {"KASIR_KAFKA_SESSION_TIMEOUT_MS": "6000",
              "KASIR_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
              "KASIR_DEMO_PER_MESSAGE": "true"}


def test_fenced_journal_in_per_message_mode_drops_the_batch(daemons):
    run = Run("t129", partitions=1)
    produce([run.event(0, note="stall+journal")] + [run.event(i) for i in range(1, 5)])
    a = daemons("demo", env=dict(run.env(KASIR_DEMO_STALL="6s"), **FAST_GROUP))
    wait_until(lambda: "demo.stall" in a.log_tail(200), 30, what="A holding its batch open")
    os.kill(a.proc.pid, signal.SIGSTOP)
    try:
        b = daemons("demo", env=dict(run.env(KASIR_DEMO_STALL="12s"), **FAST_GROUP))
        wait_until(lambda: "demo.stall" in b.log_tail(200), 40, what="B handling the batch")
    finally:
        os.kill(a.proc.pid, signal.SIGCONT)
    wait_until(lambda: "demo.journal.fenced" in a.log_tail(400), 30, what="A's journal fenced")
    wait_until(lambda: psql_one("SELECT count(*) FROM demo_seen WHERE event_id = '%s-0' "
                                "AND src_topic = 'journal'" % run.name) == "1", 40,
               what="B's journal row (B would call the PSP now)")
    try:
        run.wait_applied(5, timeout=30)
    except AssertionError:
        pass
    dlq = consume(run.dlq, idle_ms=1000)
    assert dlq == [], "dead-lettered by the zombie: %s" % [m["headers"].get("kasir.error.message")
                                                           for m in dlq]
    assert psql_one("SELECT count(*) FROM demo_applied WHERE event_id = '%s-0'" % run.name) == "1"
    b.term()
    a.term()
