"""417: an outcome that contradicts the final state of its refund or payout moves no money:
it goes to the DLQ as conflicting_final, for an operator (a hostile review, session 18).
Before, a refund's success after its failure was posted although the failure had given the
order's reservation back (the partner could then refund the same money again: refunds above
the capture), a payout's PAID_OUT after its failure debited the wallet with no funds check,
and a PAID_OUT after a released hold was dropped without a trace. The same contradiction
inside one batch (a failure, then a success) is caught too; a repeated final outcome stays
a silent duplicate. And the database refuses a refund's move out of SUCCEEDED or FAILED,
whatever client writes it (the state machine of 810, refunds added by 940)."""
import subprocess

from conftest import PG_DSN
from ledger_util import Ledger, produce, psql, psql_one, verify, wait_until


def test_contradicting_final_outcomes_go_to_the_dlq(daemons):
    L = Ledger("t417", partitions=1)
    psp = "sb_" + L.name
    o1, p1 = L.id("o", 1), L.id("pay", 1)
    r1, r2 = L.id("re", 1), L.id("re", 2)
    L.payments([(p1, [(o1, "s1", 100000)])])

    def out(*a, **kw):
        return L.outcome(*a, psp=psp, **kw)

    # captured, then refund r1 of all of it fails
    L.refund_row(r1, p1, o1, 100000)
    produce([out("CHARGE", "SUCCEEDED", 100000, order=o1, payment=p1),
             out("REFUND", "FAILED", 100000, order=o1, payment=p1, refund=r1)])
    d = daemons("ledger", env=L.env())
    wait_until(lambda: L.status("refunds", "refund_id", r1) == "FAILED", what="refund failed")
    assert psql_one("SELECT refund_requested_minor FROM payment_orders WHERE order_id = '%s'"
                    % o1) == "0"  # the reservation is given back
    # the PSP now says r1 succeeded after all; a repeat of its failure is a duplicate
    produce([out("REFUND", "REFUNDED", 100000, order=o1, payment=p1, refund=r1,
                  outcome_id="late_" + r1),
             out("REFUND", "FAILED", 100000, order=o1, payment=p1, refund=r1,
                 outcome_id="again_" + r1)])
    L.wait_dlq(1, "the refund's late success dead-lettered")
    assert "refund:" + r1 not in L.entries(), L.entries()
    assert L.balance("seller_wallet", "s1") == 100000
    # payouts: po1 held then failed (released); po2 failed before any hold (no funds);
    # po3 fails and is paid in one batch
    po1, po2, po3 = L.id("po", 1), L.id("po", 2), L.id("po", 3)
    for po, amt in ((po1, 10000), (po2, 10000), (po3, 10000)):
        L.payout_row(po, "s1", amt)
    assert psql("SELECT result FROM ledger_payout_holds(ARRAY['%s', '%s'])" % (po1, po3)) == \
        [["held"], ["held"]]
    psql("UPDATE payouts SET status = 'FAILED', failure_code = 'INSUFFICIENT_FUNDS' "
         "WHERE payout_id = '%s'" % po2)
    produce([out("PAYOUT", "FAILED", 10000, payout=po1)])
    wait_until(lambda: L.status("payouts", "payout_id", po1) == "FAILED", what="po1 released")
    wallet = L.balance("seller_wallet", "s1")
    assert wallet == 100000 - 10000  # po3's hold
    produce([out("PAYOUT", "PAID_OUT", 10000, payout=po1, outcome_id="late_" + po1),
             out("PAYOUT", "PAID_OUT", 10000, payout=po2, outcome_id="late_" + po2),
             out("PAYOUT", "FAILED", 10000, payout=po3),
             out("PAYOUT", "PAID_OUT", 10000, payout=po3, outcome_id="late_" + po3)])
    L.wait_dlq(4, "four outcomes dead-lettered")
    dlq = L.dlq_messages()
    reasons = sorted(m["headers"]["kasir.error.message"] for m in dlq)
    assert len(dlq) == 4, reasons
    assert all(x.startswith("conflicting_final: ") for x in reasons), reasons
    assert sum(r1 in x for x in reasons) == 1 and sum(po1 in x for x in reasons) == 1
    assert sum(po2 in x for x in reasons) == 1 and sum(po3 in x for x in reasons) == 1
    # no money moved for any of them
    e = L.entries()
    assert "refund:" + r1 not in e, e
    assert e.get("payout_result:" + po1) == "payout_release"
    assert e.get("payout_result:" + po3) == "payout_release"
    assert "payout_result:" + po2 not in e, e
    assert L.balance("seller_wallet", "s1") == 100000
    assert L.balance("payout_hold", "s1") == 0
    assert L.status("refunds", "refund_id", r1) == "FAILED"
    for po in (po1, po2, po3):
        assert L.status("payouts", "payout_id", po) == "FAILED", po
    # so a second refund of the whole capture is the only one posted
    L.refund_row(r2, p1, o1, 100000)
    produce([out("REFUND", "REFUNDED", 100000, order=o1, payment=p1, refund=r2)])
    wait_until(lambda: L.status("refunds", "refund_id", r2) == "SUCCEEDED", what="r2 posted")
    assert L.balance("seller_wallet", "s1") == 0
    d.term()
    rc, text = verify()
    assert rc == 0, text
    # the database keeps both refunds where they ended
    for rid, to in ((r1, "SUCCEEDED"), (r2, "FAILED"), (r2, "REQUESTED")):
        p = subprocess.run(["psql", PG_DSN, "-v", "ON_ERROR_STOP=1", "-qtAX", "-c",
                            "UPDATE refunds SET status = '%s' WHERE refund_id = '%s'" % (to, rid)],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode != 0 and "cannot move refund from" in p.stderr, (rid, to, p.stderr)
    assert L.status("refunds", "refund_id", r1) == "FAILED"
    assert L.status("refunds", "refund_id", r2) == "SUCCEEDED"


def test_amounts_and_links_the_psp_reports_are_checked(daemons):
    """The ledger compared a reported amount only for payouts: a refund posted above its
    reservation (refunds beyond the capture), a refund naming another order (another
    seller's wallet debited) and a capture above the order's amount were all posted. They
    go to the DLQ now, naming the field; a refund of less than asked and a capture of less
    than ordered (a partial one) are posted as reported."""
    L = Ledger("t417b", partitions=1)
    psp = "sb_" + L.name
    o1, o2, p1, p2 = L.id("o", 1), L.id("o", 2), L.id("pay", 1), L.id("pay", 2)
    o3, p3 = L.id("o", 3), L.id("pay", 3)
    o4, p4 = L.id("o", 4), L.id("pay", 4)
    r1, r2, r3 = L.id("re", 1), L.id("re", 2), L.id("re", 3)
    L.payments([(p1, [(o1, "s1", 10000)]), (p2, [(o2, "s2", 10000)]), (p3, [(o3, "s3", 10000)]),
                (p4, [(o4, "s4", 10000)])])

    def out(*a, **kw):
        return L.outcome(*a, psp=psp, **kw)

    produce([out("CHARGE", "SUCCEEDED", 10000, order=o1, payment=p1),
             out("CHARGE", "SUCCEEDED", 10000, order=o2, payment=p2),
             out("CHARGE", "SUCCEEDED", 10001, order=o3, payment=p3),  # above the order
             out("CHARGE", "SUCCEEDED", 9000, order=o4, payment=p4)])  # partial: posted
    d = daemons("ledger", env=L.env())
    L.wait_entries(3)
    L.refund_row(r1, p1, o1, 4000)
    L.refund_row(r2, p1, o1, 3000)
    L.refund_row(r3, p1, o1, 2000)
    produce([out("REFUND", "REFUNDED", 4001, order=o1, payment=p1, refund=r1),   # above
             out("REFUND", "REFUNDED", 3000, order=o2, payment=p2, refund=r2),   # other order
             out("REFUND", "REFUNDED", 1500, order=o1, payment=p1, refund=r3)])  # less: posted
    L.wait_dlq(3, "three outcomes dead-lettered")
    reasons = sorted(m["headers"]["kasir.error.message"] for m in L.dlq_messages())
    assert reasons == sorted(["amount_minor is above the order's 10000",
                              "amount_minor is above the refund's 4000",
                              "order_id differs from the refund's " + o1]), reasons
    e = L.wait_entries(4)
    assert set(e) == {"capture:" + o1, "capture:" + o2, "capture:" + o4, "refund:" + r3}, e
    assert L.balance("seller_wallet", "s4") == 9000
    assert L.balance("seller_wallet", "s1") == 10000 - 1500
    assert L.balance("seller_wallet", "s2") == 10000
    assert L.balance("seller_wallet", "s3") == 0
    d.term()
    rc, text = verify()
    assert rc == 0, text


def test_in_one_batch_the_first_valid_final_outcome_decides(daemons):
    """Within one batch a refund's state is the first final outcome before this one that
    passes the ledger's own checks (review): a repeated success after a dead-lettered
    failure is a duplicate, not a conflict with the failure; and a failure dead-lettered for
    its currency does not make the real success that follows a conflict (its money would
    have gone unbooked)."""
    L = Ledger("t417c", partitions=1)
    psp = "sb_" + L.name
    o1, p1 = L.id("o", 1), L.id("pay", 1)
    r1, r2 = L.id("re", 1), L.id("re", 2)
    L.payments([(p1, [(o1, "s1", 10000)])])
    L.refund_row(r1, p1, o1, 3000)
    L.refund_row(r2, p1, o1, 2000)

    def out(*a, **kw):
        return L.outcome(*a, psp=psp, **kw)

    bad_cur = out("REFUND", "FAILED", 2000, order=o1, payment=p1, refund=r2)
    bad_cur["value"]["currency"] = "USD"
    produce([out("CHARGE", "SUCCEEDED", 10000, order=o1, payment=p1),
             out("REFUND", "REFUNDED", 3000, order=o1, payment=p1, refund=r1),
             out("REFUND", "FAILED", 3000, order=o1, payment=p1, refund=r1),
             out("REFUND", "REFUNDED", 3000, order=o1, payment=p1, refund=r1,
                 outcome_id="again_" + r1),
             bad_cur,
             out("REFUND", "REFUNDED", 2000, order=o1, payment=p1, refund=r2)])
    d = daemons("ledger", env=L.env())
    e = L.wait_entries(3)
    assert set(e) == {"capture:" + o1, "refund:" + r1, "refund:" + r2}, e
    L.wait_dlq(2, "two dead-lettered")
    reasons = sorted(m["headers"]["kasir.error.message"] for m in L.dlq_messages())
    assert len(reasons) == 2, reasons
    assert reasons[0] == ("conflicting_final: refund %s is SUCCEEDED, this outcome says FAILED"
                          % r1), reasons
    assert reasons[1].startswith("currency differs"), reasons
    assert L.status("refunds", "refund_id", r1) == "SUCCEEDED"
    wait_until(lambda: L.status("refunds", "refund_id", r2) == "SUCCEEDED", what="r2 succeeded")
    assert L.balance("seller_wallet", "s1") == 10000 - 3000 - 2000
    d.term()
