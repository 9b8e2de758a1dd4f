"""420: an audit export reads the entries of its time range, not the whole ledger.

GET /v1/admin/audit-export asks for a partner's records between two instants; its entries
come from "partner_id = $1 AND posted_at >= $2 AND posted_at < $3" on ledger_entries, which
no index served: every export read every page of the ledger's history, every partner's,
however short its range (and past some size of history, every export would run out of its
FETCH timeout). Migration 956 gives ledger_entries a BRIN index on posted_at (the table is
append-only, in posting order).

Here, with 10,000 entries in the ledger, an export of a day long past, when nothing was
posted, reads (almost) none of ledger_entries' pages: counted by PostgreSQL's own
statistics of the table's heap blocks (pg_statio_user_tables), as the ingress's session
reports them. Before, it read them all."""
import base64
import secrets

from conftest import ledger_entries_posted, psql, psql_one
from ingress_util import Partner, cli, ingress  # noqa: F401
from runtime_util import wait_until

N = 10000
PAST = "/v1/admin/audit-export?from=2001-01-01T00:00:00Z&to=2001-01-02T00:00:00Z"


def _blocks():
    """ledger_entries' heap blocks read and its index blocks read, as reported so far"""
    heap, idx = psql("SELECT coalesce(heap_blks_hit + heap_blks_read, 0), "
                     "coalesce(idx_blks_hit + idx_blks_read, 0) FROM pg_statio_user_tables "
                     "WHERE relname = 'ledger_entries'")[0]
    return int(heap), int(idx)


def test_an_export_of_a_past_day_reads_no_history(ingress):
    a = Partner("t420-" + secrets.token_hex(3))
    admin = "Basic " + base64.b64encode(
        (cli("key", "add", a.partner_id, "--scopes", "admin")["api_key"] + ":").encode()).decode()
    ledger_entries_posted(a.partner_id, "sql:t420-" + a.partner_id, N)
    # what autosummarize has autovacuum do once a range of 128 pages is full, now; and the
    # statistics autovacuum would gather
    psql("SELECT brin_summarize_new_values('ledger_entries_posted')")
    psql("ANALYZE ledger_entries")
    pages = int(psql_one("SELECT relpages FROM pg_class WHERE relname = 'ledger_entries'"))
    assert pages >= 200, pages

    # the counters move when the ingress's session reports its statistics (within ~10 s)
    heap0, idx0 = _blocks()
    r = ingress.request("GET", PAST, auth=admin)
    assert r.status == 200, r
    assert r.json() == {"record": "end", "records": 0}, r  # no record in that day
    wait_until(lambda: sum(_blocks()) > heap0 + idx0, timeout=20, what="the export's reads")
    heap = _blocks()[0] - heap0
    # at most one range of 128 pages (one the summary may not cover yet); before: every page
    assert heap <= 128, ("the export of a day with no entries read %d of the ledger's %d pages"
                         % (heap, pages))
