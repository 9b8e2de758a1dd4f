"""413: entries the ledger's SQL functions post while no outcome flows (an approved
adjustment, a settlement) are published by kasir-ledger's publisher thread within a second
or two: keyed by the seller's wallet (the settlement, which has no seller, by its PSP
clearing account), under a message id derived from the entry id, each once; the queue is
left empty; SIGTERM stops the daemon cleanly."""
import json
import secrets

from ledger_util import Ledger, consume, psql, psql_one, verify, wait_until
from risk_util import fund_suspense, fund_wallets


def test_published_while_idle(daemons):
    L = Ledger("t413", partitions=1)
    d = daemons("ledger", env=L.env())
    fund_wallets(L.partner, ["s1"], 5000)
    fund_suspense(L.partner, 5000 + 700)  # a credit from suspense needs its balance
    out = json.loads(psql_one(
        "SELECT ledger_adjustment_request('%s', 'key_a', '%s/key_a', NULL, 's1', 'IDR', 700, "
        "'suspense', NULL, 'test')" % (L.partner, L.partner)))
    adj = out["adjustment"]["adjustment_id"]
    dec = json.loads(psql_one("SELECT ledger_adjustment_decide('%s', '%s', true, 'key_b', '%s/key_b', "
                              "'ok')" % (L.partner, adj, L.partner)))
    assert dec["outcome"] == "decided"
    psp = "psp" + secrets.token_hex(3)
    settle = psql_one("SELECT ledger_settle('st_%s', '%s', 'IDR', 1000, 10)" % (L.name, psp))
    ids = {r[0] for r in psql("SELECT entry_id FROM ledger_entries WHERE partner_id = '%s'"
                              % L.partner)} | {settle}
    assert len(ids) == 4  # two fundings, adjustment, settlement

    def published():
        return [m for m in consume(L.out, idle_ms=500) if m["value"]["entry_id"] in ids]
    wait_until(lambda: {m["value"]["entry_id"] for m in published()} == ids, timeout=30,
               what="the idle publisher")
    msgs = published()
    assert len({m["headers"]["kasir.message_id"] for m in msgs}) == 4
    mine = [m for m in msgs if m["value"]["reference"] == "adjustment:" + adj]
    assert len(mine) == 1 and mine[0]["value"]["kind"] == "adjustment", msgs
    assert mine[0]["key"] == "seller_wallet/%s/s1/IDR" % L.partner
    st = [m for m in msgs if m["value"]["entry_id"] == settle][0]
    assert st["key"] == "psp_clearing/%s/IDR" % psp and st["value"]["partner_id"] is None
    assert st["headers"]["kasir.producer"] == "kasir-ledger"
    assert psql_one("SELECT count(*) FROM ledger_unpublished WHERE entry_id IN (%s)"
                    % ",".join(ids)) == "0"
    assert d.term() == 0
    rc, text = verify()
    assert rc == 0, text
