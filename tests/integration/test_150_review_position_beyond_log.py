"""150: a stored position beyond the end of its partition's log (the topic was deleted and
created again, the cluster replaced or its log truncated, while PostgreSQL kept
kasir_offsets) does not make the worker skip what the log now holds. Before session 13 the
consumer was reset to the log's start by librdkafka and the runtime dropped every message
below the stored position as already processed: new payments were never executed, and a
retry partition whose position was beyond its end stayed parked for good. Now the position
is checked against the log at assignment: found beyond its end, the partition is read from
the log's start (inputs are applied once by their message ids or natural keys), logged as
an error and counted (kasir_worker_positions_outside_log_total)."""
from conftest import psql, psql_one
from runtime_util import Run, metrics, produce, wait_until


def test_stored_position_beyond_the_log_reads_the_log(daemons):
    run = Run("t150", partitions=1, delays=("1s",))
    # positions of an earlier life of these topics: far beyond their (new, empty) logs
    psql("INSERT INTO kasir_offsets (group_id, topic, partition, next_offset) "
             "VALUES ('%s', '%s', 0, 1000), ('%s', '%s', 0, 500)"
             % (run.group, run.topic, run.group, run.retry[0]))
    produce([run.event(i, partition=0) for i in range(5)])
    d = daemons("demo", env=run.env())
    run.wait_applied(5, timeout=30)
    wait_until(lambda: psql_one(
        "SELECT next_offset FROM kasir_offsets WHERE group_id = '%s' AND topic = '%s'"
        % (run.group, run.topic)) == "5", 10, what="the position follows the log")
    assert int(float(metrics(d.port).get("kasir_worker_positions_outside_log_total", "0"))) >= 2

    # the retry partition (its position was 500, its log empty) is read too
    produce([run.event(5, partition=0, note="fail-once")])
    run.wait_applied(6, timeout=30)
    assert run.applied() == 6
    assert d.term() == 0
