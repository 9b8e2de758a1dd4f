"""112: a fatal error of the idempotent producer (rd_kafka_test_fatal_error through the
demo's "fatal-producer" note) does not strand outputs in kasir_outbox: the runtime replaces
the producer and relays every unsent row; nothing is lost."""
from conftest import psql_one
from runtime_util import Run, check_outputs, metrics, produce, wait_until


def test_fatal_producer_error_loses_nothing(daemons):
    run = Run("t112", partitions=1)
    produce([run.event(i, note="fatal-producer" if i == 20 else None) for i in range(60)])
    d = daemons("demo", env=run.env(KASIR_WORKER_BATCH_MAX=10))
    run.wait_applied(60, timeout=30)
    wait_until(lambda: int(metrics(d.port).get("kasir_worker_kafka_fatal_total", "0")) >= 1, 20,
               what="the fatal error seen")
    produce([run.event(i) for i in range(60, 80)])  # and outputs keep flowing afterwards
    run.wait_applied(80, timeout=30)
    wait_until(lambda: psql_one("SELECT count(*) FROM kasir_outbox WHERE topic = '%s'" % run.out) == "0",
               30, what="outbox drained")
    check_outputs(run, 80)
    assert "worker.producer.recreated" in d.log_tail(400)
    assert d.term() == 0
