"""225: a payment is answered once Kafka confirmed its event; its rows are kasir-risk's to
write, from the event (issue 12's latency: the 202 waits for no second group commit, and
since session 29 the ingress writes no rows of a payment at all).

The payment's 202 is stored by its claim's commit, before anything is published, so
sending it at the delivery report can never disagree with a replay. What must hold, with
the rows held back by a lock on `payments` (kasir-risk's insert blocks on it, the claim's
checkout probe does not):
- the 202 arrives while the rows cannot be written;
- a read of the payment on this instance waits for its rows instead of answering 404,
  and answers 200 once they are written; a list read likewise;
- a retry of the key while the rows are held back waits for them on this instance (its
  claim found the record in flight; it is claimed again at doubling intervals), then is the stored
  202 byte for byte, a replay;
- kill -9 right after the 202: the payment is not lost; its rows come from risk, and a
  retry of the key on a new ingress replays the 202;
- a refund of one of its orders, whose claim finds no order row yet, is claimed again
  until the row is there (then: not captured), not answered 404;
- rows held back longer than a second: the retry is answered 409 after about a second,
  not held for as long as the rows."""
import threading
import time

import pytest

from conftest import psql, psql_one
from ingress_util import (Partner, TableLock, in_thread, new_key, payment_body, rows_written,
                          start_ingress)
from runtime_util import wait_until

# the payments' rows are kasir-risk's to write (conftest.payment_rows)
pytestmark = pytest.mark.usefixtures("payment_rows")


def _rows(pid):
    return int(psql_one("SELECT count(*) FROM payments WHERE payment_id = '%s'" % pid))


def test_answer_before_rows_reads_wait_and_replay():
    ing = start_ingress()
    try:
        partner = Partner("t225-a")
        body, key = payment_body(n=2), new_key()
        lock = TableLock()
        try:
            t0 = time.time()
            r = ing.pay(partner, body, key=key, timeout=4)
            took = time.time() - t0
            assert r.status == 202, r
            assert took < 3, took
            pid = r.json()["payment_id"]
            # behind the answer: nothing written yet, the payment is not lost for it
            assert _rows(pid) == 0
            got, listed = [], []
            t_get = in_thread(lambda: ing.request("GET", "/v1/payments/" + pid, auth=partner,
                                                  timeout=20), got)
            t_list = in_thread(lambda: ing.request("GET", "/v1/payments?ids=" + pid,
                                                   auth=partner, timeout=20), listed)
            again = []
            t_again = threading.Thread(
                target=lambda: again.append(ing.pay(partner, body, key=key, timeout=20)))
            t_again.start()
            time.sleep(0.3)
            # the reads and the retry wait for the rows
            assert not got and not listed and not again, (got, listed, again)
        finally:
            lock.release()
        for t in (t_get, t_list, t_again):
            t.join(20)
        # the retry: claimed again once the rows were written, so a replay of the 202
        assert again[0].status == 202 and again[0].body == r.body, again
        assert again[0].headers.get("idempotent-replayed") == "true"
        g, waited = got[0]
        assert g.status == 200, g
        assert waited >= 0.25, waited
        assert g.json()["payment_id"] == pid
        assert len(g.json()["payment_orders"]) == 2
        lst = listed[0][0]
        assert lst.status == 200, lst
        assert [p["payment_id"] for p in lst.json()["payments"]] == [pid]
        assert lst.json()["not_found"] == []
        assert _rows(pid) == 1
        # the replay: the stored 202, byte for byte
        rep = ing.pay(partner, body, key=key, timeout=5)
        assert rep.status == 202 and rep.body == r.body, (rep, r)
        # nothing was left waiting
        assert ing.daemon.term() == 0
    finally:
        if ing.daemon.proc.poll() is None:
            ing.daemon.kill9()


