"""113: an outbox row Kafka refuses for itself (here: larger than message.max.bytes) is not
re-produced forever: after worker.outbox.park_after refusals it moves to kasir_outbox_dead
with its error, is counted in a metric, and the rest of the outputs flow."""
from conftest import psql, psql_one
from runtime_util import Run, metrics, produce, wait_until


def test_refused_outbox_row_is_parked(daemons):
    run = Run("t113", partitions=1)
    big = run.event(5)
    big["value"]["event_id"] = run.name + "-5-" + "x" * 1500  # its output exceeds 1000 bytes
    produce([run.event(i) for i in range(5)] + [big] + [run.event(i) for i in range(6, 10)])
    d = daemons("demo", env=run.env(KASIR_KAFKA_MESSAGE_MAX_BYTES=1000,
                                    KASIR_WORKER_OUTBOX_PARK_AFTER=3,
                                    KASIR_WORKER_OUTBOX_MIN_AGE="500ms",
                                    KASIR_WORKER_OUTBOX_SWEEP="300ms"))
    run.wait_applied(10, timeout=30)
    owner = "demo/" + run.group
    wait_until(lambda: psql_one("SELECT count(*) FROM kasir_outbox_dead WHERE worker = '%s'" % owner) == "1",
               30, what="the refused row parked")
    rows = psql("SELECT topic, attempts, last_error, length(value) FROM kasir_outbox_dead "
                "WHERE worker = '%s'" % owner)
    topic, attempts, last_error, vlen = rows[0]
    assert topic == run.out
    assert int(attempts) >= 3
    assert "SIZE_TOO_LARGE" in last_error, last_error
    assert int(vlen) > 1000
    assert psql_one("SELECT count(*) FROM kasir_outbox WHERE worker = '%s'" % owner) == "0"
    wait_until(lambda: metrics(d.port).get("kasir_worker_outbox_parked_total") == "1", 10,
               what="the parked row counted")
    assert d.term() == 0
