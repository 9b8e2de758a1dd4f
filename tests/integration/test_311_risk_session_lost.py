"""311: kasir-risk's statements are prepared once per server session (ks_pg_exec): when the
server ends its session mid-stream (pg_terminate_backend; the worker reconnects with
PQreset, the same PGconn), the new session gets every statement prepared again before it
runs them -- payments and payouts are all decided, none is dead-lettered, and no batch
fails on a statement the session lacks (26000)."""
from risk_util import Risk, consume, produce, psql, risk_daemons  # noqa: F401

RULES = [{"id": "card-idr", "type": "amount_limit", "method": "CARD", "currency": "IDR",
          "max": "2500.00"}]


def backends():
    return {p for (p,) in psql("SELECT pid FROM pg_stat_activity WHERE usename = 'kasir_risk'")}


def stream(r, n, first):
    lines = [r.payment(buyer="b%d" % (i % 40),
                       orders=[("s%d" % (i % 5), 10000 + i * 7, "IDR", "QRIS", None)])
             for i in range(first, first + n)]
    lines += [r.payout(seller="s%d" % (i % 5), amount=1000 + i) for i in range(first, first + 5)]
    return lines


def test_a_session_the_server_ended_prepares_every_statement_again(risk_daemons):
    r = Risk("t311", RULES)
    produce(stream(r, 200, 0))
    d = r.start(risk_daemons, KASIR_WORKER_BATCH_MAX=50)
    r.wait_decided(205)
    before = backends()
    assert before, "kasir-risk has no session"
    psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'kasir_risk'")
    produce(stream(r, 200, 200))
    r.wait_decided(410, timeout=90)
    after = backends()
    assert after and not (after & before), (before, after)  # it did reconnect
    got = r.decisions()
    assert sum(1 for g in got.values() if g[0] == "APPROVE") == 410, got
    assert consume(r.payments + ".dlq", idle_ms=500) == []
    assert consume(r.payouts + ".dlq", idle_ms=500) == []
    with open(d.log_path, errors="replace") as f:
        f.seek(d.log_offset)
        log = f.read()  # this start's lines
    assert "26000" not in log, log[-3000:]
    assert d.term() == 0
