"""211: denial of service without credentials (issue 12).

- the body is not read before authentication: an unauthenticated upload is answered 401 on
  its headers and its connection closed, so ten of them cost no memory; a small cap on the
  bodies read before anyone is known (token requests); an over-size body is not drained;
- slowloris: a request must arrive whole by its deadline, however slowly it trickles; a
  client address has a connection limit; the connection cap stays below the descriptor
  limit, and /healthz and /metrics keep answering on the admin listener;
- no PostgreSQL round trip on a server thread: with PostgreSQL hung (a frozen proxy in
  front of it), key lookups, token requests and reads cost their deadline and a 503, and
  /healthz answers throughout; a per-address limit before authentication, a limit on
  token requests, a bounded nonce cache."""
import base64
import concurrent.futures
import http.client
import json
import secrets
import socket
import threading
import time

import pytest

from ingress_util import (Partner, PgProxy, closed_within, ingress, new_key, partners,  # noqa: F401
                          payment_body, raw_request, start_ingress)

MiB = 1 << 20


def upload_head(port_len, auth=None, path="/v1/settlements/sandbox", ctype="text/csv"):
    h = "POST %s HTTP/1.1\r\nHost: t\r\nContent-Type: %s\r\nContent-Length: %d\r\n" % (
        path, ctype, port_len)
    if auth:
        h += "Authorization: %s\r\n" % auth
    return (h + "\r\n").encode()


# --- the body before authentication ------------------------------------------------------

def test_unauthenticated_upload_is_answered_on_its_headers(ingress):
    t0 = time.time()
    s, status, headers, body = raw_request(ingress.port, upload_head(60 * MiB), timeout=5)
    assert status == 401, (status, body)
    assert time.time() - t0 < 2
    assert headers["content-type"] == "application/problem+json"
    assert json.loads(body)["code"] == "unauthorized"
    assert headers.get("connection", "").lower() == "close"
    assert closed_within(s, 3)  # not waiting for the 60 MiB announced
    s.close()


def test_wrong_key_upload_is_answered_on_its_headers(ingress):
    bad = "Basic " + base64.b64encode(b"ksk_" + secrets.token_urlsafe(32).encode() + b":").decode()
    s, status, _, body = raw_request(ingress.port, upload_head(60 * MiB, auth=bad), timeout=5)
    assert status == 401, body
    assert closed_within(s, 3)
    s.close()


