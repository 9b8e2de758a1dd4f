"""602: 2,000 orders with the sandbox at 30 % 5xx and 10 % timeouts after the charge: every
order ends SUCCESS, FAILED or PENDING_CUSTOMER, or its command is in the DLQ (retries
exhausted), and the sandbox's record shows no order charged twice. Then refunds of the
captured orders under the same faults: none paid twice, and each refunded once."""
from executor_util import Exec, assert_no_duplicates, consume, produce, psql, psql_one, wait_until
from sandbox_util import sandbox  # noqa: F401 (fixture)

N = 2000


def kind_of(i):
    return "decline" if i % 10 == 0 else "va" if i % 5 == 1 else "card"


def test_faults_no_double_charge(daemons, sandbox):
    ex = Exec("ex602")
    specs, cmds = [], []
    for i in range(N):
        o, k = ex.order_id(i), kind_of(i)
        method = "VIRTUAL_ACCOUNT" if k == "va" else "CARD"
        specs.append((o, 10000 + i, method))
        cmds.append(ex.command(o, 10000 + i, method=method,
                               token=None if k == "va" else
                               "tok_decline_x" if k == "decline" else "pm_card_visa"))
    ex.orders(specs)
    sandbox.faults(error_pct=30, timeout_pct=10, decline_pct=0, latency_ms=0, hold_ms=0, seed=602)
    produce(cmds)
    # the circuit breaker is test 604's subject: here every fault must reach the adapter
    daemons("executor", env=ex.env(sandbox, KASIR_WORKER_BATCH_MAX="500",
                                   KASIR_EXECUTOR_BREAKER_FAILURE_PCT="90"))
    daemons("ledger", env=ex.ledger_env())

    def dead():
        return len({m["value"]["order_id"] for m in consume(ex.commands + ".dlq", idle_ms=300)})
    ex.wait_final(N, timeout=240, also=dead)
    st = ex.statuses()
    dlq = consume(ex.commands + ".dlq", idle_ms=500)
    dead_ids = {m["value"]["order_id"] for m in dlq}
    for m in dlq:
        assert m["headers"]["kasir.error.class"] == "exhausted", m["headers"]
    for i in range(N):
        o, k = ex.order_id(i), kind_of(i)
        want = {"card": "SUCCESS", "decline": "FAILED", "va": "PENDING_CUSTOMER"}[k]
        assert st[o] == want or (o in dead_ids and st[o] in ("EXECUTING", want)), (o, k, st[o])
    assert len(dead_ids) < N // 50, len(dead_ids)
    inj = sandbox.control("GET", "/_sandbox/faults").json()["injected"]
    assert inj["errors"] > 500 and inj["timeouts"] > 150, inj  # the faults did happen
    led = assert_no_duplicates(sandbox)
    charged = [e for e in led["entries"] if e["kind"] == "charge" and e["reference"].startswith(
        "ord_%s_" % ex.tag)]
    card_ok = {ex.order_id(i) for i in range(N) if kind_of(i) == "card"}
    assert {e["reference"] for e in charged} <= card_ok
    assert {e["reference"] for e in charged} >= {o for o in card_ok if o not in dead_ids}
    # an attempt resolved as SUCCEEDED for every charge the sandbox made, but for commands
    # dead-lettered while their outcome was unknown: those stay journaled as sent
    ok_att = {r[0] for r in ex.attempts("verdict = 'SUCCEEDED'")}
    sent = {r[0] for r in ex.attempts("state = 'sent'")}
    assert len(ok_att) + len(sent) >= len(charged) >= len(ok_att), (len(ok_att), len(sent))
    assert {c.split("CHARGE_")[1] for c in sent} <= dead_ids

    # an operator replays the DLQ with the PSP healthy again: each unknown attempt is
    # resolved by asking the sandbox, nothing is charged twice, every order ends final
    sandbox.faults(error_pct=0, timeout_pct=0)
    produce([{"topic": ex.commands, "key": m["value"]["order_id"], "schema": "kasir.psp.PspCommand",
              "value": m["value"]} for m in dlq])
    ex.wait_final(N, timeout=120)
    st = ex.statuses()
    assert all(st[ex.order_id(i)] == {"card": "SUCCESS", "decline": "FAILED",
                                      "va": "PENDING_CUSTOMER"}[kind_of(i)] for i in range(N))
    assert ex.attempts("state = 'sent'") == []
    led = assert_no_duplicates(sandbox)
    charged = [e for e in led["entries"] if e["kind"] == "charge" and e["reference"].startswith(
        "ord_%s_" % ex.tag)]
    assert {e["reference"] for e in charged} == card_ok
    sandbox.faults(error_pct=30, timeout_pct=10)

    # refunds of 200 captured orders, half of them full, under the same faults
    captured = sorted(o for o in card_ok if st[o] == "SUCCESS")[:200]
    refunds = []
    for k, o in enumerate(captured):
        amount = int(psql_one("SELECT amount_minor FROM payment_orders WHERE order_id='%s'" % o))
        amount = amount if k % 2 else amount // 2
        rid = "rf_%s_%d" % (ex.tag, k)
        ex.refund_row(rid, o, amount)
        refunds.append(ex.refund(rid, o, amount))
    produce(refunds)

    def dead_refunds():
        return len({m["value"]["refund_id"] for m in consume(ex.commands + ".dlq", idle_ms=300)
                    if m["value"]["kind"] == "REFUND"})

    def refunds_final():
        return int(psql_one("SELECT count(*) FROM refunds WHERE refund_id LIKE 'rf\\_%s\\_%%' "
                            "AND status IN ('SUCCEEDED', 'FAILED')" % ex.tag))
    wait_until(lambda: refunds_final() + dead_refunds() >= len(refunds), timeout=180,
               step=0.5, what="refunds final")
    led = assert_no_duplicates(sandbox)
    paid = [e["reference"] for e in led["entries"] if e["kind"] == "refund" and
            e["reference"].startswith("rf_%s_" % ex.tag)]
    assert len(paid) == len(set(paid))
    ok = {r[0] for r in psql("SELECT refund_id FROM refunds WHERE refund_id LIKE 'rf\\_%s\\_%%' "
                             "AND status = 'SUCCEEDED'" % ex.tag)}
    dead_rf = [m for m in consume(ex.commands + ".dlq", idle_ms=500) if m["value"]["kind"] == "REFUND"]
    assert ok <= set(paid) <= ok | {m["value"]["refund_id"] for m in dead_rf}
    assert len(ok) >= len(refunds) - 10, len(ok)
    bad = psql("SELECT refund_id FROM refunds WHERE refund_id LIKE 'rf\\_%s\\_%%' AND status = "
               "'FAILED'" % ex.tag)
    assert bad == [], bad
    # the dead-lettered refunds replayed with the PSP healthy: each paid exactly once
    sandbox.faults(error_pct=0, timeout_pct=0)
    produce([{"topic": ex.commands, "key": m["value"]["order_id"], "schema": "kasir.psp.PspCommand",
              "value": m["value"]} for m in dead_rf])
    wait_until(lambda: refunds_final() == len(refunds), timeout=60, what="replayed refunds final")
    led = assert_no_duplicates(sandbox)
    paid = [e["reference"] for e in led["entries"] if e["kind"] == "refund" and
            e["reference"].startswith("rf_%s_" % ex.tag)]
    assert sorted(paid) == sorted(r["value"]["refund_id"] for r in refunds)
    assert int(psql_one("SELECT count(*) FROM refunds WHERE refund_id LIKE 'rf\\_%s\\_%%' AND "
                        "status = 'SUCCEEDED'" % ex.tag)) == len(refunds)
