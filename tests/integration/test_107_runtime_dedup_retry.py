"""107: a worker with message-id dedup (spec.dedup, kasir_processed) whose handler fails a
message transiently: the retry copy carries the same message id, so the claim made for the
failed attempt used to mark it processed and the retry was skipped as a duplicate - the
input was never applied. A failed message's claim now goes with its failure; a real
duplicate is still skipped."""
from runtime_util import Run, metrics, produce, wait_until


def test_dedup_does_not_swallow_retries(daemons):
    run = Run("t107", partitions=1, delays=("1s",))
    produce([run.event(0), run.event(1, note="fail-once"), run.event(2)])
    d = daemons("demo", env=run.env(KASIR_DEMO_DEDUP="true"))
    run.wait_applied(2, timeout=20)
    produce([run.event(0)])                       # the same message again: a duplicate
    run.wait_applied(3, timeout=20)               # fail-once, from its retry topic
    wait_until(lambda: metrics(d.port).get("kasir_worker_duplicates_total") == "1", 10,
               what="the duplicate skipped")
    assert run.seen() == (3, 3)                   # each applied once, none twice
    assert d.term() == 0
