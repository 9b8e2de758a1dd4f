"""116: a fatal consumer error (a second process joined with the same group.instance.id,
which fences the first in librdkafka 2.0.2) stops the fenced instance with exit code 3
instead of leaving it running without partitions; the other applies everything once."""
from runtime_util import Run, metrics, produce, wait_until


def test_fenced_static_member_exits_non_zero(daemons):
    run = Run("t116", partitions=2)
    produce([run.event(i) for i in range(20)])
    env = run.env(KASIR_INSTANCE_ID=run.name + "-i")
    a = daemons("demo", env=env)
    run.wait_applied(20, timeout=30)
    b = daemons("demo", env=env)
    a.proc.wait(timeout=60)
    assert a.proc.returncode == 3, a.log_tail()
    assert "worker.consumer.fatal" in a.log_tail(400)
    produce([run.event(i) for i in range(20, 40)])
    run.wait_applied(40, timeout=60)
    wait_until(lambda: metrics(b.port).get("kasir_worker_postgresql_up") == "1", 10)
    processed, distinct = run.seen()
    assert processed == distinct == 40
    assert b.term() == 0
