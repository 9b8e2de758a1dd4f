"""309: what kasir-risk cannot decide goes to the DLQ at once (class invalid, the field
named) without stalling the partition: an order without amount, an unknown currency, an
empty checkout id, a payout to an unknown channel, another schema on the topic; an event time
out of 1970-9999 (occurred_at -2^63 or 2^63-1, a payment's or a payout's: the velocity
windows are counted by subtracting from it, and no ingress stamps such a time)."""
from risk_util import Risk, consume, produce, risk_daemons, wait_until  # noqa: F401


def test_invalid_to_dlq(risk_daemons):
    r = Risk("t309", [], partitions=1)
    good1, good2 = r.payment(buyer="b"), r.payment(buyer="b")
    zero = r.payment(buyer="b", orders=[("s1", 0, "IDR", "QRIS")])
    cur = r.payment(buyer="b", orders=[("s1", 100, "XXX", "QRIS")])
    empty = r.payment(buyer="b")
    empty["value"]["checkout_id"] = ""
    po = r.payout(currency="IDR", amount=-5)
    past = r.payment(buyer="b", at=-(2 ** 63))
    future = r.payment(buyer="b", at=2 ** 63 - 1)
    po_past = r.payout(at=-(2 ** 63))
    demo = {"topic": r.payments, "key": "b", "schema": "kasir.demo.DemoEvent",
            "value": {"message_id": "m-demo-" + r.name, "occurred_at": 1, "event_id": "e",
                      "seq": 1, "account": "a", "amount_minor": 1, "currency": "IDR",
                      "note": None}}
    produce([good1, zero, cur, empty, demo, good2, po, past, future, po_past])
    d = r.start(risk_daemons)
    r.wait_decided(2)
    wait_until(lambda: len(consume(r.payments + ".dlq", idle_ms=500)) >= 6, 20, what="dlq")
    dlq = consume(r.payments + ".dlq", idle_ms=500)
    fields = sorted(m["headers"].get("kasir.error.field", "") for m in dlq)
    assert fields == ["", "checkout_id", "occurred_at", "occurred_at", "orders[0].amount_minor",
                      "orders[0].currency"], dlq
    assert {m["headers"]["kasir.error.class"] for m in dlq} == {"invalid"}
    wait_until(lambda: len(consume(r.payouts + ".dlq", idle_ms=500)) >= 2, 20, what="payout dlq")
    assert sorted(m["headers"]["kasir.error.field"] for m in consume(
        r.payouts + ".dlq", idle_ms=500)) == ["amount_minor", "occurred_at"]
    assert len(r.decisions()) == 2
    assert d.term() == 0
