"""122 (review): a fenced zombie takes the partition back in PostgreSQL. When A's journal
write (or batch end) is fenced, drop_and_resync() (lib/worker.c) un-syncs and the very next
loop turn runs sync_assignment() with A's stale assignment - before A has polled the
consumer and seen its revoke - and SQL_OFFSETS_READ bumps kasir_offsets.epoch and sets
instance = A. A, no longer a member, is the owner again as far as ks_batch_journal and
ks_batch_owned can tell; the real owner B is fenced by the zombie: B's next journal write
fails and its batch is dropped. With the idempotent journal the header recommends (INSERT
... ON CONFLICT DO NOTHING), ownership flipping back and forth between two instances is
exactly what lets both of them journal successfully and call a PSP for the same attempt.
A fence means "someone else owns this": the fenced instance must wait for its rebalance,
not re-take positions.

Fails today: B, the group's owner, has its journal write fenced after A is resumed."""
import os
import signal

from conftest import psql_one
from runtime_util import Run, metrics, produce, wait_until

FAST_GROUP = {"KASIR_KAFKA_SESSION_TIMEOUT_MS": "6000",
              "KASIR_KAFKA_HEARTBEAT_INTERVAL_MS": "500"}


def test_fenced_zombie_does_not_take_the_partition_back(daemons):
    run = Run("t122", partitions=1)
    produce([run.event(0, note="stall+journal")] + [run.event(i) for i in range(1, 5)])
    a = daemons("demo", env=dict(run.env(KASIR_DEMO_STALL="6s"), **FAST_GROUP))
    wait_until(lambda: "demo.stall" in a.log_tail(200), 30, what="A holding its batch open")
    os.kill(a.proc.pid, signal.SIGSTOP)
    try:
        b = daemons("demo", env=dict(run.env(KASIR_DEMO_STALL="9s"), **FAST_GROUP))
        # B took the partition over and holds its own batch open (before its journal write)
        wait_until(lambda: "demo.stall" in b.log_tail(200), 40, what="B handling the batch")
    finally:
        os.kill(a.proc.pid, signal.SIGCONT)
    wait_until(lambda: "worker.fenced" in a.log_tail(400), 30, what="A fenced")
    run.wait_applied(5, timeout=60)
    journal = psql_one("SELECT count(*) FROM demo_seen WHERE event_id = '%s-0' "
                       "AND src_topic = 'journal'" % run.name)
    assert journal == "1", journal
    assert "demo.journal.fenced" not in b.log_tail(400), \
        "the group's owner B was fenced by the zombie A that took the partition back"
    assert metrics(b.port).get("kasir_worker_fenced_total", "0") == "0"
    b.term()
    a.term()
