"""421: an audit export ends by readers.export_timeout however slowly its client reads.

An export streams from a cursor in one REPEATABLE READ snapshot (test 411), and waits for
its client: while the buffer is full the export's thread waits for the client to read.
Each FETCH had a deadline, the export as a whole none: a client that reads a trickle (a
slow link, a stuck consumer, on purpose: enough to stay clear of the connection's idle
timeout) held the export's connection "idle in transaction", and with it a snapshot that
keeps PostgreSQL from cleaning up any row version deleted or updated since (the workers'
offsets, the ledger's chain heads and balance stripes, the queues: every hot row), for as
long as it liked. Now readers.export_timeout (10 min; 3 s here) ends the export: its
snapshot goes, and the response is cut short at once (no end record; what was buffered
is not sent), which gives its slot back."""
import base64
import secrets
import socket
import subprocess
import time

from conftest import ledger_entries_posted, psql_one
from ingress_util import Partner, cli, start_ingress
from runtime_util import wait_until

N = 12000  # ~5 MB of JSON lines: far more than the export's buffer and the sockets hold
HELD = ("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'kasir-ingress-export' "
        "AND backend_xmin IS NOT NULL")


def _ingress_holds(pid, client):
    """the ingress (pid) still has the server side of the connection from client open"""
    out = subprocess.run(["ss", "-tnpH", "dst", client], capture_output=True, text=True,
                         timeout=10).stdout
    return "pid=%d," % pid in out


def test_an_export_not_read_ends_at_its_timeout():
    ing = start_ingress({"KASIR_READERS_EXPORT_TIMEOUT": "3s"})
    try:
        a = Partner("t421-" + secrets.token_hex(3))
        auth = base64.b64encode(
            (cli("key", "add", a.partner_id, "--scopes", "admin")["api_key"] + ":").encode())
        ledger_entries_posted(a.partner_id, "sql:t421-" + a.partner_id, N)
        assert psql_one(HELD) == "0"

        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the client barely reads
        s.connect(("127.0.0.1", ing.port))
        t0 = time.time()
        s.sendall(b"GET /v1/admin/audit-export?from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z"
                  b" HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " + auth + b"\r\n\r\n")
        head = s.recv(1024)
        assert head.startswith(b"HTTP/1.1 200"), head[:200]
        # a trickle: 2 KB every 0.1 s (the 6.5 MB would take minutes, the export's buffer
        # alone 13 s) until the
        # ingress has let the connection go (or 20 s)
        me = "%s:%d" % s.getsockname()
        assert _ingress_holds(ing.daemon.proc.pid, me), "ss shows no ingress socket for the export"
        body, held, released = head, [], None
        while time.time() - t0 < 20:
            b = s.recv(2048)
            if not b:
                break
            body += b
            held.append((time.time() - t0, psql_one(HELD)))
            if released is None and not _ingress_holds(ing.daemon.proc.pid, me):
                released = time.time() - t0
            if released is not None and time.time() - t0 > released + 1:
                break
            time.sleep(0.1)
        s.close()
        # the export held its snapshot while its client read...
        assert any(h == "1" for t, h in held if t < 2.5), held[:10]
        # ...until its timeout, not for as long as the client read
        assert all(h == "0" for t, h in held if t > 4), [x for x in held if x[0] > 4][:5]
        # and its response ended then (the socket's queued bytes still reach the client,
        # without the end record): the ingress closed the connection, its slot is free
        assert released is not None and released < 10, (released, len(body))
        assert b'"records"' not in body
        # and the slot is free: a short export is whole
        r = ing.request("GET", "/v1/admin/audit-export?from=2001-01-01T00:00:00Z"
                        "&to=2001-01-02T00:00:00Z", headers={"Authorization": "Basic " +
                                                             auth.decode()})
        assert r.status == 200 and r.json() == {"record": "end", "records": 0}, r
    finally:
        assert ing.daemon.term() == 0
