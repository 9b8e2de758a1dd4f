"""218: what the ingress publishes carries exactly the headers lib/README.md lists for
"every message" (kasir.message_id, kasir.producer, traceparent), under those names, and
kasir.message_id is the event's own message_id: a worker reading the header (the runtime's
first choice) and one reading the payload agree, so a republished event dedups downstream.
Before this test the ingress wrote `message_id` and `producer`, which no worker reads."""
import json
import os
import re
import subprocess

from conftest import TOP
from ingress_util import ingress, kafka_headers, new_key, now_ms, partners, payment_body  # noqa: F401


def readme_every_message_headers():
    with open(os.path.join(TOP, "lib", "README.md")) as f:
        rows = re.findall(r"^\| `([a-z._]+)` \| every message \|", f.read(), re.M)
    return set(rows)


def test_payment_event_headers_are_the_documented_ones(ingress, partners):
    a, _ = partners
    expected = readme_every_message_headers()
    assert expected == {"kasir.message_id", "kasir.producer", "traceparent"}, expected
    t0 = now_ms()
    r = ingress.pay(a, payment_body(), key=new_key())
    assert r.status == 202, r
    pid = r.json()["payment_id"]
    hs = kafka_headers("kasir.payments.requested", pid, t0)
    assert len(hs) == 1, hs
    h = hs[0]
    assert set(h) == expected, h
    assert h["kasir.producer"] == "kasir-ingress"
    assert re.fullmatch(r"00-%s-[0-9a-f]{16}-01" % r.json()["trace_id"], h["traceparent"]), h
    # the header is the payload's message_id (decoded by kasir-tap, the catalogue's reader)
    out = subprocess.run([os.path.join(TOP, "build", "bin", "kasir-tap"), "--from", str(t0),
                          "--field", "payment_id=" + pid, "--value-only",
                          "kasir.payments.requested"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    events = [json.loads(l) for l in out.stdout.splitlines()]
    assert len(events) == 1, out.stdout[-500:]
    assert events[0]["message_id"] == h["kasir.message_id"], (events[0], h)
