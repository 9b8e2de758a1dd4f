"""149 (review, session 12): a retry partition holds the copies it read before their due time
(wk_hold), in offset order. When they are due, a batch takes as many as it has room for.
Since session 11 the next batch's collect starts while the last COMMIT is on the server
(relay at COMMIT): the messages librdkafka had queued are in the batch first, and the held
copies then get only the room left. The ones taken were held again behind those left
(wk_prepare held any item of a partition that still held copies): one account's retried
events were applied out of order.

Here: batch.max 10; eight events of account A fail once and wait on the retry topic (all
eight held); the main partition's kasir_offsets row is locked, so the next batch (10 plain
events) cannot commit while the 5 after it are taken; the lock is released once A's copies
are due, and the batch has room for 5 of the 8. A's events must be applied in their order.
Failed before: 5,6,7,0,1,2,3,4."""
import time

from conftest import psql_one
from runtime_util import Run, produce, wait_until


def test_held_copies_applied_in_order_when_a_batch_has_room_for_some(daemons):
    run = Run("t149", partitions=1, delays=("5s",))
    acct = run.name + "-A"
    d = daemons("demo", env=run.env(KASIR_WORKER_BATCH_MAX="10",
                                     KASIR_WORKER_RETRY_JITTER_PCT="0"))
    t0 = time.time()
    produce([run.event(i, account=acct, note="fail-once") for i in range(8)])
    wait_until(lambda: psql_one("SELECT count(*) FROM kasir_offsets WHERE group_id = '%s' "
                                "AND topic = '%s' AND next_offset >= 8"
                                % (run.group, run.topic)) == "1", 10, what="A's batch committed")
    time.sleep(0.5)  # the copies relayed and read: all eight held, due ~5 s after t0
    holder = run.hold_offsets(max(1.0, t0 + 7 - time.time()), mode="FOR UPDATE")
    time.sleep(0.5)
    assert time.time() < t0 + 4, "too slow to set the scene before A's copies are due"
    produce([run.event(100 + i, account=run.name + "-B") for i in range(15)])
    holder.wait(timeout=30)
    run.wait_applied(23, timeout=30)
    order = psql_one("SELECT string_agg(split_part(event_id, '-', -1), ',' ORDER BY applied_seq) "
                     "FROM demo_applied WHERE account = '%s'" % acct)
    assert order == "0,1,2,3,4,5,6,7", "account A's retried events applied as %s" % order
    assert d.term() == 0
