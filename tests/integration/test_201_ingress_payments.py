"""201: payments through the ingress: accept, read, idempotency (replay, 422, 409),
checkout dedup, and 50 concurrent identical requests giving exactly one event."""
import base64
import concurrent.futures
import json
import time

from ingress_util import (count_in_kafka, ingress, new_key, now_ms, partners,  # noqa: F401
                          payment_body, raw_request)


def test_accept_then_read_not_started(ingress, partners):
    a, _ = partners
    t0 = now_ms()
    for method in ("card", "virtual_account", "qris", "ewallet", "bank_transfer"):
        r = ingress.pay(a, payment_body(method), key=new_key())
        assert r.status == 202, r
        j = r.json()
        assert j["status"] == "NOT_STARTED" and j["payment_id"].startswith("pay_")
        assert j["trace_id"] == r.headers["x-trace-id"]
        g = ingress.request("GET", "/v1/payments/" + j["payment_id"], auth=a)
        assert g.status == 200, g
        gj = g.json()
        assert gj["status"] == "NOT_STARTED"
        assert gj["payment_orders"][0]["status"] == "NOT_STARTED"
        assert gj["payment_orders"][0]["amount"] == "150000.00"
        assert gj["payment_orders"][0]["method"] == method
        assert count_in_kafka("kasir.payments.requested", j["payment_id"], t0) == 1


def test_replay_is_byte_identical(ingress, partners):
    a, _ = partners
    key, body = new_key(), payment_body(n=2)
    r1 = ingress.pay(a, body, key=key)
    assert r1.status == 202, r1
    r2 = ingress.pay(a, body, key=key)
    assert r2.status == 202 and r2.body == r1.body
    assert r2.headers.get("idempotent-replayed") == "true"
    # the key in the body works the same, and must agree with the header
    body2 = dict(body, idempotency_key=key)
    r3 = ingress.pay(a, body2, key=None)
    assert r3.status == 202 and r3.body == r1.body, r3  # the key is not part of the request
    r4 = ingress.pay(a, dict(body2, checkout_id="other"), key=None)
    assert r4.status == 422 and r4.code == "idempotency_key_reused", r4


def test_same_key_other_body_is_422(ingress, partners):
    a, _ = partners
    key, body = new_key(), payment_body()
    assert ingress.pay(a, body, key=key).status == 202
    other = dict(body)
    other["payment_orders"] = [dict(body["payment_orders"][0], amount="150001.00")]
    r = ingress.pay(a, other, key=key)
    assert r.status == 422 and r.code == "idempotency_key_reused", r


def test_body_key_and_header_must_agree(ingress, partners):
    a, _ = partners
    body = payment_body(idempotency_key=new_key())
    r = ingress.pay(a, body, key=new_key())
    assert r.status == 400 and r.code == "idempotency_key_mismatch", r
    r = ingress.pay(a, body, key=None)
    assert r.status == 202, r


def test_checkout_id_dedups(ingress, partners):
    a, b = partners
    body = payment_body()
    r1 = ingress.pay(a, body, key=new_key())
    assert r1.status == 202
    r2 = ingress.pay(a, body, key=new_key())
    assert r2.status == 409 and r2.code == "duplicate_checkout", r2
    assert r2.json()["payment_id"] == r1.json()["payment_id"]
    # checkout ids are per partner
    assert ingress.pay(b, body, key=new_key()).status == 202


def test_fifty_concurrent_identical_requests_one_event(ingress, partners):
    a, _ = partners
    key, body = new_key(), payment_body()
    t0 = now_ms()
    with concurrent.futures.ThreadPoolExecutor(50) as ex:
        rs = list(ex.map(lambda _: ingress.pay(a, body, key=key), range(50)))
    ok = [r for r in rs if r.status == 202]
    assert ok, rs
    assert all(r.status in (202, 409) for r in rs), [r.status for r in rs]
    assert all(r.code == "request_in_progress" and r.headers.get("retry-after")
               for r in rs if r.status == 409)
    pid = ok[0].json()["payment_id"]
    assert all(r.body == ok[0].body for r in ok)  # the first answer or its replay
    time.sleep(0.5)
    assert count_in_kafka("kasir.payments.requested", pid, t0) == 1
    # the key sent downstream is a hash, never the raw key
    assert count_in_kafka("kasir.payments.requested", key, t0) == 0


def test_batch_status(ingress, partners):
    a, b = partners
    ids = [ingress.pay(a, payment_body(), key=new_key()).json()["payment_id"] for _ in range(3)]
    other = ingress.pay(b, payment_body(), key=new_key()).json()["payment_id"]
    r = ingress.request("GET", "/v1/payments?ids=" + ",".join(ids + [other]), auth=a)
    assert r.status == 200, r
    j = r.json()
    assert sorted(p["payment_id"] for p in j["payments"]) == sorted(ids)
    assert j["not_found"] == [other]


