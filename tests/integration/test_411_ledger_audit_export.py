"""411: GET /v1/admin/audit-export streams the partner's entries and admin acts for a time
range as JSON lines or CSV, in constant memory: 12,000 entries (twelve cursor chunks, ~5 MB
of output) read slowly by the client while the ingress's resident memory stays far below
the output's size; every entry comes once, in order, balanced; acts carry who and why;
another partner's records never appear; the range bounds hold; bad parameters are 400s; a
whole export ends with an end record counting the records before it."""
import base64
import csv
import http.client
import io
import json
import secrets
import time

from conftest import psql
from ingress_util import Partner, cli, ingress  # noqa: F401

N = 12000


def admin_key(partner_id):
    out = cli("key", "add", partner_id, "--scopes", "admin")
    return "Basic " + base64.b64encode((out["api_key"] + ":").encode()).decode()


def rss_kb(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def stream(ingress, path, auth, pause_every=None, on_chunk=None):
    c = http.client.HTTPConnection("127.0.0.1", ingress.port, timeout=60)
    c.request("GET", path, headers={"Authorization": auth})
    r = c.getresponse()
    parts, n = [], 0
    while True:
        b = r.read(16384)
        if not b:
            break
        parts.append(b)
        n += 1
        if on_chunk:
            on_chunk()
        if pause_every and n % pause_every == 0:
            time.sleep(0.05)  # a slow client: the server must wait, not buffer everything
    c.close()
    return r.status, dict((k.lower(), v) for k, v in r.getheaders()), b"".join(parts)


def test_export_streams(ingress):
    a, b = Partner("t411-a-" + secrets.token_hex(3)), Partner("t411-b-" + secrets.token_hex(3))
    admin_a, admin_b = admin_key(a.partner_id), admin_key(b.partner_id)
    t0 = psql("SELECT to_char((now() - interval '1 second') AT TIME ZONE 'UTC', "
              "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")[0][0]
    # N entries of partner a (one statement), a few of partner b
    # (500 per transaction: one transaction moving a chain head thousands of times slows
    # down with every version of the head row it leaves)
    for partner, lo, hi in [(a.partner_id, k, min(k + 499, N)) for k in range(1, N + 1, 500)] + \
            [(b.partner_id, 1, 5)]:
        psql("SELECT count(ledger_post('sql:test_export', 'test_export:' || '%s' || ':' || i, "
             "'adjustment', 'exp' || i, '%s', 'export test ' || i, "
             "ARRAY[ledger_account('suspense', '%s', NULL, NULL, 'IDR'), "
             "ledger_account('seller_wallet', '%s', 's' || (i %% 7), NULL, 'IDR')], "
             "ARRAY[i, -i]::bigint[], 'IDR')) FROM generate_series(%d, %d) AS i"
             % (partner, partner, partner, partner, lo, hi))
    # an act with who and why: an adjustment asked (not approved)
    r = ingress.request("POST", "/v1/admin/adjustments", {
        "seller_id": "s1", "direction": "credit", "amount": "1.00", "currency": "IDR",
        "counter_account": "suspense", "reason": "why: ticket 9"}, auth=admin_a)
    assert r.status == 201, r
    t1 = psql("SELECT to_char((now() + interval '1 second') AT TIME ZONE 'UTC', "
              "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")[0][0]
    path = "/v1/admin/audit-export?from=%s&to=%s" % (t0, t1)

    pid = ingress.daemon.proc.pid
    before, peak = rss_kb(pid), [0]

    def sample():
        peak[0] = max(peak[0], rss_kb(pid))
    status, headers, body = stream(ingress, path, admin_a, pause_every=8, on_chunk=sample)
    assert status == 200, body[:300]
    assert headers["content-type"].startswith("application/jsonl")
    assert "content-length" not in headers  # chunked: streamed, not built first
    recs = [json.loads(line) for line in body.decode().splitlines()]
    # a whole export ends with its end record, counting the records before it
    assert recs[-1] == {"record": "end", "records": len(recs) - 1}, recs[-1]
    assert [x for x in recs if x["record"] == "end"] == [recs[-1]]
    entries = [x for x in recs if x["record"] == "entry"]
    assert len(entries) == N, len(entries)
    assert [int(e["id"]) for e in entries] == sorted(int(e["id"]) for e in entries)
    assert len({e["id"] for e in entries}) == N
    for e in entries[:50] + entries[-50:]:
        dr = sum(p["amount_minor"] for p in e["postings"] if p["direction"] == "DEBIT")
        cr = sum(p["amount_minor"] for p in e["postings"] if p["direction"] == "CREDIT")
        assert dr == cr > 0 and len(e["hash"]) == 64
    assert all(b.partner_id not in json.dumps(x) for x in recs)
    acts = [x for x in recs if x["record"] == "adjustment_requested"]
    assert len(acts) == 1 and acts[0]["reason"] == "why: ticket 9"
    assert acts[0]["by"].startswith(a.partner_id + "/")
    # constant memory: the output is ~5 MB; the ingress grew by far less (its buffer is 256 KB)
    assert len(body) > 4 * 1024 * 1024, len(body)
    grew_kb = peak[0] - before
    assert grew_kb < 2048, "ingress RSS grew by %d KB for a %d KB export" % (grew_kb, len(body) // 1024)

    # CSV: a header, one row per posting, RFC 4180 quoting
    status, headers, body = stream(ingress, path + "&format=csv", admin_a)
    assert status == 200 and headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(body.decode(), newline="")))
    assert rows[0][:4] == ["record", "at", "id", "kind_or_detail"]
    entry_rows = [x for x in rows[1:] if x[0] == "entry"]
    assert len(entry_rows) == 2 * N
    assert {x[9] for x in entry_rows} == {"IDR"} and {x[10] for x in entry_rows} == {"DEBIT", "CREDIT"}
    assert [x for x in rows[1:] if x[0] == "adjustment_requested"][0][12] == "why: ticket 9"
    assert body.endswith(b"\r\n")
    assert rows[-1] == ["end", "", "", "records=%d" % (len(rows) - 2)] + [""] * 9, rows[-1]

    # partner b sees its own five entries only; a range in the future holds nothing
    status, _, body = stream(ingress, path, admin_b)
    assert status == 200 and len([1 for l in body.splitlines() if b'"entry"' in l]) == 5
    status, _, body = stream(ingress, "/v1/admin/audit-export?from=2099-01-01&to=2099-01-02", admin_a)
    assert status == 200 and body == b'{"record": "end", "records": 0}\n', body
    # bad parameters, scope
    for q, field in (("to=2026-01-01", "from"), ("from=2026-01-01", "to"),
                     ("from=2026-01-01&to=2026-02-01&format=xml", "format"),
                     ("from=2026-13-45&to=2026-02-01", "from")):
        r = ingress.request("GET", "/v1/admin/audit-export?" + q, auth=admin_a)
        assert r.status == 400 and r.json()["field"] == field, (q, r)
    assert ingress.request("GET", path, auth=a).code == "forbidden_scope"


