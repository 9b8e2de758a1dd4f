"""618: kasir-executor journals a batch's new attempts in one fenced commit, whatever the
number of input partitions the batch spans, and a batch fenced on any one of them sends
nothing.

The journal is committed before any PSP call (an attempt is on record before money can
move). It was one commit per input partition: a batch of commands from six partitions took
six transactions and six WAL flushes one after the other before its last call left, most of
the executor's batch time end to end (docs/BENCHMARKS.md, session 31). And a batch fenced on
its fourth partition (another instance owns it now) had sent the calls of the first three
before the fence was seen, for a batch the runtime then drops."""
import os
import signal

from executor_util import Exec, assert_no_duplicates, metrics, produce, psql, psql_one, wait_until
from sandbox_util import sandbox  # noqa: F401 (fixture)

N = 60


def orders(ex):
    specs = [(ex.order_id(i), 100000 + i, "CARD") for i in range(N)]
    ex.orders(specs)
    return specs


def test_one_journal_commit_per_batch(daemons, sandbox):
    ex = Exec("ex618a", partitions=6)
    specs = orders(ex)
    produce([ex.command(o, a) for o, a, _ in specs])
    d = daemons("executor", env=ex.env(sandbox))
    wait_until(lambda: len([r for r in ex.attempts() if r[2] == "resolved"]) == N, timeout=60,
               what="every attempt resolved")
    m = metrics(d.port)
    batches = int(float(m["kasir_worker_batches_total"]))
    journals = int(float(m["kasir_worker_journal_commits_total"]))
    # the commands were all on the topic before the executor started: its batches span
    # several partitions (checked, so the test cannot pass on one-partition batches)
    assert batches < 6, batches
    assert 1 <= journals <= batches, (journals, batches)
    led = assert_no_duplicates(sandbox)
    mine = sorted(e["reference"] for e in led["entries"] if e.get("reference", "").startswith(
        "ord_" + ex.tag + "_"))
    assert mine == sorted(o for o, _, _ in specs), mine


def test_fenced_partition_sends_nothing_of_the_batch(daemons, sandbox):
    ex = Exec("ex618b", partitions=6)
    specs = orders(ex)
    d = daemons("executor", env=ex.env(sandbox))
    # assigned and positioned: a row per input partition at this instance's epoch
    wait_until(lambda: psql_one("SELECT count(*) FROM kasir_offsets WHERE group_id = '%s' "
                                "AND topic = '%s'" % (ex.group, ex.commands)) == "6",
               timeout=30, what="the executor's positions")
    # every command on the topic while the executor cannot fetch, so that its next fetch
    # brings all six partitions and one batch spans them; meanwhile another instance takes
    # partition 3 (every assignment bumps the epoch)
    os.kill(d.proc.pid, signal.SIGSTOP)
    try:
        produce([ex.command(o, a) for o, a, _ in specs])
        psql("UPDATE kasir_offsets SET epoch = epoch + 1 WHERE group_id = '%s' AND topic = '%s' "
             "AND partition = 3" % (ex.group, ex.commands))
    finally:
        os.kill(d.proc.pid, signal.SIGCONT)
    wait_until(lambda: "executor.journal.fenced" in d.log_tail(400), timeout=30,
               what="the journal fenced")
    wait_until(lambda: int(float(metrics(d.port).get("kasir_worker_fenced_total", "0"))) >= 1,
               timeout=10, what="the batch dropped")
    # nothing of the batch was journaled, nothing sent, on any partition
    assert ex.attempts() == [], ex.attempts()
    led = sandbox.ledger()
    mine = [e for e in led["entries"] if e.get("reference", "").startswith("ord_" + ex.tag + "_")]
    assert mine == [], mine
    assert metrics(d.port).get("kasir_worker_journal_commits_total") in ("0", "0.0", None)