def test_nul_escape_does_not_end_an_id(ingress, partners):
    """libmicrohttpd decoded a %00 in a path or a query argument to a NUL, which ended the
    id: GET /v1/payments/pay_x%00anything answered for pay_x. It decodes to C0 80 now
    (lib/httpd.h), which no id holds: 404, and 400 naming the argument."""
    a, _ = partners
    pid = ingress.pay(a, payment_body(), key=new_key()).json()["payment_id"]
    assert ingress.request("GET", "/v1/payments/" + pid, auth=a).status == 200
    r = ingress.request("GET", "/v1/payments/%s%%00anything" % pid, auth=a)
    assert r.status == 404, r
    assert r.json()["code"] == "route_not_found" and r.json()["field"] == "path", r
    r = ingress.request("GET", "/v1/payments/%s%%00" % pid, auth=a)
    assert r.status == 404, r
    r = ingress.request("GET", "/v1/payments?ids=%s%%00x" % pid, auth=a)
    assert r.status == 400 and r.json()["code"] == "query_invalid", r
    assert r.json()["field"] == "ids", r
    # other escapes are still decoded: %5F is "_"
    r = ingress.request("GET", "/v1/payments/" + pid.replace("_", "%5F", 1), auth=a)
    assert r.status == 200 and r.json()["payment_id"] == pid, r



def test_raw_nul_in_the_request_line_stays_in_the_partner(ingress, partners):
    """A NUL byte sent as such in the request target (not as %00) still ends the target in
    libmicrohttpd 0.9.75, which hands the handler a C string and no length
    (docs/ARCHITECTURE.md, "Ingress"). What must hold whatever the library does with it: it
    never reaches another partner's payment (a library that refuses it answers 400 itself)."""
    a, b = partners
    pid_b = ingress.pay(b, payment_body(), key=new_key()).json()["payment_id"]
    head = ("GET /v1/payments/%s\x00y HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: %s\r\n"
            "Connection: close\r\n\r\n" % (pid_b, a.basic())).encode("latin-1")
    s, status, _, body = raw_request(ingress.port, head)
    s.close()
    assert status in (400, 404) and pid_b.encode() not in body, (status, body)


def test_path_or_argument_not_utf8_is_refused_as_input(ingress, partners):
    """A path or query argument that is not UTF-8 text (%FF, or %00, which decodes to C0 80:
    lib/httpd.h) reached PostgreSQL in the admin endpoints, which refused the statement: a
    503 "unavailable" with Retry-After, as if the database were down. It is the caller's
    input: 404 for a path, 400 naming the argument."""
    from ingress_util import cli
    a, _ = partners
    key = cli("key", "add", a.partner_id, "--scopes", "admin")["api_key"]
    admin = "Basic " + base64.b64encode((key + ":").encode()).decode()
    assert ingress.request("GET", "/v1/admin/holds?after=x", auth=admin).status == 200
    for esc in ("%00", "%FF", "%C3"):
        r = ingress.request("GET", "/v1/admin/holds?after=x%sy" % esc, auth=admin)
        assert r.status == 400 and r.json()["code"] == "query_invalid", (esc, r)
        assert r.json()["field"] == "after", r
        r = ingress.request("GET", "/v1/admin/adjustments?after=x%sy" % esc, auth=admin)
        assert r.status == 400 and r.json()["field"] == "after", (esc, r)
        for path in ("/v1/admin/holds/hold_x%sy/approve", "/v1/admin/adjustments/adj_x%sy/reject",
                     "/v1/admin/payouts/po_x%sy/retry"):
            r = ingress.request("POST", path % esc, {"reason": "r"}, auth=admin)
            assert r.status == 404, (path, esc, r)
        # an argument whose name is not text is named as "query"
        r = ingress.request("GET", "/v1/payments?ids=pay_1&x%sy=1" % esc, auth=a)
        assert r.status == 400 and r.json()["field"] == "query", (esc, r)
    # an empty name did not stop the scan before the arguments after it; a bad argument
    # named "path" is an argument, not the path
    r = ingress.request("GET", "/v1/admin/holds?=%FF&after=x%00", auth=admin)
    assert r.status == 400 and r.json()["field"] == "query", r
    r = ingress.request("GET", "/v1/admin/holds?=ok&after=x%00", auth=admin)
    assert r.status == 400 and r.json()["field"] == "after", r
    r = ingress.request("GET", "/v1/admin/holds?path=%FF", auth=admin)
    assert r.status == 400 and r.json()["code"] == "query_invalid", r
    assert r.json()["field"] == "path", r
    # every refusal of the headers keeps its place: 405 for a method, 401 without
    # credentials, 403 without the scope, whatever the path or arguments hold
    r = ingress.request("DELETE", "/v1/payments?x=%FF", auth=a)
    assert r.status == 405, r
    r = ingress.request("DELETE", "/v1/payments/%FF", auth=a)
    assert r.status == 405, r
    r = ingress.request("GET", "/v1/payments?ids=%FF")
    assert r.status == 401, r
    r = ingress.request("GET", "/v1/payments/%FF")
    assert r.status == 401, r
    r = ingress.request("GET", "/v1/admin/holds?after=%FF", auth=a)
    assert r.status == 403, r
    # a path that matches no endpoint names the path too
    r = ingress.request("GET", "/v1/%FF", auth=a)
    assert r.status == 404 and r.json()["field"] == "path", r
    r = ingress.request("GET", "/v1/payments?ids=pay_1%C3%A9", auth=a)  # UTF-8: its own rule
    assert r.status == 400 and r.json()["field"] == "ids", r