def test_kill9_after_the_answer_then_risk_writes_the_rows():
    """The ingress answers, then dies: risk, reading the event, writes the rows (approved:
    NOT_STARTED, with the orders), and a retry of the key on a new ingress replays the 202
    byte for byte."""
    ing = start_ingress()
    partner = Partner("t225-b")
    body = payment_body(n=2)
    key = new_key()
    lock = TableLock()
    try:
        r = ing.pay(partner, body, key=key, timeout=4)
        assert r.status == 202, r
        pid = r.json()["payment_id"]
        ing.daemon.kill9()
        time.sleep(0.3)
        assert _rows(pid) == 0
        assert psql_one("SELECT state FROM idempotency_keys WHERE resource_id = '%s'" % pid) \
            == "in_flight"
    finally:
        lock.release()
    wait_until(lambda: _rows(pid) == 1, timeout=60, what="risk writing the rows")
    assert psql("SELECT status, checkout_id, buyer_id FROM payments WHERE payment_id = '%s'"
                % pid) == [["NOT_STARTED", body["checkout_id"], body["buyer"]["id"]]]
    assert sorted(psql("SELECT order_id, amount_minor, status FROM payment_orders "
                       "WHERE payment_id = '%s'" % pid)) == sorted(
        [[o["payment_order_id"], "15000000", "NOT_STARTED"] for o in r.json()["payment_orders"]])
    # the retry of the key, on a new ingress: the stored 202, byte for byte
    ing2 = start_ingress()
    try:
        again = ing2.pay(partner, body, key=key, timeout=10)
        assert again.status == 202 and again.body == r.body, again
        assert again.headers.get("idempotent-replayed") == "true"
    finally:
        ing2.daemon.term()


def _risk_waits_for_the_lock():
    wait_until(lambda: psql_one(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND usename = 'kasir_risk'") == "1", timeout=10, what="risk waiting for the lock")


def test_refund_claimed_until_its_order_is_written():
    """A refund of an order whose payment this instance just answered, while risk's insert
    of the rows waits for a lock: the refund's claim finds no order row, is parked and
    claimed again until the row is there, then answered as it finds the order (not
    captured), never 404 for an order that exists."""
    ing = start_ingress()
    partner = Partner("t225-c")
    try:
        lock = TableLock()
        try:
            r = ing.pay(partner, payment_body(), key=new_key(), timeout=4)
            assert r.status == 202, r
            oid = r.json()["payment_orders"][0]["payment_order_id"]
            _risk_waits_for_the_lock()
            got = []
            t = in_thread(lambda: ing.request(
                "POST", "/v1/refunds", {"payment_order_id": oid, "amount": "1000.00",
                                        "currency": "IDR"},
                auth=partner, headers={"Idempotency-Key": new_key()}, timeout=30), got)
            time.sleep(0.4)
            assert not got, got  # parked: claimed again at doubling intervals
        finally:
            lock.release()  # risk writes the rows now
        t.join(30)
        ref, waited = got[0]
        assert ref.status == 409 and ref.code == "refund_not_captured", ref
        assert 0.35 <= waited < 1.5, waited
    finally:
        ing.daemon.term()


def test_a_retry_does_not_hang_on_rows_that_take_long():
    """Rows held back for 3 s: a retry of the key parked on them is answered after about a
    second as it finds the record (409, in flight), not held for as long as the rows."""
    ing = start_ingress()
    partner = Partner("t225-d")
    body, key = payment_body(), new_key()
    try:
        lock = TableLock()
        try:
            r = ing.pay(partner, body, key=key, timeout=4)
            t202 = time.time()
            assert r.status == 202, r
            _risk_waits_for_the_lock()
            again = ing.pay(partner, body, key=key, timeout=10)
            took = time.time() - t202
            assert again.status == 409 and again.code == "request_in_progress", again
            assert int(again.headers["retry-after"]) >= 1
            # parked until a second after the 202, the rows held back all along
            assert 0.9 <= took < 2, took
        finally:
            lock.release()
        rows_written(r.json()["payment_id"])
        rep = ing.pay(partner, body, key=key, timeout=5)
        assert rep.status == 202 and rep.body == r.body, rep
    finally:
        assert ing.daemon.term() == 0
