"""619: an attempt's verdict is a HOT update (migration 955).

kasir-executor inserts each attempt in its journal and updates it once with its verdict.
Before 955 850's order index had `state` in its predicate, so every verdict was a new row
version with an entry in each of the table's indexes (0 % HOT in the end-to-end bench),
and the rows of one journal commit filled their page with no room for their verdicts.
Here 80 charges go through the executor in batches of 10, as the pipeline's come one after
the other (the first batch's rows fill fresh pages at the table's fillfactor, 70, and only
some of their verdicts fit beside them: ~50 % of a single batch of 60, 39-51 % end to end
at 2,500/s; later small batches share pages whose older versions are pruned by then: 79-80
of 80 here). Once
the executor's backends have ended (their statistics are flushed when they exit), at least
80 % of the verdicts must have been HOT. A refund's look-up of its order's capture, which
the dropped index served, reads executor_attempts_object by the charge's object id."""
from executor_util import Exec, produce, psql, wait_until
from sandbox_util import sandbox  # noqa: F401 (fixture)

N = 80
BATCH = 10


def updates():
    row = psql("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables "
               "WHERE relname = 'executor_attempts'")[0]
    return int(row[0]), int(row[1])


def test_verdicts_are_hot(daemons, sandbox):
    ex = Exec("ex619", partitions=3)
    ex.orders([(ex.order_id(i), 100000 + i, "CARD") for i in range(N)])
    upd0, hot0 = updates()
    d = daemons("executor", env=ex.env(sandbox))
    for b in range(0, N, BATCH):
        produce([ex.command(ex.order_id(i), 100000 + i) for i in range(b, b + BATCH)])
        wait_until(lambda: len([r for r in ex.attempts() if r[2] == "resolved"]) == b + BATCH,
                   timeout=60, what="the attempts of batch %d resolved" % (b // BATCH))
    d.term()
    wait_until(lambda: updates()[0] - upd0 >= N, timeout=30, what="the executor's statistics")
    upd, hot = updates()
    assert hot - hot0 >= 0.8 * (upd - upd0), (upd - upd0, hot - hot0)
    # a refund's look-up of its order's capture (SQL_REFUND's) reads an index (a small
    # table may be cheaper to scan: the plan is asked with scans of the table off)
    plan = " ".join(r[0] for r in psql(
        "SET enable_seqscan = off; EXPLAIN (COSTS OFF) SELECT psp FROM executor_attempts "
        "WHERE object_id = '%s' AND kind = 'CHARGE' AND state = 'resolved'" % ex.order_id(0)))
    assert "executor_attempts_object" in plan, plan
