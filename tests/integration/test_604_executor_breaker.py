"""604: the circuit breaker per PSP and method, and failover. Two sandboxes: A answers as
the "sandbox" PSP, B as Stripe; card charges fail over sandbox -> stripe
(executor.failover CARD:sandbox>stripe).
  1. A drops every call after charging (timeouts): the circuit of sandbox/CARD opens, and
     those attempts, whose outcome is unknown, are never failed over: they wait for A, and
     once A answers again they are resolved there (charged once, at A, never at B).
  2. A answers 503 to everything (before charging): the circuit opens, the charges go to B.
  3. A is healthy again: after the open period the half-open probes succeed, the circuit
     closes, and charges go to A again.
State and transitions are on /metrics."""
import time

from executor_util import Exec, assert_no_duplicates, metrics, produce, psql, wait_until
from sandbox_util import start_sandbox, stop_sandbox


def breaker(port, to=None):
    m = metrics(port)
    if to is None:
        return int(m.get('kasir_executor_breaker_state{psp="sandbox",method="CARD"}', "-1"))
    return int(m.get('kasir_executor_breaker_transitions_total{psp="sandbox",method="CARD",'
                     'to="%s"}' % to, "0"))


def where(ex, orders):
    """{order: psp of its SUCCEEDED attempt}"""
    rows = psql("SELECT order_id, psp FROM executor_attempts WHERE verdict = 'SUCCEEDED' AND "
                "order_id IN (%s)" % ",".join("'%s'" % o for o in orders))
    return dict(rows)


def test_breaker_opens_fails_over_closes(daemons):
    a, b = start_sandbox(), start_sandbox()
    try:
        ex = Exec("ex604")
        n1, n2, n3 = 12, 20, 10
        orders = [ex.order_id(i) for i in range(n1 + n2 + n3)]
        ex.orders([(o, 20000 + i, "CARD") for i, o in enumerate(orders)])
        env = ex.env(a, KASIR_EXECUTOR_STRIPE_URL=b.url,
                     KASIR_EXECUTOR_STRIPE_SECRET=b.keys["stripe"],
                     KASIR_EXECUTOR_FAILOVER="CARD:sandbox>stripe",
                     KASIR_EXECUTOR_BREAKER_WINDOW="10", KASIR_EXECUTOR_BREAKER_MIN_CALLS="8",
                     KASIR_EXECUTOR_BREAKER_FAILURE_PCT="50", KASIR_EXECUTOR_BREAKER_OPEN="2s",
                     KASIR_EXECUTOR_BREAKER_PROBES="2", KASIR_WORKER_RETRY_MAX_ATTEMPTS="30")
        d = daemons("executor", env=env)
        daemons("ledger", env=ex.ledger_env())
        assert breaker(d.port) in (-1, 0)

        # 1. timeouts after the charge: unknown outcomes, the circuit opens, no failover
        first = orders[:n1]
        a.faults(timeout_pct=100, error_pct=0, hold_ms=0)
        produce([ex.command(o, 20000 + i) for i, o in enumerate(first)])
        wait_until(lambda: breaker(d.port) == 1, timeout=30, what="circuit open")
        time.sleep(3)  # retries come and go while A still drops everything
        assert where(ex, first) == {}
        assert [e for e in b.ledger()["entries"] if e["reference"] in first] == []
        a.faults(timeout_pct=0)
        ex.wait_final(n1, timeout=60)
        assert set(where(ex, first).values()) == {"sandbox"}, where(ex, first)
        charged_a = [e["reference"] for e in a.ledger("sandbox", "charge")["entries"]]
        assert sorted(charged_a) == sorted(first)  # once each, at A
        assert [e for e in b.ledger()["entries"] if e["reference"] in first] == []
        wait_until(lambda: breaker(d.port) == 0, timeout=30, what="circuit closed")

        # 2. A refuses everything before running it: the circuit opens, charges fail over
        second = orders[n1:n1 + n2]
        a.faults(error_pct=100)
        opened = breaker(d.port, "open")
        produce([ex.command(o, 20000 + n1 + i) for i, o in enumerate(second)])
        ex.wait_final(n1 + n2, timeout=60)
        assert breaker(d.port, "open") > opened
        placed = where(ex, second)
        assert set(placed) == set(second) and "stripe" in placed.values(), placed
        for o, psp in placed.items():
            # an order failed over had only attempts A demonstrably did not run
            states = [r[0] for r in psql("SELECT state FROM executor_attempts WHERE order_id = "
                                         "'%s' AND psp = 'sandbox'" % o)]
            assert psp == "sandbox" or all(s == "absent" for s in states), (o, states)
        outs = {o["order_id"]: o for o in ex.outcomes_seen() if o["order_id"] in second}
        assert all(outs[o]["psp"] == placed[o] for o in second)
        assert all(outs[o]["psp_reference"].startswith("pi_") for o in second if placed[o] == "stripe")

        # 3. A heals: half-open probes succeed, the circuit closes, A takes charges again
        a.faults(error_pct=0)
        closed = breaker(d.port, "closed")
        time.sleep(2.5)
        third = orders[n1 + n2:]
        for k, o in enumerate(third):
            produce([ex.command(o, 20000 + n1 + n2 + k)])
            time.sleep(0.3)
        ex.wait_final(len(orders), timeout=60)
        assert breaker(d.port, "half_open") >= 1 and breaker(d.port, "closed") > closed
        assert breaker(d.port) == 0
        assert list(where(ex, third[-3:]).values()) == ["sandbox"] * 3
        assert set(ex.statuses().values()) == {"SUCCESS"}
        assert_no_duplicates(a)
        assert_no_duplicates(b)
        for o in orders:  # each order charged at exactly one PSP
            n = sum(1 for sb in (a, b) for e in sb.ledger()["entries"]
                    if e["kind"] == "charge" and e["reference"] == o)
            assert n == 1, o
    finally:
        stop_sandbox(a)
        stop_sandbox(b)
