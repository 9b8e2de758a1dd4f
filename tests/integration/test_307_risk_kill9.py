"""307: kill -9 of kasir-risk at random points, several times, while it decides a stream of
payments and payouts: afterwards every one is decided exactly once, with the decision a run
without kills takes (the same stream under another partner and group), every approved order
has exactly one command (one message id, one command id; a duplicate on the wire carries
the same id) and every held one its hold, and nothing is dead-lettered."""
import random
import time

from risk_util import T0, Risk, consume, produce, psql, risk_daemons, wait_until  # noqa: F401

N = 6000
RULES = [
    {"id": "card-idr", "type": "amount_limit", "method": "CARD", "currency": "IDR",
     "max": "2500.00"},
    {"id": "burst", "type": "velocity", "window": "10m", "max_count": 4},
    {"id": "daily", "type": "velocity", "window": "24h", "currency": "IDR",
     "max_amount": "30000.00", "action": "REJECT"},
    {"id": "bl", "type": "blocklist", "list": "buyer", "values": ["b7", "b77"]},
    {"id": "new", "type": "new_buyer_cap", "age": "1d", "currency": "IDR", "max": "2800.00"},
    {"id": "po-review", "type": "amount_limit", "flow": "payout", "currency": "IDR",
     "max": "2000.00", "action": "REVIEW"},
]


def stream():
    """The same payments for both runs: (kind, buyer or seller, at, orders or amount)."""
    rnd = random.Random(307)
    out = []
    for i in range(N):
        buyer = "b%d" % rnd.randrange(300)
        method = rnd.choice(["QRIS", "CARD", "VIRTUAL_ACCOUNT", "EWALLET"])
        orders = [("s%d" % rnd.randrange(20), rnd.randrange(10000, 300000), "IDR", method,
                   "tok_x" if method == "CARD" else None)
                  for _ in range(1 + (i % 7 == 0))]
        out.append(("pay", buyer, T0 + i * 2000000, orders))
        if i % 30 == 0:
            out.append(("payout", "s%d" % rnd.randrange(20), T0 + i * 2000000,
                        rnd.randrange(10000, 400000)))
    return out


def lines_for(r, items):
    lines = []
    for kind, who, at, what in items:
        if kind == "pay":
            lines.append(r.payment(buyer=who, at=at, orders=what))
        else:
            lines.append(r.payout(seller=who, at=at, amount=what))
    return lines


def decisions_in_order(r, lines):
    got = r.decisions()
    return [got[l["value"].get("payment_id") or l["value"]["payout_id"]] for l in lines]


def test_kill9_decides_each_exactly_once(risk_daemons):
    items = stream()
    ref, run = Risk("t307ref", RULES), Risk("t307", RULES)
    ref_lines, lines = lines_for(ref, items), lines_for(run, items)
    produce(ref_lines + lines)
    total = len(lines)

    # the reference: no kills
    ref.start(risk_daemons, KASIR_WORKER_BATCH_MAX=500)
    # the run: static membership (a restart gets its partitions back at once), kills
    # (small batches: many transactions to be killed in the middle of)
    env = dict(KASIR_INSTANCE_ID=run.name + "-i1", KASIR_WORKER_BATCH_MAX=50)
    rnd = random.Random(3070)
    kills = 0
    decided = lambda: int(psql("SELECT count(*) FROM risk_payments WHERE partner_id = '%s'"  # noqa: E731
                               % run.partner)[0][0])
    d = run.start(risk_daemons, **env)
    for _ in range(5):
        start = decided()
        deadline = time.time() + 20
        while decided() == start and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(rnd.uniform(0.0, 0.1))
        if decided() >= N:
            break
        d.kill9()
        kills += 1
        d = run.start(risk_daemons, **env)
    assert kills >= 2
    run.wait_decided(total, timeout=120)
    ref.wait_decided(total, timeout=120)

    # decided once each (the key is the checkout), as without kills
    got, want = decisions_in_order(run, lines), decisions_in_order(ref, ref_lines)
    assert len(got) == total
    assert got == want
    mix = {k: sum(1 for g in got if g[0] == k) for k in ("APPROVE", "REVIEW", "REJECT")}
    assert all(mix.values()), mix

    # one command per approved order and payout, each with one message id and command id
    approved = set()
    for l, g in zip(lines, got):
        if g[0] == "APPROVE":
            v = l["value"]
            approved |= {o["order_id"] for o in v["orders"]} if "orders" in v else {v["payout_id"]}
    wait_until(lambda: len(consume(run.out, idle_ms=1000)) >= len(approved), 60,
               what="every command relayed")
    time.sleep(4)  # let the outbox sweep relay what a kill left unsent
    by_key = {}
    for m in consume(run.out, idle_ms=1500):
        c = m["value"]
        by_key.setdefault(c["order_id"] or c["payout_id"], set()).add(
            (m["headers"]["kasir.message_id"], c["command_id"]))
    assert set(by_key) == approved
    assert all(len(ids) == 1 for ids in by_key.values()), \
        [k for k, ids in by_key.items() if len(ids) > 1][:5]

    # every REVIEW held once, with a command per order ready for its release
    held = {l["value"].get("payment_id") or l["value"]["payout_id"]:
            len(l["value"].get("orders", [1])) for l, g in zip(lines, got) if g[0] == "REVIEW"}
    rows = psql("SELECT h.hold_id, count(c.n) FROM risk_holds h LEFT JOIN risk_hold_commands c "
                "USING (hold_id) WHERE h.partner_id = '%s' GROUP BY 1" % run.partner)
    assert {k: int(n) for k, n in rows} == held
    assert consume(run.payments + ".dlq", idle_ms=500) == []
    assert consume(run.payouts + ".dlq", idle_ms=500) == []
    print("kills=%d mix=%s" % (kills, mix))
    assert d.term() == 0