def _push(port, n, sent, i):
    """Announces n bytes without credentials and pushes them until the server stops it."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(upload_head(n))
        chunk = b"x" * MiB
        while sent[i] < n:
            s.sendall(chunk)
            sent[i] += len(chunk)
    except OSError:
        pass


def test_ten_unauthenticated_uploads_cost_no_memory(ingress):
    rss0 = ingress.daemon.rss_kb()
    sent = [0] * 10
    peak = [rss0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], ingress.daemon.rss_kb())
            time.sleep(0.02)
    threading.Thread(target=sample, daemon=True).start()
    ts = [threading.Thread(target=_push, args=(ingress.port, 60 * MiB, sent, i)) for i in range(10)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    done.set()
    # what the kernel's socket buffers took is all that left each client
    assert max(sent) < 16 * MiB, sent
    assert peak[0] - rss0 < 40 * 1024, (rss0, peak[0])
    assert ingress.request("GET", "/healthz").status == 200


def test_token_request_body_is_capped_small(ingress):
    body = json.dumps({"key_id": "key_x", "timestamp": 1, "nonce": "n" * 16,
                       "signature": "a" * 64, "pad": "p" * 5000}).encode()
    r = ingress.request("POST", "/v1/auth/token", raw=body)
    assert r.status == 413 and r.code == "body_too_large", r


def test_oversize_chunked_body_is_not_drained(ingress, partners):
    a, _ = partners
    s = socket.create_connection(("127.0.0.1", ingress.port), timeout=10)
    s.sendall(("POST /v1/payments HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
               "Authorization: %s\r\nIdempotency-Key: %s\r\nTransfer-Encoding: chunked\r\n\r\n"
               % (a.basic(), new_key())).encode())
    chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"
    sent = 0
    with pytest.raises(OSError):
        while sent < 64 * MiB:
            s.sendall(chunk)
            sent += 0x10000
    assert sent < 16 * MiB, sent  # the connection went soon after the 64 KiB cap
    s.close()


# --- slowloris -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def strict():
    ing = start_ingress({"KASIR_HTTP_REQUEST_TIMEOUT": "2s", "KASIR_HTTP_IDLE_TIMEOUT": "3s",
                         "KASIR_HTTP_PER_IP_CONNECTIONS": "20"})
    yield ing
    ing.daemon.term()


def test_trickled_request_is_cut_at_its_deadline(strict):
    s = socket.create_connection(("127.0.0.1", strict.port), timeout=5)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
    t0 = time.time()
    cut = False
    while time.time() - t0 < 8:
        try:
            s.sendall(b"X")  # a byte every 0.4 s: an idle timeout never fires
        except OSError:
            cut = True
            break
        if closed_within(s, 0.4):
            cut = True
            break
        s.setblocking(True)
    assert cut, "a request trickled for 8 s was not cut (request timeout 2 s)"
    assert time.time() - t0 < 4.5
    s.close()


def test_silent_connection_is_closed_at_the_idle_timeout(strict):
    s = socket.create_connection(("127.0.0.1", strict.port), timeout=5)
    t0 = time.time()
    assert closed_within(s, 6)
    assert 2 < time.time() - t0 < 5
    s.close()


def test_keep_alive_connection_survives_between_quick_requests(strict):
    c = http.client.HTTPConnection("127.0.0.1", strict.port, timeout=5)
    for _ in range(6):  # 6 x 0.5 s: longer than the request timeout, each request quick
        c.request("GET", "/healthz")
        r = c.getresponse()
        r.read()
        assert r.status == 200
        time.sleep(0.5)
    c.close()


def test_connections_per_address_are_limited(strict):
    socks = []
    for _ in range(60):
        s = socket.create_connection(("127.0.0.1", strict.port), timeout=5,
                                     source_address=("127.0.0.5", 0))
        s.sendall(b"GET /heal")
        socks.append(s)
    time.sleep(1)
    still_open = [s for s in socks if not closed_within(s, 0.01)]
    assert len(still_open) <= 20, len(still_open)
    # another address is served meanwhile
    assert strict.request("GET", "/healthz").status == 200
    for s in socks:
        s.close()


def test_connection_cap_stays_below_the_descriptor_limit():
    ing = start_ingress({"KASIR_HTTP_MAX_CONNECTIONS": "100000"}, nofile=512)
    a = Partner("cap-" + new_key()[-6:])
    keep = http.client.HTTPConnection("127.0.0.1", ing.port, timeout=10)
    socks = []
    try:
        keep.request("GET", "/v1/payments?ids=pay_x", headers={"Authorization": a.basic()})
        assert keep.getresponse().read() and True
        for i in range(600):
            try:
                s = socket.create_connection(("127.0.0.1", ing.port), timeout=2,
                                             source_address=("127.0.0.%d" % (20 + i // 200), 0))
                s.sendall(b"GET /heal")
                socks.append(s)
            except OSError:
                break
        time.sleep(1)
        # cap = 512 - 256 descriptors for the process's own: the rest wait in the backlog
        assert ing.metric("kasir_ingress_connections") <= 256
        assert ing.admin("/healthz")[0] == 200
        assert ing.admin("/readyz")[0] == 200
        # an open keep-alive connection still does its work (PostgreSQL, Kafka)
        keep.request("POST", "/v1/payments", body=json.dumps(payment_body()),
                     headers={"Authorization": a.basic(), "Idempotency-Key": new_key(),
                              "Content-Type": "application/json"})
        r = keep.getresponse()
        assert r.status == 202, r.read()
        r.read()
        assert "Too many open files" not in open(ing.daemon.log_path).read()
    finally:
        for s in socks:
            s.close()
        keep.close()
        assert ing.daemon.term() == 0


# --- no PostgreSQL on a server thread -------------------------------------------------------

def _random_basic():
    return "Basic " + base64.b64encode(("ksk_" + secrets.token_urlsafe(32) + ":").encode()).decode()


def test_hung_postgresql_never_blocks_the_server_threads():
    proxy = PgProxy()
    ing = start_ingress({"KASIR_PG_DSN": proxy.dsn(), "KASIR_AUTH_TIMEOUT": "1s",
                         "KASIR_READERS_READ_TIMEOUT": "2s"})
    a = Partner("hang-" + new_key()[-6:])
    try:
        assert ing.request("GET", "/v1/payments?ids=pay_x", auth=a).status == 200  # cached now
        proxy.freeze()
        pool = concurrent.futures.ThreadPoolExecutor(8)
        t0 = time.time()
        futs = [pool.submit(ing.request, "GET", "/v1/payments?ids=pay_x", auth=_random_basic(),
                            timeout=20) for _ in range(2)]
        futs += [pool.submit(ing.request, "GET", "/v1/payments/pay_x", auth=a, timeout=20)
                 for _ in range(2)]
        futs += [pool.submit(ing.request, "POST", "/v1/auth/token", a.sign_token_request(),
                             timeout=20)]
        worst = 0
        while time.time() - t0 < 3:
            h0 = time.time()
            assert ing.request("GET", "/healthz", timeout=5).status == 200
            worst = max(worst, time.time() - h0)
            time.sleep(0.1)
        assert worst < 0.5, worst
        for f in futs:
            r = f.result(timeout=10)
            assert r.status == 503 and r.code == "unavailable", r
        proxy.thaw()
        deadline = time.time() + 10
        while True:
            r = ing.request("GET", "/v1/payments/pay_x", auth=a)
            if r.status == 404 or time.time() > deadline:
                break
            time.sleep(0.2)
        assert r.status == 404, r
    finally:
        proxy.thaw()
        ing.daemon.term()
        proxy.close()


def test_address_limit_before_authentication():
    ing = start_ingress({"KASIR_AUTH_IP_RPS": "5", "KASIR_AUTH_IP_BURST": "10"})
    a = Partner("iplim-" + new_key()[-6:])
    try:
        assert ing.request("GET", "/v1/payments?ids=pay_x", auth=a).status == 200
        before = ing.metric("kasir_ingress_auth_lookups_total")
        codes = [ing.request("GET", "/v1/payments?ids=pay_x", auth=_random_basic(),
                             source="127.0.0.7") for _ in range(40)]
        limited = [r for r in codes if r.status == 429]
        assert len(limited) >= 25, [r.status for r in codes]
        assert limited[0].code == "rate_limited" and int(limited[0].headers["retry-after"]) >= 1
        assert ing.metric("kasir_ingress_auth_lookups_total") - before <= 15
        # token requests from that address too
        r = ing.request("POST", "/v1/auth/token", a.sign_token_request(), source="127.0.0.7")
        assert r.status == 429, r
        # a known, cached key from elsewhere is not affected
        assert ing.request("GET", "/v1/payments?ids=pay_x", auth=a).status == 200
    finally:
        ing.daemon.term()


def test_token_requests_are_limited_and_nonces_bounded():
    ing = start_ingress({"KASIR_AUTH_NONCE_MAX": "5", "KASIR_AUTH_TOKEN_RPS": "1000"})
    a = Partner("nonce-" + new_key()[-6:])
    try:
        got = [ing.request("POST", "/v1/auth/token", a.sign_token_request()).status
               for _ in range(8)]
        assert got[:5] == [200] * 5 and all(s == 429 for s in got[5:]), got
    finally:
        ing.daemon.term()
    ing = start_ingress({"KASIR_AUTH_TOKEN_RPS": "2"})
    try:
        got = [ing.request("POST", "/v1/auth/token", a.sign_token_request()).status
               for _ in range(12)]
        assert got.count(429) >= 6 and got.count(200) >= 3, got
    finally:
        ing.daemon.term()
