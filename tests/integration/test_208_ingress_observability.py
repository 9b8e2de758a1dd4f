"""208: /healthz, /readyz, /metrics, one JSON log line per request with its trace id, a
W3C traceparent honoured, and no API key or token in the log."""
import json
import time

from ingress_util import ingress, new_key, partners, payment_body  # noqa: F401


def test_health_ready_metrics(ingress, partners):
    a, _ = partners
    assert ingress.request("GET", "/healthz").status == 200
    assert ingress.admin("/healthz")[0] == 200
    st, body = ingress.admin("/readyz")
    assert st == 200 and json.loads(body) == {"status": "ready", "kafka": True, "postgresql": True}
    ingress.pay(a, payment_body(), key=new_key())
    ingress.pay(a, {"bad": 1}, key=new_key())
    m = ingress.admin("/metrics")[1].decode()
    assert 'kasir_ingress_requests_total{route="POST /v1/payments",code="202"}' in m
    assert 'kasir_ingress_requests_total{route="POST /v1/payments",code="400"}' in m
    assert 'kasir_ingress_request_duration_seconds_bucket{route="POST /v1/payments",le="+Inf"}' in m


def test_metrics_exposition_is_well_formed(ingress, partners):
    """Every name has one HELP/TYPE and its samples in one block (Prometheus refuses a
    name split in two), whatever order the label sets were first seen in: a 404 of a route
    first answered 202 long before, a 401 after the store's counters were created."""
    a, _ = partners
    ingress.pay(a, payment_body(), key=new_key())
    ingress.admin("/metrics")
    ingress.request("GET", "/v1/payments/pay_missing", auth=a)
    ingress.request("GET", "/v1/payments?ids=pay_x", auth="Basic bm9wZTo=")
    ingress.pay(a, {"bad": 1}, key=new_key())
    text = ingress.admin("/metrics")[1].decode()
    types, seen, last = {}, [], None
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert name not in types, "second TYPE line for " + name
            types[name] = kind
            continue
        if not line or line.startswith("#"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and types.get(name[: -len(suffix)]) == "histogram":
                name = name[: -len(suffix)]
        assert name in types, "sample without TYPE: " + line
        if name != last:
            assert name not in seen, "samples of %s split in two blocks" % name
            seen.append(name)
            last = name
        float(line.rsplit(" ", 1)[1])
    for code in ("202", "404", "400"):
        assert 'route="GET /v1/payments/{id}",code="404"' in text
        assert ('route="POST /v1/payments",code="%s"' % code in text) or code == "404"
    assert types["kasir_ingress_store_batch_seconds_total"] == "counter"
    assert types["kasir_ingress_connections"] == "gauge"


def test_request_log_and_trace(ingress, partners):
    a, _ = partners
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    r = ingress.pay(a, payment_body(), key=new_key(), headers={"traceparent": tp})
    assert r.status == 202 and r.headers["x-trace-id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    tok = ingress.request("POST", "/v1/auth/token", a.sign_token_request()).json()["access_token"]
    r2 = ingress.request("GET", "/v1/payments?ids=pay_x", auth="Bearer " + tok)
    time.sleep(0.3)
    lines = [json.loads(l) for l in open(ingress.daemon.log_path) if l.startswith("{")]
    mine = [l for l in lines if l.get("trace_id") == r.headers["x-trace-id"] and l["event"] == "ingress.request"]
    assert len(mine) == 1 and mine[0]["status"] == "202" and mine[0]["partner_id"] == a.partner_id
    assert any(l.get("trace_id") == r2.headers["x-trace-id"] for l in lines)
    text = open(ingress.daemon.log_path).read()
    assert a.api_key not in text and tok not in text and tok.split(".")[2] not in text
