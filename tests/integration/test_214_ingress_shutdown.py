"""214: SIGTERM under keep-alive load (issue 12).

50 rounds: an ingress is started, keep-alive clients send payments and webhooks as fast as
they get answers, and the ingress gets SIGTERM in the middle of it. Every round must end
in a clean exit (status 0: no crash in the producer, no abort of the server library over
suspended connections), new work must be refused with 503 + Connection: close while the
ingress drains, and no request is lost: every 202 has its payment row and its event in
Kafka."""
import http.client
import json
import random
import signal
import threading
import time
import uuid

import pytest

from conftest import psql
from ingress_util import (Partner, kafka_since, new_key, now_ms, payment_body,  # noqa: F401
                          start_ingress)
from test_203_ingress_webhooks import std_sig

# the payments' rows are kasir-risk's to write (conftest.payment_rows)
pytestmark = pytest.mark.usefixtures("payment_rows")

ROUNDS = 50


def _pay_client(port, partner, stop, accepted, seen):
    c = None
    while not stop.is_set():
        try:
            if c is None:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            body = payment_body()
            c.request("POST", "/v1/payments", body=json.dumps(body),
                      headers={"Authorization": partner.basic(), "Idempotency-Key": new_key(),
                               "Content-Type": "application/json"})
            r = c.getresponse()
            data = r.read()
            seen.append(r.status)
            if r.status == 202:
                accepted.append((json.loads(data)["payment_id"], body["checkout_id"]))
            elif r.status == 503:
                assert r.getheader("Connection", "").lower() == "close", r.getheaders()
                assert r.getheader("Content-Type") == "application/problem+json"
            if (r.getheader("Connection") or "").lower() == "close":
                c.close()
                c = None
        except (OSError, http.client.HTTPException):
            if c is not None:
                c.close()
            c = None
            time.sleep(0.01)


def _webhook_client(port, secret, stop, seen):
    c = None
    while not stop.is_set():
        try:
            if c is None:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            wid = "msg_" + uuid.uuid4().hex
            now = int(time.time())
            b = json.dumps({"type": "payment.succeeded", "id": wid}).encode()
            c.request("POST", "/v1/webhooks/sandbox", body=b, headers={
                "webhook-id": wid, "webhook-timestamp": str(now),
                "webhook-signature": std_sig(secret, wid, now, b)})
            r = c.getresponse()
            r.read()
            seen.append(r.status)
            if (r.getheader("Connection") or "").lower() == "close":
                c.close()
                c = None
        except (OSError, http.client.HTTPException):
            if c is not None:
                c.close()
            c = None
            time.sleep(0.01)


def test_sigterm_under_keep_alive_load_loses_nothing():
    p = Partner("term-" + uuid.uuid4().hex[:6])
    t0 = now_ms()
    accepted, seen, codes = [], [], []
    for i in range(ROUNDS):
        ing = start_ingress()
        stop = threading.Event()
        ts = [threading.Thread(target=_pay_client, args=(ing.port, p, stop, accepted, seen))
              for _ in range(6)]
        ts += [threading.Thread(target=_webhook_client,
                                args=(ing.port, ing.secrets["sandbox"], stop, seen))
               for _ in range(2)]
        for t in ts:
            t.start()
        time.sleep(random.uniform(0.2, 0.5))
        ing.daemon.proc.send_signal(signal.SIGTERM)
        try:
            rc = ing.daemon.proc.wait(40)
        finally:
            stop.set()
            for t in ts:
                t.join(20)
        codes.append(rc)
        if rc != 0:
            break
    assert codes == [0] * ROUNDS, (codes, ing.daemon.log_tail())
    assert len(accepted) > ROUNDS * 5, len(accepted)
    assert set(seen) <= {200, 202, 503}, set(seen)
    # every 202: its payment row and its event
    ids = [pid for pid, _ in accepted]
    rows = set()
    for i in range(0, len(ids), 500):
        rows |= {r[0] for r in psql("SELECT payment_id FROM payments WHERE payment_id IN (%s) "
                                    "AND status = 'NOT_STARTED'"
                                    % ",".join("'%s'" % x for x in ids[i:i + 500]))}
    assert rows == set(ids), len(set(ids) - rows)
    time.sleep(1)
    events = b"".join(v for _, v in kafka_since("kasir.payments.requested", t0, timeout=120))
    missing = [pid for pid in ids if pid.encode() not in events]
    assert not missing, (len(missing), missing[:5])
