"""404: kill -9 of the ledger at random points while it posts: after each restart it goes
on from its committed offsets; at the end every outcome is posted exactly once (one entry
per source event, the wallets equal to the sums worked out here), nothing is dead-lettered,
and verify passes."""
import random
import time

from conftest import Daemon
from ledger_util import Ledger, consume, produce, psql_one, verify, wait_until

N = 6000
SELLERS = 50


def test_kill9_posts_exactly_once(daemons):
    L = Ledger("t404", partitions=3)
    L.fee_plan(150)
    rnd = random.Random(404)
    orders = [(L.id("o", i), "s%d" % (i % SELLERS), rnd.randint(1000, 500000)) for i in range(N)]
    L.payments([(L.id("pay", i), [orders[i]]) for i in range(N)])
    lines = []
    expect = {}
    for i, (oid, seller, amt) in enumerate(orders):
        if i % 10 == 9:  # every tenth declined: a status, no entry
            lines.append(L.outcome("CHARGE", "FAILED", amt, order=oid, payment=L.id("pay", i)))
            continue
        fee = amt * 29 // 1000
        lines.append(L.outcome("CHARGE", "SUCCEEDED", amt, fee=fee, order=oid,
                               payment=L.id("pay", i)))
        if i % 7 == 0:  # a duplicate delivery with another message id, later in the stream
            lines.append(L.outcome("CHARGE", "SUCCEEDED", amt, fee=fee, order=oid,
                                   payment=L.id("pay", i), source="WEBHOOK"))
        pfee = min(amt, (amt * 150 + 5000) // 10000)
        expect[seller] = expect.get(seller, 0) + amt - pfee
    produce(lines)
    posted = N - N // 10
    # small batches: on a quiet machine batches of 300 posted the whole run before a second
    # kill could land
    env = L.env(KASIR_INSTANCE_ID=L.name + "-i1", KASIR_WORKER_BATCH_MAX=50)
    d, kills = L.kill9_during(daemons, env, posted, 5, rnd)
    count = L.count
    wait_until(lambda: count() >= posted, timeout=120, what="all posted")
    assert kills >= 2, kills
    time.sleep(1)
    assert count() == posted
    assert psql_one("SELECT count(DISTINCT source_key) FROM ledger_entries WHERE partner_id = '%s'"
                    % L.partner) == str(posted)
    for seller, amt in expect.items():
        assert L.balance("seller_wallet", seller) == amt, seller
    failed = psql_one("SELECT count(*) FROM payment_orders WHERE partner_id = '%s' AND status = 'FAILED'"
                      % L.partner)
    assert failed == str(N // 10)
    assert consume(L.dlq, idle_ms=500) == []
    rc, text = verify()
    assert rc == 0, text
    print("kills=%d" % kills)
    assert d.term() == 0
