"""406: a batch whose statement the database refuses because of one outcome (here a failed
refund whose reservation is no longer on its order, so giving it back would break the
order's CHECK): the runtime re-runs the batch one message at a time, that outcome goes to
the DLQ with the database's reason, every other outcome of the batch is posted once, the
chain has no gap (its head row survives the rolled-back attempt), and verify passes."""
from ledger_util import Ledger, produce, psql, psql_one, verify


def test_one_refused_outcome_isolated(daemons):
    L = Ledger("t406", partitions=1)
    n = 40
    orders = [(L.id("o", i), "s%d" % (i % 3), 10000 + i) for i in range(n)]
    L.payments([(L.id("pay", i), [orders[i]]) for i in range(n)])
    bad_refund, bad_order = L.id("re", "bad"), orders[0][0]
    L.refund_row(bad_refund, L.id("pay", 0), bad_order, 5000)
    psql("UPDATE payment_orders SET refund_requested_minor = 0 WHERE order_id = '%s'" % bad_order)
    lines = [L.outcome("CHARGE", "SUCCEEDED", a, order=o, payment=L.id("pay", i))
             for i, (o, _, a) in enumerate(orders)]
    lines.insert(n // 2, L.outcome("REFUND", "FAILED", 5000, order=bad_order,
                                   payment=L.id("pay", 0), refund=bad_refund))
    produce(lines)
    d = daemons("ledger", env=L.env(KASIR_WORKER_BATCH_MAX=500))
    L.wait_entries(n)
    L.wait_dlq(1, "the refused outcome in the DLQ")
    dlq = L.dlq_messages()
    assert len(dlq) == 1, dlq
    assert dlq[0]["value"]["refund_id"] == bad_refund
    assert "violates check constraint" in dlq[0]["headers"]["kasir.error.message"]
    assert len(L.entries()) == n
    assert L.status("refunds", "refund_id", bad_refund) == "REQUESTED"
    for s in range(3):
        assert L.balance("seller_wallet", "s%d" % s) == sum(a for _, sel, a in orders if sel == "s%d" % s)
    assert psql_one("SELECT last_seq FROM ledger_chains WHERE chain = '%s:0'" % L.topic) == str(n)
    rc, text = verify()
    assert rc == 0, text
    assert d.term() == 0
