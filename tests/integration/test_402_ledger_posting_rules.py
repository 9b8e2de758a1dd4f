"""402: every posting rule of docs/LEDGER.md through the real daemon, with the balances
worked out by hand: a capture with a PSP fee and a platform fee, a partly failed payment,
a late success after an expiry (to suspense), a duplicate outcome, a partial refund, a
failed refund (its reservation given back), a chargeback, payout holds (one refused for
insufficient funds), a payout paid out and one released, a settlement; the statuses of
payments, orders, refunds and payouts; kasir.ledger.entries keyed by the seller's wallet;
an outcome for an unknown order dead-lettered; verify passes."""
from conftest import Daemon
from ledger_util import Ledger, consume, produce, psql, psql_one, verify, wait_until


def test_posting_rules(daemons):
    L = Ledger("t402", partitions=1)
    psp = "sb_" + L.name
    L.fee_plan(200)  # 2 % platform fee
    o1, o2, o3 = L.id("o", 1), L.id("o", 2), L.id("o", 3)
    o4 = L.id("o", 4)
    p1, p2, p3 = L.id("pay", 1), L.id("pay", 2), L.id("pay", 3)
    r1, r2 = L.id("re", 1), L.id("re", 2)
    L.payments([(p1, [(o1, "s1", 100000), (o2, "s2", 50000)]), (p2, [(o3, "s1", 20000)]),
                (p3, [(o4, "s3", 5000)])])
    L.refund_row(r1, p1, o1, 30000)
    L.refund_row(r2, p1, o1, 70000)

    def out(*a, **kw):
        return L.outcome(*a, psp=psp, **kw)

    produce([
        out("CHARGE", "SUCCEEDED", 100000, fee=2900, order=o1, payment=p1),
        # pending then expired in one batch: the final state wins, no next_action kept
        out("CHARGE", "PENDING_CUSTOMER", 50000, order=o2, payment=p1,
            next_action={"va_number": "8808123", "expires_at": "2026-12-02T00:00:00Z"}),
        out("CHARGE", "EXPIRED", 50000, order=o2, payment=p1),
        out("CHARGE", "SUCCEEDED", 50000, fee=1000, order=o2, payment=p1),  # late
        # the same success again, as a webhook would report it: another message id
        out("CHARGE", "SUCCEEDED", 100000, fee=2900, order=o1, payment=p1, source="WEBHOOK"),
        out("REFUND", "SUCCEEDED", 30000, order=o1, payment=p1, refund=r1),
        out("REFUND", "FAILED", 70000, order=o1, payment=p1, refund=r2),
        out("CHARGE", "SUCCEEDED", 20000, order=o3, payment=p2),
        out("CHARGE", "REFUNDED", 20000, fee=1500, order=o3, payment=p2),  # chargeback
        out("CHARGE", "SUCCEEDED", 100, order=L.id("o", "unknown"), payment=p2),
        out("CHARGE", "PENDING_CUSTOMER", 5000, order=o4, payment=p3,
            next_action={"va_number": "8808999", "expires_at": "2026-12-02T00:00:00Z"}),
    ])
    d = daemons("ledger", env=L.env())
    e = L.wait_entries(5)
    assert e == {"capture:" + o1: "capture", "capture:" + o2: "late_capture",
                 "refund:" + r1: "refund", "capture:" + o3: "capture",
                 "chargeback:out_CHARGE_REFUNDED_" + o3: "chargeback"}, e
    wait_until(lambda: L.status("refunds", "refund_id", r2) == "FAILED", what="refund 2 failed")
    assert L.balance("seller_wallet", "s1") == 98000 - 30000 + 19600 - 20000
    assert L.balance("seller_wallet", "s2") == 0
    assert L.balance("suspense") == 50000

    # statuses: o2 expired then paid late stays EXPIRED (its money sits in suspense), so the
    # payment of o1 + o2 is partly failed: FAILED, with o1 captured and refundable
    rows = dict((r[0], r[1:]) for r in psql(
        "SELECT order_id, status, captured_minor, refund_requested_minor, next_action->>'va_number' "
        "FROM payment_orders WHERE payment_id IN ('%s', '%s', '%s')" % (p1, p2, p3)))
    assert rows[o1] == ["SUCCESS", "100000", "30000", ""]
    assert rows[o2] == ["EXPIRED", "0", "0", ""]
    assert rows[o4] == ["PENDING_CUSTOMER", "0", "0", "8808999"]
    assert L.status("payments", "payment_id", p3) == "EXECUTING"
    assert rows[o3][0] == "SUCCESS"
    assert L.status("payments", "payment_id", p1) == "FAILED"
    assert L.status("payments", "payment_id", p2) == "SUCCESS"
    assert L.status("refunds", "refund_id", r1) == "SUCCEEDED"

    # payouts: held from the wallet when approved (here: by hand, as risk will), refused
    # above the available balance
    po1, po2, po3 = L.id("po", 1), L.id("po", 2), L.id("po", 3)
    for po, amt in ((po1, 100000), (po2, 50000), (po3, 10000)):
        L.payout_row(po, "s1", amt)
    held = dict((r[0], r[1:]) for r in psql(
        "SELECT * FROM ledger_payout_holds(ARRAY['%s', '%s', '%s'])" % (po1, po2, po3)))
    assert held[po1] == ["insufficient_funds", "67600"]
    assert held[po2][0] == "held" and held[po3][0] == "held"
    assert psql("SELECT result FROM ledger_payout_holds(ARRAY['%s'])" % po2) == [["already_held"]]
    assert L.balance("seller_wallet", "s1") == 7600
    assert L.balance("payout_hold", "s1") == 60000
    produce([out("PAYOUT", "PAID_OUT", 50000, fee=500, payout=po2),
             out("PAYOUT", "FAILED", 10000, payout=po3),
             out("PAYOUT", "PAID_OUT", 50000, fee=500, payout=po2)])  # a duplicate
    wait_until(lambda: L.status("payouts", "payout_id", po3) == "FAILED", what="payout released")
    assert L.status("payouts", "payout_id", po2) == "PAID_OUT"
    assert L.balance("seller_wallet", "s1") == 17600
    assert L.balance("payout_hold", "s1") == 0
    assert psql_one("SELECT ledger_settle('st_%s', '%s', 'IDR', 60000)" % (L.name, psp)) != ""
    assert psql_one("SELECT ledger_settle('st_%s', '%s', 'IDR', 60000) IS NULL" % (L.name, psp)) == "t"
    clearing = 97100 + 49000 - 30000 + 20000 - 21500 - 50500 - 60000
    assert L.balance("psp_clearing", psp=psp) == clearing
    assert L.balance("psp_fee_expense", psp=psp) == 2900 + 1000 + 1500 + 500

    # the unknown order went to the DLQ with the reason; nothing else did (the DLQ copy is
    # relayed after its batch's commit, into a topic this test made a moment before the
    # daemon started: waited for, as the checks above are)
    L.wait_dlq(1, "the unknown order in the DLQ")
    dlq = L.dlq_messages()
    assert len(dlq) == 1 and "unknown order" in dlq[0]["headers"]["kasir.error.message"], dlq
    # one LedgerEntry per entry posted by the daemon, keyed by the wallet of the seller it
    # is about (the late capture too, though it credits suspense), balanced
    # (the topic also carries the entries of the ledger's SQL entry points, published by
    # the daemon's batches: the two payout holds here, and whatever else was queued)
    sql_kinds = ("payout_hold", "settlement", "adjustment")
    wait_until(lambda: len({m["value"]["entry_id"] for m in consume(L.out, idle_ms=500)
                            if m["value"]["kind"] not in sql_kinds}) >= 7,
               what="entries on the topic")
    every = consume(L.out, idle_ms=500)
    msgs = {m["value"]["entry_id"]: m for m in every if m["value"]["kind"] not in sql_kinds}
    assert len(msgs) == 7
    holds = [m for m in every if m["value"]["kind"] == "payout_hold"
             and m["value"]["journal_id"] in (po2, po3)]
    assert len(holds) == 2, holds
    for m in holds:
        assert m["key"] == "seller_wallet/%s/s1/IDR" % L.partner, m
        assert m["value"]["partner_id"] == L.partner
    # a hold is published before the payout's result, in the wallet's partition
    order = [m["value"]["kind"] for m in every if m["value"]["journal_id"] == po2]
    assert order == ["payout_hold", "payout"], order
    for m in msgs.values():
        v = m["value"]
        dr = sum(p["amount_minor"] for p in v["postings"] if p["direction"] == "DEBIT")
        cr = sum(p["amount_minor"] for p in v["postings"] if p["direction"] == "CREDIT")
        assert dr == cr and dr > 0
        seller = "s2" if v["kind"] == "late_capture" else "s1"
        assert m["key"] == "seller_wallet/%s/%s/IDR" % (L.partner, seller), m
        assert len(v["hash"]) == 64 and len(v["prev_hash"]) == 64
    rc, text = verify()
    assert rc == 0, text
    assert d.term() == 0


