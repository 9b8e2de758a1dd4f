"""128 (review): one locked kasir_offsets row stalls every partition of the new owner and
is reported as "PostgreSQL down". A zombie stopped inside ks_batch_journal holds its
partition's kasir_offsets row FOR SHARE (by design: "a new owner's assignment waits for
it") until idle_in_transaction_session_timeout (120 s by default) ends its session. The new
owner reads all its positions with one UPDATE (SQL_OFFSETS_READ, lib/worker.c), so that
single row blocks the assignment of all its partitions; when lock_timeout fires,
sync_assignment() sees a retriable error and calls pg_down(): /readyz and
kasir_worker_postgresql_up say PostgreSQL is down on a healthy server (worker.h: "/readyz
reports PostgreSQL down only then" - when the connection is lost).

Here another session holds partition 0's row FOR SHARE, as the stopped zombie's journal
transaction would; partition 1 must be consumed meanwhile and PostgreSQL reported up.
Fails today: nothing is consumed and /readyz says postgresql down."""
import json
import time

from conftest import http_get, psql
from runtime_util import Run, metrics, produce


def readyz(port):
    try:
        status, body = http_get("http://127.0.0.1:%d/readyz" % port, 2)
    except Exception as e:
        status, body = getattr(e, "code", 0), (e.read() if hasattr(e, "read") else b"{}")
    return status, json.loads(body or b"{}")


def test_locked_offsets_row_does_not_stall_other_partitions(daemons):
    run = Run("t128", partitions=2)
    psql("INSERT INTO kasir_offsets (group_id, topic, partition) VALUES ('%s', '%s', 0), "
         "('%s', '%s', 1)" % (run.group, run.topic, run.group, run.topic))
    holder = run.hold_offsets(30, partition=0)
    try:
        time.sleep(0.5)
        produce([run.event(i, partition=1) for i in range(5)])
        d = daemons("demo", env=run.env(KASIR_WORKER_PG_LOCK_TIMEOUT="500ms"))
        deadline = time.time() + 15
        downs = []
        while time.time() < deadline and run.applied() < 5:
            st, body = readyz(d.port)
            downs.append(body.get("postgresql"))
            time.sleep(0.3)
        assert holder.poll() is None, "the lock holder ended early; the test proves nothing"
        st, body = readyz(d.port)
        downs.append(body.get("postgresql"))
        assert "down" not in downs, "PostgreSQL reported down on a healthy server: %s" % downs
        assert metrics(d.port).get("kasir_worker_postgresql_up") == "1"
        assert run.applied() == 5, ("%d of 5 events of the unlocked partition applied while "
                                    "another partition's row was locked" % run.applied())
    finally:
        holder.kill()
        holder.wait()
    d.term()
