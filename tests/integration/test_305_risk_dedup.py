"""305: a checkout is decided once. A repeated checkout_id - the same event delivered again
(in the same batch, in a later batch, after a restart) or another payment id for the same
checkout - is not decided again and emits nothing; the key is (partner, checkout) in
PostgreSQL (risk_payments), not only the runtime's message dedup, so another partner may
use the same checkout id. A redelivery does not count twice in the buyer's velocity."""
import copy

from risk_util import T0, Risk, consume, produce, psql_one, risk_daemons  # noqa: F401

RULES = [{"id": "two-per-hour", "type": "velocity", "window": "1h", "max_count": 2}]


def again(line, **value):
    """line as delivered again: the same event, or with some fields changed."""
    out = copy.deepcopy(line)
    out["value"].update(value)
    return out


def count_decided(r, checkout):
    return int(psql_one("SELECT count(*) FROM risk_payments WHERE checkout_id = '%s'" % checkout))


def test_repeated_checkout_decided_once(risk_daemons):
    r = Risk("t305", RULES)
    p1 = r.payment(buyer="b1", at=T0)
    p2 = r.payment(buyer="b2", at=T0)
    co1, co2 = p1["value"]["checkout_id"], p2["value"]["checkout_id"]
    # same batch: the event twice, and another payment id for the same checkout
    other_id = again(p2, payment_id=p2["value"]["payment_id"] + "-x",
                     message_id=p2["value"]["message_id"] + "-x")
    for o in other_id["value"]["orders"]:
        o["order_id"] += "-x"
    produce([p1, p1, p2, other_id])
    d = r.start(risk_daemons)
    got = r.wait_decided(2)
    assert set(got) == {p1["value"]["payment_id"], p2["value"]["payment_id"]}
    cmds = r.commands(2)
    assert sorted(m["value"]["payment_id"] for m in cmds) == sorted(got)

    # a later batch: the same events again, and a third payment id for checkout 1
    third = again(p1, payment_id="pay-third-" + r.name, message_id="msg-third-" + r.name)
    for o in third["value"]["orders"]:
        o["order_id"] += "-third"
    produce([p1, third, other_id, p2])
    # the same checkout id at another partner is another checkout
    elsewhere = again(p1, partner_id=r.other, payment_id="pay-else-" + r.name,
                      message_id="msg-else-" + r.name)
    produce([elsewhere])
    got = r.wait_decided(3)
    assert set(got) == {p1["value"]["payment_id"], p2["value"]["payment_id"],
                        elsewhere["value"]["payment_id"]}
    assert count_decided(r, co1) == 2 and count_decided(r, co2) == 1  # co1: partners A and B
    assert d.term() == 0

    # after a restart (a new process, positions from PostgreSQL): still once
    produce([p1, p2])
    d = r.start(risk_daemons)
    # the buyer's velocity does not count a redelivery: two real payments of b1 in the hour
    # (the first and this one) stay within max_count 2 although p1 was delivered 4 times
    p1b = r.payment(buyer="b1", at=T0 + 60 * 1000000)
    produce([p1, p1b])
    got = r.wait_decided(4)
    assert got[p1b["value"]["payment_id"]][0] == "APPROVE"
    assert len({m["headers"]["kasir.message_id"] for m in r.commands(4)}) == 4
    assert len(consume(r.out, idle_ms=1500)) >= 4
    assert count_decided(r, co1) == 2 and count_decided(r, co2) == 1
    assert d.term() == 0


def test_repeated_checkout_without_history_rules(risk_daemons):
    """Without velocity or new-buyer rules no history is read, so nothing in C spots a
    repeated checkout: the plain insert of the decisions meets the unique violation and the
    batch is written again with the ON CONFLICT form. Still once each, one command each."""
    r = Risk("t305b", [{"id": "blocked", "type": "blocklist", "list": "buyer",
                        "values": ["nobody"]}])
    p1, p2 = r.payment(buyer="b1"), r.payment(buyer="b2")
    other_id = again(p2, payment_id=p2["value"]["payment_id"] + "-x",
                     message_id=p2["value"]["message_id"] + "-x")
    for o in other_id["value"]["orders"]:
        o["order_id"] += "-x"
    produce([p1, p1, p2, other_id])  # the same batch
    d = r.start(risk_daemons)
    got = r.wait_decided(2)
    assert set(got) == {p1["value"]["payment_id"], p2["value"]["payment_id"]}
    assert all(v[0] == "APPROVE" for v in got.values())
    # a later batch: a redelivery beside a new payment, which is decided and emitted
    p3 = r.payment(buyer="b3")
    produce([p1, p3, other_id])
    got = r.wait_decided(3)
    assert set(got) == {p["value"]["payment_id"] for p in (p1, p2, p3)}
    cmds = r.commands(3)
    assert sorted(m["value"]["payment_id"] for m in consume(r.out, idle_ms=1500)) == \
        sorted(p["value"]["payment_id"] for p in (p1, p2, p3))
    assert len(cmds) == 3
    assert count_decided(r, p1["value"]["checkout_id"]) == 1
    assert d.term() == 0
