"""142: a fenced consumer while a retry partition holds a copy not yet due. The fatal path of
ks_worker_run destroys the consumer without closing it (RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE,
so no revoke callback runs), yet the messages the runtime holds for their due time
(part->held) are still alive: they are destroyed afterwards in ks_worker_free
(wk_clear_parts -> release_held -> rd_kafka_message_destroy), i.e. after their client.
Test 116 fences an instance with nothing held and so never takes this path. Measured: the
fenced process never exits; gdb shows its main thread in rd_kafka_destroy_flags
(lib/worker.c:483) joining librdkafka's main thread, which waits for the held messages'
partition references: a supervisor waiting for exit 3 to restart it waits forever.

Scenario: instance A (static member) applies a burst, one event fails once and its retry
copy (delay 20 s) is held by A with its partition paused; a second process with the same
group.instance.id fences A. A must stop promptly with exit code 3 (not hang in the destroy,
not crash), and B must apply everything exactly once, the held event included after its
delay.

Proposed fix: in the fatal branch of ks_worker_run, release every held message
(wk_clear_parts, or release_held on each part) before rd_kafka_destroy_flags, as the revoke
callback does on the clean path."""
import time

import pytest

from runtime_util import Run, consume, produce, wait_until


def test_fenced_while_holding_a_retry_copy(daemons):
    run = Run("t142", partitions=1, delays=("20s",))
    produce([run.event(i, note="fail-once" if i == 3 else None) for i in range(10)])
    env = run.env(KASIR_INSTANCE_ID=run.name + "-i")
    a = daemons("demo", env=env)
    run.wait_applied(9, timeout=30)
    # the retry copy is on its topic, and A has read it and holds it (not due for 20 s)
    wait_until(lambda: len(consume(run.retry[0], idle_ms=500)) == 1, 15, what="retry copy relayed")
    time.sleep(2)
    assert run.applied() == 9
    b = daemons("demo", env=env)
    t0 = time.time()
    try:
        a.proc.wait(timeout=20)
    except Exception:
        raise AssertionError("fenced instance still running after 20 s:\n" + a.log_tail())
    assert a.proc.returncode == 3, (a.proc.returncode, a.log_tail())
    assert time.time() - t0 < 20
    run.wait_applied(10, timeout=60)
    processed, distinct = run.seen()
    assert distinct == 10
    assert b.term() == 0
