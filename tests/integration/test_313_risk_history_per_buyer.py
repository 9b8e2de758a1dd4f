"""313: a batch reads each buyer's history back to that buyer's own window, not the oldest
payment's of the batch.

kasir-risk reads the velocity history of a batch's buyers in one statement. Its lower bound
was the batch's: the earliest payment of the batch less the longest window. One old payment
in a batch (a replay from the dead-letter topic, a producer's backlog) made every buyer of
the batch read its history back to that time: here, a busy buyer's 40,000 payments of the
ten days before, none of them in its one-hour window. Now each buyer's bound is its own
earliest payment in the batch less the longest window.

The decisions are the same either way (both buyers' windows hold two earlier payments: the
third is held for review); what changes is what PostgreSQL reads for them, counted by its
statistics of the rows scans fetched from risk_payments, as the daemon's session reports
them (a vacuum's reads are not counted there)."""
import time

import pytest

from conftest import psql, psql_one, table_scans
from risk_util import T0, Risk, produce, risk_daemons  # noqa: F401
from runtime_util import wait_until

S = 1000000
H = 3600 * S
DAY = 24 * H
RULES = [{"id": "three-in-1h", "type": "velocity", "window": "1h", "max_count": 2}]
N = 40000
NOW = T0 + 20 * DAY
OLD = NOW - 10 * DAY


def _history(partner, buyer, tag, n, at):
    """n approved payments of buyer decided before, the i-th at the SQL expression at (of
    i); tag keeps their checkouts apart from the buyer's other ones"""
    psql("INSERT INTO risk_payments (partner_id, checkout_id, payment_id, buyer_id, at_us, "
         "currencies, amounts, decision) SELECT '%s', 'co-%s-%s-' || i, 'pay-%s-%s-' || i, "
         "'%s', %s, '{IDR}', '{100}', 'APPROVE' FROM generate_series(1, %d) AS i"
         % (partner, tag, buyer, tag, buyer, buyer, at, n))


def _at(*ats):
    return "(ARRAY[%s]::bigint[])[i]" % ",".join(str(a) for a in ats)


@pytest.fixture
def risk():
    r = Risk("t313", RULES, partitions=1)
    yield r
    psql("DELETE FROM risk_payments WHERE partner_id = '%s'" % r.partner)


def test_an_old_payment_does_not_widen_other_buyers_history(risk_daemons, risk):
    r = risk
    # the busy buyer: 40,000 payments between the old one's time and two hours ago (read
    # before only because of the old payment), and two in the last hour
    _history(r.partner, "busy", "past", N,
             "%d + i::bigint * %d" % (OLD, (NOW - 2 * H - OLD) // N))
    _history(r.partner, "busy", "h", 2, _at(NOW - 30 * 60 * S, NOW - 20 * 60 * S))
    _history(r.partner, "old", "h", 2, _at(OLD - 30 * 60 * S, OLD - 20 * 60 * S))
    psql("ANALYZE risk_payments")
    busy = r.payment(buyer="busy", at=NOW, orders=[("s1", 5000, "IDR", "QRIS")])
    old = r.payment(buyer="old", at=OLD, orders=[("s1", 5000, "IDR", "QRIS")])
    produce([busy, old])  # one partition, produced before the daemon starts: one batch
    time.sleep(1)  # the inserting sessions' statistics are in
    scans0, fetched0 = table_scans("risk_payments")

    since = psql_one("SELECT now()")
    d = r.start(risk_daemons)
    # waited for by their holds (hold_id: the payment's id), not by reading risk_payments,
    # whose blocks are counted
    ids = "', '".join(p["value"]["payment_id"] for p in (busy, old))
    wait_until(lambda: psql_one("SELECT count(*) FROM risk_holds WHERE hold_id IN ('%s')"
                                % ids) == "2", timeout=60, what="both payments held")
    assert d.term() == 0
    # the daemon's session reports its statistics as it ends
    wait_until(lambda: psql_one("SELECT count(*) FROM pg_stat_activity WHERE usename = "
                                "'kasir_risk' AND backend_start >= '%s'" % since) == "0",
               timeout=20, what="the daemon's session gone")
    wait_until(lambda: table_scans("risk_payments")[0] > scans0, timeout=20,
               what="the daemon's scans")
    used = table_scans("risk_payments")[1] - fetched0
    got = r.decisions()
    for p in (busy, old):  # each window: two earlier payments, this one the third
        assert got[p["value"]["payment_id"]] == ("REVIEW", ["VELOCITY_COUNT"], ["three-in-1h"])
    assert used <= 20, ("deciding two payments fetched %d rows of risk_payments (the busy "
                        "buyer's %d payments outside its window)" % (used, N))
