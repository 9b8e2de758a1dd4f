"""204: refunds (partial, repeated, bounded by the order amount), payouts, settlement files."""
import time
import uuid

from ingress_util import (capture, count_in_kafka, ingress, kafka_headers, new_key,  # noqa: F401
                          now_ms, operator, partners, payment_body, payout_body)


def refund(ingress, p, oid, amount=None, key=None):
    body = {"payment_order_id": oid}
    if amount:
        body.update(amount=amount, currency="IDR")
    return ingress.request("POST", "/v1/refunds", body, auth=p,
                           headers={"Idempotency-Key": key or new_key()})


def test_partial_repeated_refunds_up_to_amount(ingress, partners):
    """Refunds of a captured order, up to what was captured (issue 12: until then this
    test refunded a NOT_STARTED payment, which nobody had paid)."""
    a, _ = partners
    t0 = now_ms()
    pay = ingress.pay(a, payment_body(amount="100000.00"), key=new_key()).json()
    oid = pay["payment_orders"][0]["payment_order_id"]
    r0 = refund(ingress, a, oid, "1000.00")
    assert r0.status == 409 and r0.code == "refund_not_captured", r0  # NOT_STARTED
    capture(oid)
    k = new_key()
    r1 = refund(ingress, a, oid, "30000.00", key=k)
    assert r1.status == 202 and r1.json()["amount"] == "30000.00", r1
    assert refund(ingress, a, oid, "30000.00", key=k).body == r1.body  # replay
    r2 = refund(ingress, a, oid, "60000.00")
    assert r2.status == 202, r2
    r3 = refund(ingress, a, oid, "10000.01")
    assert r3.status == 422 and r3.code == "refund_exceeds_amount", r3
    r4 = refund(ingress, a, oid)  # the rest
    assert r4.status == 202 and r4.json()["amount"] == "10000.00", r4
    r5 = refund(ingress, a, oid)
    assert r5.status == 422 and r5.code == "refund_exceeds_amount"
    g = ingress.request("GET", "/v1/refunds/" + r1.json()["refund_id"], auth=a)
    assert g.status == 200 and g.json()["status"] == "REQUESTED"
    time.sleep(0.3)
    for r in (r1, r2, r4):
        assert count_in_kafka("kasir.refunds.requested", r.json()["refund_id"], t0) == 1
    assert refund(ingress, a, "ord_" + str(uuid.uuid4())).status == 404


def test_payouts(ingress, partners):
    a, _ = partners
    t0 = now_ms()
    r = ingress.request("POST", "/v1/payouts", payout_body(), auth=a, headers={"Idempotency-Key": new_key()})
    assert r.status == 202, r
    g = ingress.request("GET", "/v1/payouts/" + r.json()["payout_id"], auth=a)
    assert g.status == 200 and g.json()["amount"] == "250000.00"
    time.sleep(0.3)
    assert count_in_kafka("kasir.payouts.requested", r.json()["payout_id"], t0) == 1


SANDBOX_CSV = ("psp_reference,amount,fee,currency,status,settled_at,extra\n"
               "{m}-1,150000.00,1500.00,IDR,settled,2026-05-01T10:00:00Z,a\n"
               "{m}-2,20000.00,0,IDR,refunded,2026-05-01T11:00:00Z,\"b, quoted\"\n"
               "{m}-3,5000.50,50.00,IDR,SETTLED,2026-05-01T12:00:00.5Z,c\n")


def test_settlement_upload(ingress, partners):
    """Settlement files are PSP data: an ordinary partner's key cannot upload them (issue 12:
    until then this test uploaded with one); an operator's key can, and every row says
    which key and partner uploaded it."""
    a, _ = partners
    ops = operator()
    t0 = now_ms()
    m = "ref-" + uuid.uuid4().hex[:10]
    data = SANDBOX_CSV.format(m=m).encode()
    r = ingress.request("POST", "/v1/settlements/sandbox", auth=a, raw=data, ctype="text/csv")
    assert r.status == 403 and r.code == "forbidden_scope", r
    r = ingress.request("POST", "/v1/settlements/sandbox", auth=ops, raw=data, ctype="text/csv")
    assert r.status == 202 and r.json()["rows"] == 3, r
    fid = r.json()["file_id"]
    # re-upload: same file id
    r2 = ingress.request("POST", "/v1/settlements/sandbox", auth=ops, raw=data, ctype="text/csv")
    assert r2.json()["file_id"] == fid
    time.sleep(0.5)
    assert count_in_kafka("kasir.settlement.rows", m + "-1", t0) == 2
    rows = kafka_headers("kasir.settlement.rows", m + "-", t0)
    assert len(rows) == 6, rows
    for h in rows:
        assert h["kasir.uploaded_by.key"] == ops.key_id, h
        assert h["kasir.uploaded_by.partner"] == ops.partner_id, h
    # generic layout
    g = ("reference,gross_amount,fee_amount,currency,transaction_status,settlement_time\n"
         "%s-g,100.00,1.00,IDR,success,2026-05-02 08:00:00\n" % m).encode()
    r = ingress.request("POST", "/v1/settlements/xendit", auth=ops, raw=g, ctype="text/csv")
    assert r.status == 202 and r.json()["format"] == "generic", r


def test_invalid_settlement_publishes_nothing(ingress, partners):
    a = operator()
    t0 = now_ms()
    m = "bad-" + uuid.uuid4().hex[:10]
    data = (SANDBOX_CSV.format(m=m) + "%s-4,12x.00,0,IDR,settled,2026-05-01T10:00:00Z,d\n" % m).encode()
    r = ingress.request("POST", "/v1/settlements/sandbox", auth=a, raw=data, ctype="text/csv")
    assert r.status == 422 and r.code == "settlement_invalid", r
    assert "line 5" in r.json()["detail"] and "column amount" in r.json()["detail"], r
    missing = b"psp_reference,amount,fee,currency,status\nx,1.00,0,IDR,settled\n"
    r = ingress.request("POST", "/v1/settlements/sandbox", auth=a, raw=missing, ctype="text/csv")
    assert r.status == 422 and "settled_at" in r.json()["detail"], r
    time.sleep(0.5)
    assert count_in_kafka("kasir.settlement.rows", m, t0) == 0