def _http10(port, path, auth):
    """GET over HTTP/1.0 (as nginx speaks to upstreams by default): no chunking, the body
    ends when the server closes. Returns (status line, body)."""
    import socket
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(("GET %s HTTP/1.0\r\nAuthorization: %s\r\n\r\n" % (path, auth)).encode())
    data = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0], body


def test_an_export_cut_short_is_told_from_a_whole_one_over_http_10():
    """A database lost in the middle of an export ended the response early; over HTTP/1.1
    the client sees the chunked transfer fail, but an HTTP/1.0 client (or proxy) reads a
    body that just ends, a short file that looked whole. A whole export now ends with its
    end record, and a cut one does not."""
    from ingress_util import PgProxy, start_ingress
    M = 1500
    px = PgProxy()
    ing = start_ingress({"KASIR_PG_DSN": px.dsn()})
    try:
        a = Partner("t411-c-" + secrets.token_hex(3))
        admin = admin_key(a.partner_id)
        t0 = psql("SELECT to_char((now() - interval '1 second') AT TIME ZONE 'UTC', "
                  "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")[0][0]
        for lo in range(1, M + 1, 500):
            psql("SELECT count(ledger_post('sql:test_export', 'test_export_c:' || '%s' || ':' || i, "
                 "'adjustment', 'exc' || i, '%s', 'export cut ' || i, "
                 "ARRAY[ledger_account('suspense', '%s', NULL, NULL, 'IDR'), "
                 "ledger_account('seller_wallet', '%s', 's1', NULL, 'IDR')], "
                 "ARRAY[i, -i]::bigint[], 'IDR')) FROM generate_series(%d, %d) AS i"
                 % ((a.partner_id,) * 4 + (lo, lo + 499)))
        t1 = psql("SELECT to_char((now() + interval '1 second') AT TIME ZONE 'UTC', "
                  "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")[0][0]
        path = "/v1/admin/audit-export?from=%s&to=%s" % (t0, t1)
        status, body = _http10(ing.port, path, admin)
        assert b" 200 " in status, status
        lines = body.decode().splitlines()
        assert len(lines) == M + 1 and json.loads(lines[-1]) == {"record": "end", "records": M}
        # the same export, its database connection lost at its second FETCH: the first
        # chunk of rows was sent
        px.cut_on(b"FETCH", nth=2)
        status, body = _http10(ing.port, path, admin)
        assert b" 200 " in status, status
        lines = body.decode().splitlines()
        assert len(lines) == 1000 and px.cuts == 1, (len(lines), px.cuts)
        assert b'"end"' not in body, lines[-1]
        assert "ingress.export.failed" in ing.daemon.log_tail(50)
    finally:
        ing.daemon.kill9()
        px.close()
