"""210: the group commit's plain insert of claims and its ON CONFLICT fallback (functions/ingress_batch.sql).

ingress_batch() inserts a batch's claims without ON CONFLICT and, on a unique violation,
rolls that attempt back and inserts them the way 207 did. The test makes that violation
happen inside a batch shared with unrelated payments, which must not notice: payments
with one checkout id under different keys, sent together (one writer, 100 ms of
gathering: they share batches, which the test checks). Without the fallback the whole
batch fails and every request in it gets a 503. (A payment has no finish since session
29: its rows are kasir-risk's, so the finish's fallback of before is gone with it.)"""
import concurrent.futures
import time

import pytest

from conftest import psql, psql_one
from ingress_util import (count_in_kafka, new_key, now_ms, Partner, payment_body, rows_written,
                          start_ingress)

# the payments' rows are kasir-risk's to write (conftest.payment_rows)
pytestmark = pytest.mark.usefixtures("payment_rows")


@pytest.fixture(scope="module")
def ing():
    d = start_ingress({"KASIR_STORE_WRITERS": "1", "KASIR_STORE_GATHER_US": "100000"})
    yield d
    d.daemon.term()


def batches(ing):
    for line in ing.admin("/metrics")[1].decode().splitlines():
        if line.startswith("kasir_ingress_store_batches_total"):
            return int(float(line.split()[-1]))
    raise AssertionError("no kasir_ingress_store_batches_total in /metrics")


def burst(ing, calls):
    """Sends every (partner, body, key) at once; the answers in the same order. The
    requests must have shared group commits, or the test would not test what it says."""
    b0 = batches(ing)
    with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
        futs = [pool.submit(ing.pay, p, b, key=k) for p, b, k in calls]
        rs = [f.result(timeout=30) for f in futs]
    # each request is in one claim batch and (if claimed) one finish batch
    assert batches(ing) - b0 < len(calls), "no two requests shared a batch"
    return rs


def test_same_checkout_under_other_keys_in_one_batch(ing):
    a = Partner("fb-claim-" + new_key()[-6:])
    t0 = now_ms()
    shared = payment_body()
    dupes = [(a, dict(shared, buyer={"id": "buyer-%d" % i}), new_key()) for i in range(6)]
    others = [(a, payment_body(), new_key()) for _ in range(6)]
    rs = burst(ing, dupes + others)
    got, rest = rs[:6], rs[6:]
    assert all(r.status == 202 for r in rest), rest
    won = [r for r in got if r.status == 202]
    assert len(won) == 1, got
    assert all(r.status == 409 and r.code in ("duplicate_checkout", "request_in_progress")
               for r in got if r.status != 202), got
    pid = won[0].json()["payment_id"]
    rows_written(pid, *[r.json()["payment_id"] for r in rest])
    assert psql_one("SELECT count(*) FROM payments WHERE partner_id = '%s' AND checkout_id = '%s'"
                    % (a.partner_id, shared["checkout_id"])) == "1"
    assert psql_one("SELECT payment_id FROM payments WHERE partner_id = '%s' "
                    "AND checkout_id = '%s'" % (a.partner_id, shared["checkout_id"])) == pid
    for r in rest:
        q = r.json()["payment_id"]
        assert psql_one("SELECT status FROM payments WHERE payment_id = '%s'" % q) == "NOT_STARTED"
    time.sleep(0.5)
    assert count_in_kafka("kasir.payments.requested", shared["checkout_id"], t0) == 1
