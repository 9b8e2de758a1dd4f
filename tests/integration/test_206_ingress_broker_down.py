"""206: broker down -> 503 with Retry-After and nothing accepted; once the broker is back
the same request (same Idempotency-Key) succeeds, and exactly one event exists."""
import os
import subprocess
import time

import pytest

from conftest import TOP, psql_one
from ingress_util import (count_in_kafka, new_key, now_ms, Partner, payment_body, rows_written,
                          start_ingress)

# the payments' rows are kasir-risk's to write (conftest.payment_rows)
pytestmark = pytest.mark.usefixtures("payment_rows")

STACK = os.path.join(TOP, "deploy", "local", "stack.sh")


def stack(cmd):
    subprocess.run(["bash", STACK, cmd], check=True, capture_output=True, timeout=180)


def test_broker_down_then_retry():
    ing = start_ingress()
    a = Partner("down-" + new_key()[-6:])
    try:
        assert ing.pay(a, payment_body(), key=new_key()).status == 202
        t0 = now_ms()
        key, body = new_key(), payment_body()
        stack("kafka-stop")
        try:
            seen = []
            for _ in range(2):  # once through the delivery report, once through /readyz
                r = ing.pay(a, body, key=key)
                seen.append(r.status)
                assert r.status == 503 and r.code == "unavailable", r
                assert int(r.headers["retry-after"]) >= 1
                time.sleep(3)
            # nothing recorded as accepted
            assert psql_one("SELECT count(*) FROM payments WHERE checkout_id = '%s' "
                            "AND status <> 'PENDING_PUBLISH'" % body["checkout_id"]) == "0"
            assert ing.admin("/readyz")[0] == 503
        finally:
            stack("kafka-start")
        deadline = time.time() + 90
        while True:
            r = ing.pay(a, body, key=key)
            if r.status == 202 or time.time() > deadline:
                break
            assert r.status in (503, 409), r
            time.sleep(1)
        assert r.status == 202, r
        pid = r.json()["payment_id"]
        rows_written(pid, timeout=90)  # kasir-risk's, a consumer of the broker that came back
        assert ing.request("GET", "/v1/payments/" + pid, auth=a).json()["status"] == "NOT_STARTED"
        assert ing.pay(a, body, key=key).body == r.body
        time.sleep(1)
        # one payment for this checkout; an attempt that timed out may still have been
        # written (Kafka cannot say), and then it carries the same payment and message id
        n = count_in_kafka("kasir.payments.requested", pid, t0)
        assert n >= 1
        assert count_in_kafka("kasir.payments.requested", body["checkout_id"], t0) == n
    finally:
        ing.daemon.term()
