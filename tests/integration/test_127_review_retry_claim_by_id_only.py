"""127 (review): a retried input is claimed by its message id alone, so a distinct input that
shares the id is silently dropped - only when it happens to be retried. A worker without
spec.dedup relies on a natural key (the demo's event_id), not on message ids: two distinct
events carrying the same kasir.message_id (an upstream that reuses ids, a replay tool that
copies headers) are both applied from the main topic. But claim_inputs() (lib/worker.c)
claims every retry-topic input by message id, so if both fail once (a PSP 503), the second
retry copy is skipped as a "duplicate" of the first: a payment lost because it was retried.
A retry copy's identity is its origin (topic, partition, offset) - the relay's duplicates
share it, distinct inputs never do - and that is what the claim should key on.

Fails today: the second event is never applied (counted in kasir_worker_duplicates_total)."""
from runtime_util import Run, produce


def test_distinct_inputs_sharing_an_id_both_applied_after_retry(daemons):
    run = Run("t127", partitions=1, delays=("1s",))
    lines = []
    for i in (1, 2):
        ev = run.event(i, note="fail-once")
        ev["headers"] = {"kasir.message_id": "%s-shared" % run.name}
        lines.append(ev)
    produce(lines)
    d = daemons("demo", env=run.env())
    run.wait_applied(2, timeout=30)
    assert d.term() == 0


def test_same_inputs_without_retry_both_applied(daemons):
    """control: without a retry both are applied (the worker keys by event_id)"""
    run = Run("t127c", partitions=1, delays=("1s",))
    lines = []
    for i in (1, 2):
        ev = run.event(i)
        ev["headers"] = {"kasir.message_id": "%s-shared" % run.name}
        lines.append(ev)
    produce(lines)
    d = daemons("demo", env=run.env())
    run.wait_applied(2, timeout=30)
    assert d.term() == 0
