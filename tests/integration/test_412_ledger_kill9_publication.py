"""412: kill -9 of the ledger at random points (5 to 8 kills, each after some progress, bounded)
during a run that mixes captures (duplicated deliveries among them), payout results and the
publication of entries the ledger's SQL entry points posted (payout holds, taken before the
run and queued in ledger_unpublished). Afterwards: every outcome posted exactly once, every
wallet exact, every queued entry moved to the outbox exactly once (on kasir.ledger.entries
each entry id under one message id, keyed by its seller's wallet), nothing dead-lettered,
and verify passes."""
import os
import random
import time

from conftest import LOGDIR, Daemon  # noqa: F401
from ledger_util import Ledger, consume, produce, psql, psql_one, verify, wait_until
from risk_util import fund_wallets

N = 8000
SELLERS = 10
PAYOUTS = 40
KILLS = 8


def where_are(L, missing):
    """What a failure says: the entries not on the topic, and where rows of the topic are
    (the outbox of which owner, parked with which error), and the daemons' warnings."""
    import glob
    out = ["%d entries not on %s, e.g. %s" % (len(missing), L.out, sorted(missing)[:5])]
    out.append("outbox rows for the topic: %s" % psql(
        "SELECT worker, count(*), min(created_at), max(created_at) FROM kasir_outbox "
        "WHERE topic = '%s' GROUP BY 1" % L.out))
    out.append("parked: %s" % psql(
        "SELECT worker, count(*), min(last_error) FROM kasir_outbox_dead WHERE topic = '%s' "
        "GROUP BY 1" % L.out))
    out.append("queued: %s" % psql("SELECT count(*) FROM ledger_unpublished"))
    for f in sorted(glob.glob(os.path.join(LOGDIR, "ledger-*.log"))):
        with open(f, errors="replace") as fh:
            lines = [l for l in fh if L.name in l or '"level":"info"' not in l]
        if any(L.name in l for l in lines):
            out.append("%s:\n%s" % (f, "".join(l for l in lines[-30:] if '"level":"info"' not in l)))
    return "\n".join(out)


def test_kill9_during_posting_and_publication(daemons):
    L = Ledger("t412", partitions=3)
    L.fee_plan(150)
    rnd = random.Random(412)
    sellers = ["s%d" % i for i in range(SELLERS)]
    fund_wallets(L.partner, sellers, 1000000)
    expect = {s: 1000000 for s in sellers}
    # payout holds taken (as risk does) before the run: queued for publication
    payouts = [(L.id("po", i), sellers[i % SELLERS], rnd.randint(1000, 90000)) for i in range(PAYOUTS)]
    for pid, seller, amt in payouts:
        L.payout_row(pid, seller, amt)
    held = psql("SELECT result FROM ledger_payout_holds(ARRAY[%s])"
                % ",".join("'%s'" % p for p, _, _ in payouts))
    assert [r[0] for r in held] == ["held"] * PAYOUTS
    orders = [(L.id("o", i), sellers[i % SELLERS], rnd.randint(1000, 500000)) for i in range(N)]
    L.payments([(L.id("pay", i), [orders[i]]) for i in range(N)])
    lines, captured = [], 0
    for i, (oid, seller, amt) in enumerate(orders):
        if i % 10 == 9:
            lines.append(L.outcome("CHARGE", "FAILED", amt, order=oid, payment=L.id("pay", i)))
            continue
        lines.append(L.outcome("CHARGE", "SUCCEEDED", amt, order=oid, payment=L.id("pay", i)))
        if i % 5 == 0:  # delivered twice, under another message id
            lines.append(L.outcome("CHARGE", "SUCCEEDED", amt, order=oid, payment=L.id("pay", i),
                                   source="WEBHOOK"))
        captured += 1
        expect[seller] += amt - min(amt, (amt * 150 + 5000) // 10000)
        if i % (N // PAYOUTS) == 0 and i // (N // PAYOUTS) < PAYOUTS:
            pid, pseller, pamt = payouts[i // (N // PAYOUTS)]
            paid = (i // (N // PAYOUTS)) % 3 != 0
            lines.append(L.outcome("PAYOUT", "PAID_OUT" if paid else "FAILED", pamt, payout=pid))
            expect[pseller] -= pamt if paid else 0
    for _, seller, amt in payouts:
        expect[seller] -= 0  # held then paid out or released: accounted above
    produce(lines)
    # partner entries: funding, holds, captures, payout results
    total = SELLERS + PAYOUTS + captured + PAYOUTS
    # small batches: on a quiet machine batches of 100 posted the whole run before the
    # fifth kill could land
    env = L.env(KASIR_INSTANCE_ID=L.name + "-i1", KASIR_WORKER_BATCH_MAX=10)
    d, kills = L.kill9_during(daemons, env, total, KILLS, rnd, pause=0.1)
    count = L.count
    wait_until(lambda: count() >= total, timeout=120, what="all posted")
    assert kills >= 5, kills
    time.sleep(1)
    assert count() == total
    assert psql_one("SELECT count(DISTINCT source_key) FROM ledger_entries WHERE partner_id = '%s'"
                    % L.partner) == str(total)
    for s in sellers:
        assert L.balance("seller_wallet", s) == expect[s], s
        assert L.balance("payout_hold", s) == 0, s
    assert psql("SELECT status, count(*) FROM payouts WHERE partner_id = '%s' GROUP BY 1 ORDER BY 1"
                % L.partner) == [["FAILED", str(PAYOUTS // 3 + 1)], ["PAID_OUT", str(PAYOUTS - PAYOUTS // 3 - 1)]]
    assert consume(L.dlq, idle_ms=500) == []

    # publication: the holds (and the funding entries) left the queue, each entry of the
    # partner is on the topic under exactly one message id, keyed by its seller's wallet
    assert psql_one("SELECT count(*) FROM ledger_unpublished u JOIN ledger_entries e "
                    "USING (entry_id) WHERE e.partner_id = '%s'" % L.partner) == "0"
    ids = {r[0] for r in psql("SELECT entry_id FROM ledger_entries WHERE partner_id = '%s'"
                              % L.partner)}

    def on_topic():
        got = {}
        for m in consume(L.out, idle_ms=1000):
            if m["value"]["partner_id"] == L.partner:
                got.setdefault(m["value"]["entry_id"], set()).add(
                    (m["headers"]["kasir.message_id"], m["key"]))
        return got
    try:
        wait_until(lambda: set(on_topic()) >= ids, timeout=60, what="every entry published")
    except AssertionError:
        raise AssertionError(where_are(L, ids - set(on_topic())))
    got = on_topic()
    assert set(got) == ids
    assert all(len(v) == 1 for v in got.values()), [v for v in got.values() if len(v) > 1][:3]
    holds = {r[0] for r in psql("SELECT entry_id FROM ledger_entries WHERE partner_id = '%s' "
                                "AND kind = 'payout_hold'" % L.partner)}
    for eid in holds:
        (_, key), = got[eid]
        assert key.startswith("seller_wallet/%s/s" % L.partner), key
    rc, text = verify()
    assert rc == 0, text
    print("kills=%d" % kills)
    assert d.term() == 0