def test_platform_fee_of_a_large_capture(daemons):
    """The platform fee was amount * bps / 10000 in bigint: for amounts the ledger takes (up
    to 1e15 minor units) at fees from 92.2 % the product overflowed, the statement failed
    and a valid capture went to the DLQ. It is computed without the product now, to the
    same rounding (half up)."""
    L = Ledger("t402b", partitions=1)
    bps = 9999
    L.fee_plan(bps)
    o1, p1 = L.id("o", 1), L.id("pay", 1)
    o2, p2 = L.id("o", 2), L.id("pay", 2)
    big = 10 ** 15 - 1  # the largest amount an outcome may carry
    L.payments([(p1, [(o1, "s1", big)]), (p2, [(o2, "s2", 3)])])
    produce([L.outcome("CHARGE", "SUCCEEDED", big, order=o1, payment=p1),
             L.outcome("CHARGE", "SUCCEEDED", 3, order=o2, payment=p2)])
    d = daemons("ledger", env=L.env())
    L.wait_entries(2)
    assert L.balance("seller_wallet", "s1") == big - (big * bps + 5000) // 10000
    assert L.balance("seller_wallet", "s2") == 3 - (3 * bps + 5000) // 10000
    assert L.dlq_messages(idle_ms=300) == []
    d.term()
