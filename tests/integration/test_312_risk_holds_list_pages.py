"""312: a page of a partner's holds reads that page, not every hold the partner ever had.

risk_holds_list (GET /v1/admin/holds, `kasir-risk holds list`) pages a partner's holds
oldest first, (held_at, hold_id), after the last hold of the previous page. The only index
was (partner_id, status, held_at): without a status every page read and sorted all of the
partner's holds, and with one every page after the first read the status's holds from the
start again (the page's bound names hold_id, which that index does not hold). Holds are
kept for good (who decided what, and why), so a partner's list grows with its history.

The audit export (GET /v1/admin/audit-export) reads the holds decided in its range: with
that index too, every export fetched every decided hold of the partner.

Here a partner has 12,000 holds (a quarter still HELD, the rest decided; ten at a time share
their held_at, as the holds of one kasir-risk batch do). Each page's shared buffers
(EXPLAIN ANALYZE BUFFERS of the function as the ingress calls it) stay at a few pages'
worth, first page or deep, with or without a status; and the pages are the holds in order.
An export of a day long past fetches none of the partner's holds (PostgreSQL's statistics of
the rows its scans fetched from risk_holds, as the ingress's session reports them; a
vacuum's reads are not counted there)."""
import base64
import json
import secrets

import pytest

from conftest import psql, psql_one, table_scans
from ingress_util import Partner, cli, ingress  # noqa: F401
from runtime_util import wait_until

N = 12000
LIMIT = 100
BOUND = 120  # buffers of one page: index descent, ~100 heap tuples, their JSON


def _call(partner, status, after):
    """the call as the ingress and kasir-risk make it: in the select list, where PostgreSQL
    does not inline the function (in FROM with constants it could, and plan the body for
    those constants)"""
    return ("SELECT risk_holds_list('%s', %s, %d, %s)"
            % (partner, "'%s'" % status if status else "NULL", LIMIT,
               "'%s'" % after if after else "NULL"))


def _page(partner, status, after):
    return [json.loads(r[0])["hold_id"] for r in psql(_call(partner, status, after))]


def _buffers(partner, status, after):
    """the page's shared buffers, in a session that has called the function once before
    (a session's first call reads the catalog for it: not the page's cost)"""
    call = _call(partner, status, after)
    out = [r[0] for r in psql("SELECT count(*) FROM (%s) AS x; EXPLAIN (ANALYZE, BUFFERS, "
                              "FORMAT JSON) %s" % (call, call))]
    plan = json.loads("\n".join(out[out.index("["):]))[0]["Plan"]  # after the count
    return plan["Shared Hit Blocks"] + plan["Shared Read Blocks"]


def _expected(partner, status, after_pos):
    """the ids of the page after the after_pos-th hold (0: the first page), straight from
    the table"""
    return [r[0] for r in psql(
        "SELECT hold_id FROM risk_holds WHERE partner_id = '%s' %s "
        "ORDER BY held_at, hold_id OFFSET %d LIMIT %d"
        % (partner, "AND status = '%s'" % status if status else "", after_pos, LIMIT))]


def _holds(partner):
    """N holds of partner, ids in another order than time (hold_id alone orders nothing);
    removed after the test"""
    psql("INSERT INTO risk_holds (hold_id, kind, partner_id, party_id, currencies, amounts, "
         "reasons, rules, outbox_worker, status, held_at, decided_at, decided_by, "
         "decision_note) "
         "SELECT '%s-' || md5(i::text), 'payment', '%s', 'b' || i, '{IDR}', '{100}', "
         "'{review}', '{review-big}', 'risk/t312', "
         "CASE WHEN i %% 4 = 0 THEN 'HELD' ELSE 'APPROVED' END, "
         "timestamptz '2026-01-01' + (i / 10) * interval '1 second', "
         "CASE WHEN i %% 4 = 0 THEN NULL ELSE now() END, "
         "CASE WHEN i %% 4 = 0 THEN NULL ELSE '%s/k1' END, "
         "CASE WHEN i %% 4 = 0 THEN NULL ELSE 'ok' END "
         "FROM generate_series(1, %d) AS i" % (partner, partner, partner, N))
    psql("ANALYZE risk_holds")
    pages = int(psql_one("SELECT relpages FROM pg_class WHERE relname = 'risk_holds'"))
    assert pages > 3 * BOUND, pages  # reading them all would show
    return pages


@pytest.fixture
def partner():
    p = "t312-" + secrets.token_hex(3)
    yield p
    psql("DELETE FROM risk_holds WHERE partner_id = '%s'" % p)


def test_a_page_of_holds_reads_one_page(partner):
    pages = _holds(partner)
    for status, total in ((None, N), ("APPROVED", N - N // 4), ("HELD", N // 4)):
        # first page, one in the middle, one near the end
        for pos in (0, total // 2, total - LIMIT // 2):
            want = _expected(partner, status, pos)
            after = _expected(partner, status, pos - 1)[0] if pos else None
            assert _page(partner, status, after) == want, (status, pos)
            used = _buffers(partner, status, after)
            assert used <= BOUND, ("a page of %s holds at %d read %d buffers (the table: %d "
                                   "pages)" % (status or "all", pos, used, pages))


def test_an_export_of_a_past_day_reads_no_holds(ingress):
    a = Partner("t312-" + secrets.token_hex(3))
    try:
        pages = _holds(a.partner_id)
        admin = "Basic " + base64.b64encode(
            (cli("key", "add", a.partner_id, "--scopes", "admin")["api_key"] + ":").encode()
        ).decode()
        # the counters move when the ingress's session reports its statistics
        scans0, fetched0 = table_scans("risk_holds")
        r = ingress.request("GET", "/v1/admin/audit-export?from=2001-01-01T00:00:00Z"
                            "&to=2001-01-02T00:00:00Z", auth=admin)
        assert r.status == 200, r
        assert r.json() == {"record": "end", "records": 0}, r
        # the export's scan of risk_holds counts once its session reports (nothing else
        # scans the table meanwhile; a vacuum's reads are not scans)
        wait_until(lambda: table_scans("risk_holds")[0] > scans0, timeout=20,
                   what="the export's scan")
        used = table_scans("risk_holds")[1] - fetched0
        assert used <= 10, ("an export of a day with no holds fetched %d rows of risk_holds "
                            "(%d pages)" % (used, pages))
    finally:
        psql("DELETE FROM risk_holds WHERE partner_id = '%s'" % a.partner_id)
