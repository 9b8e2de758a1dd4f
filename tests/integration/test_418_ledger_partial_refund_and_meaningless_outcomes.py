"""418: two holes a hostile review found in the ledger's reading of outcomes (session 18).

- A refund the PSP settles for less than was asked (a partial refund) kept the whole of its
  reservation: refund_requested_minor stayed at the amount asked, so the difference could
  never be refunded through the API. The rest is given back now, by the same trigger that
  gives a failed refund's back, and the refund records what was refunded (GET
  /v1/refunds/{id}: refunded_amount beside the amount asked).
- An outcome whose status means nothing for its kind (a CHARGE PAID_OUT, a REFUND or PAYOUT
  PENDING_CUSTOMER, a PAYOUT REFUNDED, a REFUND PAID_OUT) committed with no effect and no
  trace. It goes to the DLQ now, naming the field."""
from ingress_util import Partner, ingress  # noqa: F401
from ledger_util import Ledger, produce, psql_one, verify, wait_until


def reserved(order):
    return int(psql_one("SELECT refund_requested_minor FROM payment_orders WHERE order_id = '%s'"
                        % order))


def captured(L, daemons):
    """One order of 10,000 for seller s1, captured by a running kasir-ledger: (the daemon,
    an outcome maker of the test's PSP, order, payment)."""
    psp = "sb_" + L.name
    o1, p1 = L.id("o", 1), L.id("pay", 1)
    L.payments([(p1, [(o1, "s1", 10000)])])

    def out(*a, **kw):
        return L.outcome(*a, psp=psp, **kw)

    produce([out("CHARGE", "SUCCEEDED", 10000, order=o1, payment=p1)])
    d = daemons("ledger", env=L.env())
    wait_until(lambda: L.status("payment_orders", "order_id", o1) == "SUCCESS", what="captured")
    return d, out, o1, p1


def test_a_partial_refund_gives_the_rest_of_its_reservation_back(daemons, ingress):
    L = Ledger("t418a", partitions=1)
    P = Partner("t418a-" + L.name)
    L.partner = P.partner_id  # a partner of the ingress's, to read the refunds back through it
    d, out, o1, p1 = captured(L, daemons)
    r1, r2, r3 = L.id("re", 1), L.id("re", 2), L.id("re", 3)
    # r1 asks 4,000 and the PSP refunds 1,500 of it; r2 asks 3,000 and gets all of it
    L.refund_row(r1, p1, o1, 4000)
    L.refund_row(r2, p1, o1, 3000)
    assert reserved(o1) == 7000
    produce([out("REFUND", "REFUNDED", 1500, order=o1, payment=p1, refund=r1),
             out("REFUND", "REFUNDED", 3000, order=o1, payment=p1, refund=r2)])
    wait_until(lambda: L.status("refunds", "refund_id", r2) == "SUCCEEDED", what="r2 posted")
    assert L.status("refunds", "refund_id", r1) == "SUCCEEDED"
    assert psql_one("SELECT refunded_minor FROM refunds WHERE refund_id = '%s'" % r1) == "1500"
    assert psql_one("SELECT refunded_minor FROM refunds WHERE refund_id = '%s'" % r2) == "3000"
    for rid, asked, got in ((r1, "40.00", "15.00"), (r2, "30.00", "30.00")):
        r = ingress.request("GET", "/v1/refunds/" + rid, auth=P.basic())
        assert r.status == 200, r
        assert (r.json()["amount"], r.json()["refunded_amount"], r.json()["status"]) == \
            (asked, got, "SUCCEEDED"), r.json()
    # what was refunded stays reserved, the 2,500 r1 did not get is refundable again
    assert reserved(o1) == 1500 + 3000
    assert L.balance("seller_wallet", "s1") == 10000 - 1500 - 3000
    # so the rest of the capture can be refunded: 5,500, and it is posted
    L.refund_row(r3, p1, o1, 10000 - reserved(o1))
    produce([out("REFUND", "REFUNDED", 5500, order=o1, payment=p1, refund=r3)])
    wait_until(lambda: L.status("refunds", "refund_id", r3) == "SUCCEEDED", what="r3 posted")
    assert reserved(o1) == 10000
    assert L.balance("seller_wallet", "s1") == 0
    assert L.dlq_messages(idle_ms=300) == []
    d.term()
    rc, text = verify()
    assert rc == 0, text


def test_an_outcome_whose_status_means_nothing_for_its_kind_goes_to_the_dlq(daemons):
    L = Ledger("t418b", partitions=1)
    d, out, o1, p1 = captured(L, daemons)
    r1, po1 = L.id("re", 1), L.id("po", 1)
    L.refund_row(r1, p1, o1, 2000)
    L.payout_row(po1, "s1", 1000)
    bad = [("CHARGE", "PAID_OUT", dict(order=o1, payment=p1)),
           ("REFUND", "PENDING_CUSTOMER", dict(order=o1, payment=p1, refund=r1)),
           ("REFUND", "PAID_OUT", dict(order=o1, payment=p1, refund=r1)),
           ("PAYOUT", "PENDING_CUSTOMER", dict(payout=po1)),
           ("PAYOUT", "REFUNDED", dict(payout=po1))]
    produce([out(kind, status, 1000, **ids) for kind, status, ids in bad])
    L.wait_dlq(len(bad), "every meaningless outcome dead-lettered")
    dlq = L.dlq_messages()
    got = sorted((m["headers"].get("kasir.error.field"), m["headers"]["kasir.error.message"])
                 for m in dlq)
    assert got == sorted(("status", "status %s means nothing for a %s outcome" % (status, kind))
                         for kind, status, _ in bad), got
    # nothing moved and nothing changed state
    assert set(L.entries()) == {"capture:" + o1}, L.entries()
    assert L.status("refunds", "refund_id", r1) == "REQUESTED"
    assert L.status("payouts", "payout_id", po1) == "EXECUTING"
    assert L.status("payment_orders", "order_id", o1) == "SUCCESS"
    assert reserved(o1) == 2000
    d.term()
