"""607: Stripe through the sandbox's Stripe API under 30 % 5xx and 20 % timeouts after the
charge. An attempt whose answer never came has no PaymentIntent id to retrieve; the adapter
learns its outcome the way Stripe documents, by sending the same request with the same
Idempotency-Key (the saved answer is replayed). Every order ends SUCCESS (or FAILED for a
declined card), with exactly one PaymentIntent charged per order."""
from executor_util import Exec, assert_no_duplicates, consume, metrics, produce
from sandbox_util import sandbox  # noqa: F401 (fixture)

N = 60


def test_stripe_unknown_outcomes_resolved_by_replay(daemons, sandbox):
    ex = Exec("ex607")
    orders = [ex.order_id(i) for i in range(N)]
    ex.orders([(o, 5000 + i, "CARD") for i, o in enumerate(orders)])
    sandbox.faults(error_pct=30, timeout_pct=20, decline_pct=0, hold_ms=0, seed=607)
    produce([ex.command(o, 5000 + i, psp="stripe",
                        token="pm_card_chargeDeclined" if i % 10 == 0 else "pm_card_visa")
             for i, o in enumerate(orders)])
    d = daemons("executor", env=ex.env(sandbox, KASIR_WORKER_RETRY_MAX_ATTEMPTS="12",
                                       KASIR_EXECUTOR_BREAKER_FAILURE_PCT="90"))
    daemons("ledger", env=ex.ledger_env())

    def dead():
        return len(consume(ex.commands + ".dlq", idle_ms=300))
    ex.wait_final(N, timeout=120, also=dead)
    m = metrics(d.port)
    assert int(m.get('kasir_executor_calls_total{psp="stripe",verdict="unknown"}', "0")) > 0, m
    st = ex.statuses()
    dead_ids = {x["value"]["order_id"] for x in consume(ex.commands + ".dlq", idle_ms=500)}
    for i, o in enumerate(orders):
        want = "FAILED" if i % 10 == 0 else "SUCCESS"
        assert st[o] == want or o in dead_ids, (o, st[o])
    assert len(dead_ids) <= 2, dead_ids
    led = assert_no_duplicates(sandbox)
    charged = [e["reference"] for e in led["entries"] if e["psp"] == "stripe" and
               e["kind"] == "charge" and e["reference"] in st]
    assert len(charged) == len(set(charged))
    assert set(charged) >= {o for i, o in enumerate(orders) if i % 10 and o not in dead_ids}
    # the PaymentIntent the outcome names is the one that was charged
    pis = {e["reference"]: e["object_id"] for e in led["entries"] if e["psp"] == "stripe"}
    for o in ex.outcomes_seen():
        if o["status"] == "SUCCEEDED":
            assert o["psp_reference"] == pis[o["order_id"]], o
