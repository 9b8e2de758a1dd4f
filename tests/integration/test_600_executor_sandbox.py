"""600: kasir-executor against kasir-psp-sandbox's own API, end to end through kasir-ledger:
a card charge succeeds, a declined card fails with the PSP's reason, a virtual account
waits for the buyer with its VA number (next_action) on the order, a command for a PSP
without credentials is dead-lettered unsent. Every attempt is journaled and resolved once,
and the sandbox's ledger shows each order charged once, even when every command is
delivered twice. A payout is accepted by the sandbox (pending: its result comes by webhook)
and moved to EXECUTING, with no outcome yet."""
from executor_util import Exec, assert_no_duplicates, consume, produce, psql, psql_one, wait_until
from sandbox_util import sandbox  # noqa: F401 (fixture)


def test_charge_decline_pending(daemons, sandbox):
    ex = Exec("ex600")
    ok, dec, va, bad = (ex.order_id(i) for i in range(4))
    ex.orders([(ok, 150000, "CARD"), (dec, 99000, "CARD"), (va, 250000, "VIRTUAL_ACCOUNT"),
               (bad, 1000, "CARD")])
    cmds = [ex.command(ok, 150000), ex.command(dec, 99000, token="tok_decline_card"),
            ex.command(va, 250000, method="VIRTUAL_ACCOUNT", token=None),
            ex.command(bad, 1000, psp="stripe")]
    po = "po_" + ex.tag
    cmds.append(ex.payout(po, 2500000))
    produce(cmds + cmds)  # every command twice: the journal must make the second a no-op
    d = daemons("executor", env=ex.env(sandbox, KASIR_EXECUTOR_STRIPE_SECRET="",
                                       KASIR_LOG_LEVEL="debug"))
    daemons("ledger", env=ex.ledger_env())
    ex.wait_final(3, timeout=60)
    st = ex.statuses()
    assert st[ok] == "SUCCESS" and st[dec] == "FAILED" and st[va] == "PENDING_CUSTOMER", st
    assert st[bad] == "NOT_STARTED", st  # never journaled, never sent
    na = psql_one("SELECT next_action::text FROM payment_orders WHERE order_id = '%s'" % va)
    assert '"va_number"' in na and '"expires_at"' in na, na
    assert psql_one("SELECT captured_minor FROM payment_orders WHERE order_id = '%s'" % ok) == "150000"
    # one attempt each, resolved, with the PSP's reference and verdict
    wait_until(lambda: psql_one("SELECT status FROM payouts WHERE payout_id='%s'" % po)
               == "EXECUTING", timeout=30, what="payout executing")
    pay = psql("SELECT attempt, state, verdict, psp_reference FROM executor_attempts "
               "WHERE object_id = '%s'" % po)
    assert len(pay) == 1 and pay[0][:3] == ["1", "resolved", "PENDING"], pay
    assert pay[0][3].startswith("sbpo_")
    rows = {r[0]: r for r in ex.attempts() if "PAYOUT" not in r[0]}
    assert len(rows) == 3, rows
    assert all(r[1] == "1" and r[2] == "resolved" for r in rows.values()), rows
    verdicts = sorted(r[3] for r in rows.values())
    assert verdicts == ["FAILED", "PENDING_CUSTOMER", "SUCCEEDED"], verdicts
    assert all(r[5].startswith("sbch_") for r in rows.values()), rows
    fc = psql_one("SELECT failure_code FROM executor_attempts WHERE order_id = '%s'" % dec)
    assert fc == "card_declined"
    # the outcomes: one per order (a duplicate on the wire carries the same outcome id)
    outs = {}
    for o in ex.outcomes_seen():
        outs.setdefault(o["order_id"], set()).add((o["outcome_id"], o["status"]))
    assert {k: len(v) for k, v in outs.items()} == {ok: 1, dec: 1, va: 1}, outs
    assert [s for _, s in outs[dec]] == ["FAILED"]
    # the sandbox charged each reference once
    led = assert_no_duplicates(sandbox)
    mine = [e for e in led["entries"] if e.get("reference") in (ok, dec, va)]
    assert [e["reference"] for e in mine] == [ok], mine  # only money that moved
    assert [e["reference"] for e in led["entries"] if e["kind"] == "payout" and
            e["reference"] == po] == [po]
    # one request per operation: a command delivered twice (here in the same batch) is sent
    # once, not twice with the same key
    assert sandbox.control("GET", "/_sandbox/faults").json()["injected"]["requests"] == 4
    dlq = consume(ex.commands + ".dlq", idle_ms=1000)
    assert {m["value"]["order_id"] for m in dlq} == {bad}, dlq
    assert "no credentials" in dlq[0]["headers"].get("kasir.error.message", ""), dlq[0]["headers"]
    # no credential, token or idempotency key in the executor's log, even at debug level
    log = open(d.log_path, errors="replace").read()
    assert sandbox.keys["native"] not in log and "pm_card_visa" not in log
    assert "idk_CHARGE_" not in log
