"""114: a zombie owner. Instance A is stopped (SIGSTOP) while its batch is open, past the
session timeout; B takes the partition over and applies everything; A is resumed and its
batch end is fenced (KS409, kasir_worker_fenced_total) and nothing is applied twice."""
import os
import signal
import time

from runtime_util import Run, metrics, produce, wait_until

FAST_GROUP = {"KASIR_KAFKA_SESSION_TIMEOUT_MS": "6000",
              "KASIR_KAFKA_HEARTBEAT_INTERVAL_MS": "500"}


def test_zombie_batch_end_is_fenced(daemons):
    run = Run("t114", partitions=1)
    produce([run.event(i, note="stall" if i == 0 else None) for i in range(50)])
    a = daemons("demo", env=dict(run.env(KASIR_DEMO_STALL="6s"), **FAST_GROUP))
    wait_until(lambda: "demo.stall" in a.log_tail(200), 30, what="A holding its batch open")
    os.kill(a.proc.pid, signal.SIGSTOP)
    try:
        b = daemons("demo", env=dict(run.env(), **FAST_GROUP))
        run.wait_applied(50, timeout=60)
        wait_until(lambda: run.seen()[0] >= 50, 10, what="B's audit")
    finally:
        os.kill(a.proc.pid, signal.SIGCONT)
    wait_until(lambda: int(metrics(a.port).get("kasir_worker_fenced_total", "0")) >= 1, 40,
               what="A's batch end fenced")
    time.sleep(1)
    processed, distinct = run.seen()
    assert (processed, distinct) == (50, 50), (processed, distinct)
    assert "worker.fenced" in a.log_tail(400)
    assert b.term() == 0
    assert a.term() == 0


def test_zombie_journal_write_is_fenced(daemons):
    """The executor's pattern: commit a journal record before an external call, only while
    owning the partition. The zombie's journal write fails and its batch is dropped; the
    new owner's goes through: one journal row, nothing dead-lettered."""
    from conftest import psql_one
    from runtime_util import consume
    run = Run("t114j", partitions=1)
    produce([run.event(i, note="stall+journal" if i == 0 else None) for i in range(10)])
    a = daemons("demo", env=dict(run.env(KASIR_DEMO_STALL="6s"), **FAST_GROUP))
    wait_until(lambda: "demo.stall" in a.log_tail(200), 30, what="A holding its batch open")
    os.kill(a.proc.pid, signal.SIGSTOP)
    try:
        b = daemons("demo", env=dict(run.env(), **FAST_GROUP))
        run.wait_applied(10, timeout=60)
    finally:
        os.kill(a.proc.pid, signal.SIGCONT)
    wait_until(lambda: "demo.journal.fenced" in a.log_tail(400), 40, what="A's journal fenced")
    wait_until(lambda: int(metrics(a.port).get("kasir_worker_fenced_total", "0")) >= 1, 20,
               what="A's batch dropped")
    journal = psql_one("SELECT count(*) FROM demo_seen WHERE event_id = '%s-0' AND src_topic = 'journal'"
                       % run.name)
    assert journal == "1", journal
    assert consume(run.dlq, idle_ms=500) == []
    assert run.seen()[0] == 10 + 1  # ten processings and B's journal row
    assert b.term() == 0
    assert a.term() == 0
