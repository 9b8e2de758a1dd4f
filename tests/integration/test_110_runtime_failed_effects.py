"""110: a message that fails after its SQL ran keeps none of its effects: per-message
handlers run under a savepoint, batch handlers' failures are isolated per message. After
its retry the event is processed exactly once (demo_seen has no unique key, so a kept
effect of the failed attempt would show there as a second row)."""
import pytest

from runtime_util import Run, check_balances, metrics, produce, wait_until


@pytest.mark.parametrize("per_message", ["true", "false"])
def test_failed_message_effects_rolled_back(daemons, per_message):
    run = Run("t110", partitions=1, delays=("1s",))
    lines = [run.event(i, note="fail-once-late" if i == 3 else None) for i in range(8)]
    produce(lines)
    d = daemons("demo", env=dict(run.env(), KASIR_DEMO_PER_MESSAGE=per_message))
    run.wait_applied(8, timeout=40)
    # the retry copy was read and handled too (8 first deliveries + 1 retry)
    wait_until(lambda: int(metrics(d.port).get("kasir_worker_messages_total", "0")) >= 9 and
               int(metrics(d.port).get("kasir_worker_batches_total", "0")) >= 2, 30,
               what="the retry handled")
    assert metrics(d.port).get("kasir_worker_retries_total") == "1"
    processed, distinct = run.seen()
    assert (processed, distinct) == (8, 8), (processed, distinct)
    check_balances(run)
    assert d.term() == 0
