"""421: an audit export ends by readers.export_timeout however slowly its client reads.

An export streams from a cursor in one REPEATABLE READ snapshot (test 411), and waits for
its client: while the buffer is full the export's thread waits for the client to read.
Each FETCH had a deadline, the export as a whole none: a client that stops reading (a
stuck program, a slow link, on purpose) held the export's connection "idle in
transaction", and with it a snapshot that keeps PostgreSQL from cleaning up any row
version deleted or updated since (the workers' offsets, the ledger's chain heads and
balance stripes, the queues: every hot row), for as long as it liked. Now
readers.export_timeout (10 min; 3 s here) ends the export: the response is cut short (no
end record) and its snapshot goes."""
import base64
import secrets
import socket
import time

from conftest import ledger_entries_posted, psql_one
from ingress_util import Partner, cli, start_ingress
from runtime_util import wait_until

N = 12000  # ~5 MB of JSON lines: far more than the export's buffer and the sockets hold
HELD = ("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'kasir-ingress-export' "
        "AND backend_xmin IS NOT NULL")


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
        # the export holds its snapshot while it waits for the client...
        wait_until(lambda: psql_one(HELD) == "1", timeout=3, what="the export's snapshot")
        time.sleep(0.5)
        assert psql_one(HELD) == "1", "the export ended before its timeout"
        # ...until its timeout, not for as long as the client does not read
        wait_until(lambda: psql_one(HELD) == "0", timeout=10,
                   what="the export's snapshot gone after readers.export_timeout")
        assert time.time() - t0 >= 2.5
        # what the client reads now ends without the end record: the file is not whole
        s.settimeout(20)
        body = head
        while True:
            b = s.recv(1 << 20)
            if not b:
                break
            body += b
        s.close()
        assert b'"record": "end"' not in body and b'"records"' not in body, body[-300:]
        assert body.count(b'"record": "entry"') < N
        # and the slot is free: a short export is whole
        r = ing.request("GET", "/v1/admin/audit-export?from=2001-01-01T00:00:00Z"
                        "&to=2001-01-02T00:00:00Z", headers={"Authorization": "Basic " +
                                                             auth.decode()})
        assert r.status == 200 and r.json() == {"record": "end", "records": 0}, r
    finally:
        assert ing.daemon.term() == 0
