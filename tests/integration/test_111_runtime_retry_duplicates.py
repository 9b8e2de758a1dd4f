"""111: the relay is at least once, so a retry copy can sit twice in a retry topic. Inputs
read from a retry topic are claimed by message id even when the worker has no dedup: the
second copy is skipped (demo_seen, without a unique key, shows one processing)."""
import time

from runtime_util import Run, metrics, produce, wait_until


def test_duplicated_retry_copies_applied_once(daemons):
    run = Run("t111", partitions=1)
    now_ms = int(time.time() * 1000)
    copies = []
    for _ in range(2):
        ev = run.event(1)
        ev["topic"] = run.retry[0]
        ev["headers"] = {"kasir.message_id": "%s-dup" % run.name,
                         "kasir.origin.topic": run.topic, "kasir.origin.partition": "0",
                         "kasir.origin.offset": "0", "kasir.attempt": "2",
                         "kasir.retry.not_before": str(now_ms)}
        copies.append(ev)
    produce(copies + [run.event(2)])
    d = daemons("demo", env=run.env())  # KASIR_DEMO_DEDUP unset: dedup off
    run.wait_applied(2, timeout=30)
    wait_until(lambda: metrics(d.port).get("kasir_worker_duplicates_total") == "1", 15,
               what="one duplicate skipped")
    processed, distinct = run.seen()
    assert (processed, distinct) == (2, 2), (processed, distinct)
    assert d.term() == 0
