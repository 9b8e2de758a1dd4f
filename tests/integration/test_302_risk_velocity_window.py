"""302: a velocity window is (t - window, t] on the events' occurred_at, to the microsecond:
a payment exactly one window after an earlier one no longer counts it, one microsecond
sooner still does. Checked both ways the history is read: earlier payments in the same
batch, and payments decided in an earlier batch (read back from PostgreSQL)."""
from risk_util import T0, Risk, produce, risk_daemons  # noqa: F401

S = 1000000
RULES = [
    {"id": "three-in-10s", "type": "velocity", "window": "10s", "max_count": 2},
    {"id": "idr-in-10s", "type": "velocity", "window": "10s", "currency": "IDR",
     "max_amount": "200.00", "action": "REJECT"},
]


def pay(r, buyer, at, amount=5000):
    return r.payment(buyer=buyer, at=at, orders=[("s1", amount, "IDR", "QRIS")])


def test_window_boundary_in_batch_and_from_history(risk_daemons):
    r = Risk("t302", RULES)
    d = r.start(risk_daemons)
    # in one batch: [T, T+5s, T+10s - 1us] is three in the window; [T, T+5s, T+10s] two
    inside = [pay(r, "in", T0), pay(r, "in", T0 + 5 * S), pay(r, "in", T0 + 10 * S - 1)]
    edge = [pay(r, "edge", T0), pay(r, "edge", T0 + 5 * S), pay(r, "edge", T0 + 10 * S)]
    # the sum: 100.00 + 100.01 in the window is over 200.00; exactly 10 s later it is not
    s_in = [pay(r, "sum-in", T0, 10000), pay(r, "sum-in", T0 + 10 * S - 1, 10001)]
    s_edge = [pay(r, "sum-edge", T0, 10000), pay(r, "sum-edge", T0 + 10 * S, 10001)]
    produce(inside + edge + s_in + s_edge)
    got = r.wait_decided(10)
    dec = lambda line: got[line["value"]["payment_id"]]  # noqa: E731
    assert [dec(x)[0] for x in inside] == ["APPROVE", "APPROVE", "REVIEW"]
    assert dec(inside[2])[1:] == (["VELOCITY_COUNT"], ["three-in-10s"])
    assert [dec(x)[0] for x in edge] == ["APPROVE", "APPROVE", "APPROVE"]
    assert [dec(x)[0] for x in s_in] == ["APPROVE", "REJECT"]
    assert dec(s_in[1])[1:] == (["VELOCITY_AMOUNT"], ["idr-in-10s"])
    assert [dec(x)[0] for x in s_edge] == ["APPROVE", "APPROVE"]

    # from history: the first two are decided (and committed) before the third arrives
    h_in = [pay(r, "h-in", T0), pay(r, "h-in", T0 + 5 * S)]
    h_edge = [pay(r, "h-edge", T0), pay(r, "h-edge", T0 + 5 * S)]
    produce(h_in + h_edge)
    r.wait_decided(14)
    third_in, third_edge = pay(r, "h-in", T0 + 10 * S - 1), pay(r, "h-edge", T0 + 10 * S)
    produce([third_in, third_edge])
    got = r.wait_decided(16)
    assert [got[x["value"]["payment_id"]][0] for x in h_in + h_edge] == ["APPROVE"] * 4
    assert got[third_in["value"]["payment_id"]] == ("REVIEW", ["VELOCITY_COUNT"],
                                                    ["three-in-10s"])
    assert got[third_edge["value"]["payment_id"]][0] == "APPROVE"
    # a payment that arrives late with an older time counts what is inside its own window
    late = pay(r, "h-in", T0 + 4 * S)  # window (T-6s, T+4s]: T only (T+5s is after it)
    produce([late])
    got = r.wait_decided(17)
    assert got[late["value"]["payment_id"]][0] == "APPROVE"
    assert d.term() == 0
