"""407: a payout is funded by the ledger when kasir-risk approves it, in the same
transaction: the seller's funds move to its payout hold, and a payout larger than the
available balance is FAILED (INSUFFICIENT_FUNDS) with no command for any PSP. The same for
a held payout an admin approves. The hold entries are in the ledger, verify passes."""
import json

from ledger_util import verify
from risk_util import (Risk, consume, fund_wallets, holds_cli, produce, psql, psql_one,  # noqa: F401
                       risk_daemons, status, wait_until)

RULES = [{"id": "review-payout", "type": "amount_limit", "flow": "payout", "currency": "IDR",
          "max": "5000.00", "action": "REVIEW"}]


def wallet(r, typ, seller):
    return int(psql_one("SELECT coalesce(sum(balance_minor), 0) FROM ledger_account_balances "
                        "WHERE account = ledger_account_code('%s', '%s', '%s', NULL, 'IDR')"
                        % (typ, r.partner, seller)))


def test_payout_above_balance_refused_before_psp(risk_daemons):
    r = Risk("t407", RULES)
    fund_wallets(r.partner, ["rich"], 100000)
    ids = ["pyo_%s_%d" % (r.name, k) for k in range(1, 6)]
    # in one batch, funded in id order: 60000 held, 50000 refused (40000 left), 40000 held
    lines = [r.payout(seller="rich", amount=60000, payout_id=ids[0]),
             r.payout(seller="rich", amount=50000, payout_id=ids[1]),
             r.payout(seller="rich", amount=40000, payout_id=ids[2]),
             r.payout(seller="poor", amount=100, payout_id=ids[3]),
             # above the review limit: held for an admin; no funds when approved
             r.payout(seller="poor", amount=600000, payout_id=ids[4])]
    produce(lines)
    r.start(risk_daemons)
    r.wait_decided(5)
    cmds = r.commands(2)
    assert sorted(m["value"]["payout_id"] for m in consume(r.out, idle_ms=1000)) == [ids[0], ids[2]]
    assert all(m["value"]["kind"] == "PAYOUT" for m in cmds)
    for pid, st in ((ids[0], "REQUESTED"), (ids[1], "FAILED"), (ids[2], "REQUESTED"),
                    (ids[3], "FAILED"), (ids[4], "HELD")):
        assert status("payouts", "payout_id", pid) == st, pid
    row = psql("SELECT failure_code, failure_message FROM payouts WHERE payout_id = '%s'" % ids[1])[0]
    assert row[0] == "INSUFFICIENT_FUNDS" and "40000" in row[1], row
    assert psql_one("SELECT failure_code FROM payouts WHERE payout_id = '%s'" % ids[3]) == \
        "INSUFFICIENT_FUNDS"
    assert wallet(r, "seller_wallet", "rich") == 0
    assert wallet(r, "payout_hold", "rich") == 100000
    held = psql("SELECT journal_id FROM ledger_entries WHERE kind = 'payout_hold' AND "
                "journal_id IN (%s) ORDER BY 1" % ",".join("'%s'" % i for i in ids))
    assert held == [[ids[0]], [ids[2]]]

    # the held payout approved by an admin: the ledger refuses it, no command is released
    rc, out, err = holds_cli("approve", "--partner", r.partner, "--by", "ops", "--reason",
                             "checked", ids[4])
    assert rc == 0, err
    assert json.loads(out)["payout_refused"] == "INSUFFICIENT_FUNDS"
    assert status("payouts", "payout_id", ids[4]) == "FAILED"
    # funded, a second held payout is approved and its command goes out
    fund_wallets(r.partner, ["poor"], 700000)
    produce([r.payout(seller="poor", amount=600000, payout_id=ids[4] + "b")])
    wait_until(lambda: psql("SELECT status FROM payouts WHERE payout_id = '%s'" % (ids[4] + "b"))
               == [["HELD"]], 30, what="held")
    rc, out, err = holds_cli("approve", "--partner", r.partner, "--by", "ops", "--reason",
                             "checked", ids[4] + "b")
    assert rc == 0 and "payout_refused" not in json.loads(out), out
    r.commands(3)
    got = sorted(m["value"]["payout_id"] for m in consume(r.out, idle_ms=1000))
    assert got == sorted([ids[0], ids[2], ids[4] + "b"]), got
    assert wallet(r, "seller_wallet", "poor") == 700000 - 600000
    assert wallet(r, "payout_hold", "poor") == 600000
    rc, text = verify()
    assert rc == 0, text


def test_a_payout_funded_twice_at_once_is_held_once(risk_daemons):
    """ledger_payout_holds looked for the payout's hold, then locked the wallet: a second
    funding of the same payout (another instance, a zombie) that waited for the first one's
    locks read the balance after the first hold and answered insufficient_funds (its caller
    then failed a payout whose hold stood and whose command was out) or tried a second hold.
    It looks again under the locks: already_held."""
    import subprocess
    import time
    from conftest import PG_DSN
    r = Risk("t407c", RULES)
    fund_wallets(r.partner, ["one"], 100000)
    pid = "pyo_%s_1" % r.name
    psql("INSERT INTO payouts (payout_id, partner_id, seller_id, amount_minor, currency, "
         "channel, bank_code, destination_account, status) VALUES ('%s','%s','one',100000,"
         "'IDR','BANK_ACCOUNT','BCA','1234567890','REQUESTED')" % (pid, r.partner))
    sql = "SELECT result FROM ledger_payout_holds(ARRAY['%s']);" % pid
    a = subprocess.Popen(["psql", PG_DSN, "-qtAX", "-v", "ON_ERROR_STOP=1"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    a.stdin.write("BEGIN;\n" + sql + "\n")
    a.stdin.flush()
    time.sleep(1)  # a holds the wallet's stripes, uncommitted
    b = subprocess.Popen(["psql", PG_DSN, "-qtAX", "-v", "ON_ERROR_STOP=1", "-c", sql],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1)  # b waits for them
    assert b.poll() is None, b.communicate()
    a.stdin.write("COMMIT;\n")
    out_a, err_a = a.communicate(timeout=30)
    out_b, err_b = b.communicate(timeout=30)
    assert out_a.split() == ["held"], (out_a, err_a)
    assert b.returncode == 0 and out_b.split() == ["already_held"], (out_b, err_b)
    assert wallet(r, "seller_wallet", "one") == 0
    assert wallet(r, "payout_hold", "one") == 100000
