"""130: the sent mark (the DELETE of delivered outbox rows, sent as text in the batch's tail)
names its owner since the outbox's one index is (worker, id) (800_runtime.sql). An owner is
"<worker>/<group>" and a group is whatever the operator configured: a quote or a backslash
in it must neither break the tail (every batch would fail) nor mark another owner's rows.
Here a group with both: every event applied once, every output on the topic, and the
group's delivered rows deleted; a row of another owner with the same id range stays."""
import time

from conftest import psql, psql_one
from runtime_util import Run, check_outputs, produce, wait_until


def test_group_with_quote_and_backslash(daemons):
    run = Run("t130", partitions=1)
    group = run.group + "-o'k\\x"
    owner = "demo/" + group
    lit = owner.replace("'", "''")
    # another owner's row, unsent, in the id range the batches will take
    psql("INSERT INTO kasir_outbox (worker, message_id, topic, key, value, headers) "
         "VALUES ('%s-other', 'm-t130-other', '%s', NULL, NULL, NULL)" % (lit, run.out))
    produce([run.event(i) for i in range(50)])
    d = daemons("demo", env=run.env(KASIR_WORKER_GROUP=group))
    run.wait_applied(50, timeout=30)
    # relayed after the commit, marked on an idle turn: the group's rows go
    wait_until(lambda: psql_one("SELECT count(*) FROM kasir_outbox WHERE worker = '%s'" % lit) == "0",
               timeout=20, what="the group's delivered outbox rows deleted")
    assert check_outputs(run, 50) == 0
    time.sleep(1)
    assert psql_one("SELECT count(*) FROM kasir_outbox WHERE worker = '%s-other'" % lit) == "1"
    psql("DELETE FROM kasir_outbox WHERE worker = '%s-other'" % lit)
    assert d.term() == 0
