"""601: kill -9 of kasir-executor between the PSP call and its database write, ten times at
random points: the sandbox answers after 300 ms but charges at once, so a kill while calls
are in flight leaves attempts journaled as sent with the money already moved. After each
restart those attempts are resolved by asking the sandbox (the status sequence), never by
charging again: at the end every order is charged exactly once and every attempt is
resolved."""
import random
import time

from executor_util import Exec, assert_no_duplicates, produce, psql_one
from sandbox_util import sandbox  # noqa: F401 (fixture)

N = 300


def test_kill9_between_call_and_write(daemons, sandbox):
    ex = Exec("ex601")
    orders = [ex.order_id(i) for i in range(N)]
    ex.orders([(o, 10000 + i, "CARD") for i, o in enumerate(orders)])
    produce([ex.command(o, 10000 + i) for i, o in enumerate(orders)])
    sandbox.faults(latency_ms=300, error_pct=0, timeout_pct=0, decline_pct=0)
    rnd = random.Random(601)
    env = ex.env(sandbox, KASIR_WORKER_BATCH_MAX="40", KASIR_INSTANCE_ID=ex.name + "-x")
    unresolved_seen = 0
    for k in range(10):
        d = daemons("executor", env=env)
        time.sleep(rnd.uniform(0.2, 1.2))
        d.kill9()
        unresolved_seen = max(unresolved_seen, int(psql_one(
            "SELECT count(*) FROM executor_attempts WHERE state = 'sent' AND order_id LIKE "
            "'ord\\_%s\\_%%'" % ex.tag)))
    # the kills did land between a call and its write: attempts are journaled, unresolved,
    # and the sandbox has charged some of them
    assert unresolved_seen > 0
    charged_before = len([e for e in sandbox.ledger("sandbox", "charge")["entries"]
                          if e["reference"].startswith("ord_%s_" % ex.tag)])
    assert charged_before > 0
    sandbox.faults(latency_ms=0)
    daemons("executor", env=env)
    daemons("ledger", env=ex.ledger_env())
    ex.wait_final(N, timeout=120)
    assert set(ex.statuses().values()) == {"SUCCESS"}
    rows = ex.attempts()
    assert len(rows) == N and all(r[2] == "resolved" and r[3] == "SUCCEEDED" for r in rows), \
        [r for r in rows if r[2] != "resolved"][:5]
    # one attempt per order: nothing was resent after a kill (each was resolved by status)
    assert all(r[1] == "1" for r in rows)
    led = assert_no_duplicates(sandbox)
    mine = [e for e in led["entries"] if e["reference"].startswith("ord_%s_" % ex.tag)]
    assert len(mine) == N and len({e["reference"] for e in mine}) == N
    # the ledger posted each capture once
    assert psql_one("SELECT count(*) FROM ledger_entries WHERE partner_id = '%s' AND kind = "
                    "'capture'" % ex.partner) == str(N)
