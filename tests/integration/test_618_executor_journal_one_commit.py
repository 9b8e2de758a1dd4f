"""618: kasir-executor journals a batch's new attempts in one fenced commit, whatever the
number of input partitions the batch spans, and a batch fenced on any one of them sends no
new attempt.

The journal is committed before any PSP call (an attempt is on record before money can
move). It was one commit per input partition: a batch of commands from six partitions took
six transactions and six WAL flushes one after the other before its last call left, most of
the executor's batch time end to end (docs/BENCHMARKS.md, session 31; with this test's
counter on that code: 6 journal commits for 1 batch). And a batch fenced on one partition
(another instance owns it now) had sent the calls of the partitions journaled before it,
for a batch the runtime then drops (their attempts left `sent`)."""
import os
import signal

from executor_util import Exec, assert_no_duplicates, metrics, produce, psql, psql_one, wait_until
from sandbox_util import sandbox  # noqa: F401 (fixture)

N = 60
# SIGSTOP below must not cost the group its member
SLOW_GROUP = {"KASIR_KAFKA_SESSION_TIMEOUT_MS": "45000"}


def started(ex, sandbox, daemons):
    """The executor, assigned and positioned on the six command partitions, with N orders
    whose commands are not on the topic yet."""
    ex.orders([(ex.order_id(i), 100000 + i, "CARD") for i in range(N)])
    d = daemons("executor", env=ex.env(sandbox, **SLOW_GROUP))
    wait_until(lambda: psql_one("SELECT count(*) FROM kasir_offsets WHERE group_id = '%s' "
                                "AND topic = '%s' AND instance IS NOT NULL AND epoch > 0"
                                % (ex.group, ex.commands)) == "6",
               timeout=30, what="the executor's positions")
    return d


def produce_stopped(d, ex, then=None):
    """Every command on the topic while the executor cannot fetch, so that its next fetch
    brings all six partitions and one batch spans them."""
    os.kill(d.proc.pid, signal.SIGSTOP)
    try:
        produce([ex.command(ex.order_id(i), 100000 + i) for i in range(N)])
        if then:
            then()
    finally:
        os.kill(d.proc.pid, signal.SIGCONT)


def mine(sandbox, ex):
    return sorted(e["reference"] for e in sandbox.ledger()["entries"]
                  if e.get("reference", "").startswith("ord_" + ex.tag + "_"))


def test_one_journal_commit_per_batch(daemons, sandbox):
    ex = Exec("ex618a", partitions=6)
    d = started(ex, sandbox, daemons)
    produce_stopped(d, ex)
    wait_until(lambda: len([r for r in ex.attempts() if r[2] == "resolved"]) == N, timeout=60,
               what="every attempt resolved")
    m = metrics(d.port)
    batches = int(float(m["kasir_worker_batches_total"]))
    journals = int(float(m["kasir_worker_journal_commits_total"]))
    # a commit per partition would be at least 6, one per partition the commands are on
    assert psql_one("SELECT count(DISTINCT partition) FROM kasir_offsets WHERE group_id = "
                    "'%s' AND topic = '%s' AND next_offset > 0" % (ex.group, ex.commands)) == "6"
    assert 1 <= journals <= batches and journals < 6, (journals, batches)
    assert_no_duplicates(sandbox)
    assert mine(sandbox, ex) == sorted(ex.order_id(i) for i in range(N))


def test_fenced_partition_sends_nothing_of_the_batch(daemons, sandbox):
    ex = Exec("ex618b", partitions=6)
    d = started(ex, sandbox, daemons)
    # meanwhile another instance takes partition 3 (every assignment bumps the epoch)
    produce_stopped(d, ex, then=lambda: psql(
        "UPDATE kasir_offsets SET epoch = epoch + 1 WHERE group_id = '%s' AND topic = '%s' "
        "AND partition = 3" % (ex.group, ex.commands)))
    wait_until(lambda: "executor.journal.fenced" in d.log_tail(400), timeout=30,
               what="the journal fenced")
    wait_until(lambda: int(float(metrics(d.port).get("kasir_worker_fenced_total", "0"))) >= 1,
               timeout=10, what="the batch dropped")
    assert "[3] is owned by another instance" in d.log_tail(400)
    # nothing of the batch was journaled, nothing sent, on any partition
    assert ex.attempts() == [], ex.attempts()
    assert mine(sandbox, ex) == []
    assert int(float(metrics(d.port)["kasir_worker_journal_commits_total"])) == 0
