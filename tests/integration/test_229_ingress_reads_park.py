"""229: a read of a payment whose rows kasir-risk has not written yet (test 225) waits for
them without holding a reader thread.

The ingress has readers.threads (2) threads for everything that reads PostgreSQL: credential
look-ups, token requests, reads. Before, a read of a payment answered on this instance
waited for its rows on a reader thread, for up to a second: a client polling its new
payment a few times while a commit was slow (here: a lock on `payments`) took every reader,
and every other partner's reads and credential look-ups queued behind it. Now such a read
that does not find the payment is parked and queued again at doubling intervals until it does (or
after the second, answered as it finds them), so:
- other reads and a cold credential look-up are answered at once while the reads wait;
- the waiting reads answer 200 with the payment once its rows are written, the list read
  and a refund's order look-up likewise;
- a read still waiting after a second is answered as it finds the rows (404), not held."""
import contextlib
import threading
import time

import pytest

from ingress_util import (Partner, PgProxy, TableLock, capture, in_thread, new_key,
                          payment_body, rows_written, start_ingress)

# the payments' rows are kasir-risk's to write (conftest.payment_rows)
pytestmark = pytest.mark.usefixtures("payment_rows")

READS = 6  # three times the reader threads


def _written_payment(ing, partner):
    """a payment of partner's whose rows are written; partner's key is cached after it"""
    first = ing.pay(partner, payment_body(), key=new_key())
    assert first.status == 202, first
    done = first.json()["payment_id"]
    rows_written(done)
    assert ing.request("GET", "/v1/payments/" + done, auth=partner).status == 200
    return done


def _timed_get(ing, partner, path, timeout):
    t0 = time.time()
    g = ing.request("GET", path, auth=partner, timeout=timeout)
    return g, time.time() - t0


def test_reads_waiting_for_rows_do_not_hold_the_readers():
    ing = start_ingress()
    try:
        a = Partner("t229-a")
        done = _written_payment(ing, a)
        lock = TableLock()
        try:
            r = ing.pay(a, payment_body(n=2), key=new_key(), timeout=4)
            assert r.status == 202, r
            pid = r.json()["payment_id"]
            oid = r.json()["payment_orders"][0]["payment_order_id"]
            got, threads = [], []
            for _ in range(READS):
                threads.append(in_thread(lambda: ing.request("GET", "/v1/payments/" + pid,
                                                             auth=a, timeout=20), got))
            listed = []
            threads.append(in_thread(lambda: ing.request("GET", "/v1/payments?ids=" + pid,
                                                         auth=a, timeout=20), listed))
            refund = []
            # amount without currency: the order's currency is read first (a reader job)
            threads.append(in_thread(lambda: ing.request(
                "POST", "/v1/refunds", {"payment_order_id": oid, "amount": "1000"}, auth=a,
                headers={"Idempotency-Key": "t229-refund-" + pid}, timeout=20), refund))
            time.sleep(0.3)
            assert not got and not listed and not refund, (got, listed, refund)
            # another payment of the same partner, and a partner whose key is not cached
            other, took_other = _timed_get(ing, a, "/v1/payments/" + done, 5)
            cold, took_cold = _timed_get(ing, Partner("t229-b"), "/v1/payments?ids=pay_t229_none",
                                         5)
            assert other.status == 200 and other.json()["payment_id"] == done, other
            assert cold.status == 200 and cold.json()["not_found"] == ["pay_t229_none"], cold
            # before: both queued behind the waiting reads (2 readers, 1 s each: ~1-3 s)
            assert took_other < 0.5, took_other
            assert took_cold < 0.5, took_cold
            # the waiting reads are still waiting, and were answered nothing meanwhile
            assert not got and not listed and not refund, (got, listed, refund)
        finally:
            lock.release()
        for t in threads:
            t.join(20)
        assert len(got) == READS, got
        for g, _ in got:
            assert g.status == 200, g
            assert g.json()["payment_id"] == pid
            assert len(g.json()["payment_orders"]) == 2
        lst = listed[0][0]
        assert lst.status == 200 and [p["payment_id"] for p in lst.json()["payments"]] == [pid]
        # the refund found its order (not 404): not captured yet, so 409
        assert refund[0][0].status == 409, refund
        assert refund[0][0].code == "refund_not_captured", refund
        # the refund of a captured order, to show the job ran to its claim as before
        capture(oid)
        ok = ing.request("POST", "/v1/refunds", {"payment_order_id": oid, "amount": "1000"},
                         auth=a, headers={"Idempotency-Key": "t229-refund2-" + pid})
        assert ok.status == 202 and ok.json()["currency"] == "IDR", ok
        assert ing.daemon.term() == 0
    finally:
        if ing.daemon.proc.poll() is None:
            ing.daemon.kill9()


def test_a_read_waits_a_second_at_most():
    """rows held back for longer than a second: the read is answered as it finds them (its
    payment not there yet: 404), within about the second, and the readers stayed free"""
    ing = start_ingress()
    try:
        a = Partner("t229-c")
        lock = TableLock()
        try:
            r = ing.pay(a, payment_body(), key=new_key(), timeout=4)
            assert r.status == 202, r
            pid = r.json()["payment_id"]
            g, took = _timed_get(ing, a, "/v1/payments/" + pid, 10)
            assert g.status == 404, g
            assert 0.8 <= took < 2.0, took
        finally:
            lock.release()
        rows_written(pid)
        g = ing.request("GET", "/v1/payments/" + pid, auth=a)
        assert g.status == 200 and g.json()["payment_id"] == pid, g
        assert ing.daemon.term() == 0
    finally:
        if ing.daemon.proc.poll() is None:
            ing.daemon.kill9()


def test_a_parked_read_keeps_its_second_while_the_database_hangs():
    """The database stops answering (a partition: connections open, nothing passes) while a
    read is parked on a payment's rows: the read is run again by the tick although the
    ingress's health check hangs in its SELECT 1, so it meets the frozen database and is
    answered 503 at its own deadline (readers.read_timeout, 5 s). Before, parked requests
    were let go only by the health thread between its checks: the read hung for as long as
    the database did (here 12 s), then found the rows."""
    px = PgProxy()
    ing = start_ingress({"KASIR_PG_DSN": px.dsn()})
    thaw = threading.Timer(12, px.thaw)
    try:
        a = Partner("t229-d")
        _written_payment(ing, a)  # its key cached
        lock = TableLock()  # the stack's own connection, not through the proxy
        try:
            r = ing.pay(a, payment_body(), key=new_key(), timeout=4)
            assert r.status == 202, r
            pid = r.json()["payment_id"]
            got = []
            t = in_thread(lambda: _timed_get(ing, a, "/v1/payments/" + pid, 30)[0], got)
            time.sleep(0.15)
            assert not got, got  # parked: its rows are held back
            px.freeze()
            thaw.start()
            t.join(30)
            g, took = got[0]
            assert g.status == 503, g
            assert 4.0 <= took < 7.0, took
        finally:
            thaw.cancel()
            px.thaw()
            lock.release()
    finally:
        ing.daemon.kill9()
        px.close()


def test_only_what_is_asked_for_waits():
    """A payment read names payment ids, a refund an order id: a read of a fresh payment's
    order id as a payment, a list with one among real ids, and a refund naming a fresh
    payment's id as its order find nothing to wait for and are answered at once (404, the
    list, 404), not parked for a second (before: any id of the payment matched, and each
    ran again every 10 ms for the whole second)."""
    with _stopped_cleanly(start_ingress()) as ing, _held_payment(ing, "t229-g") as (a, r, done):
        pid = r.json()["payment_id"]
        oid = r.json()["payment_orders"][0]["payment_order_id"]
        g, took = _timed_get(ing, a, "/v1/payments/" + oid, 10)
        assert g.status == 404 and took < 0.7, (g, took)
        g, took = _timed_get(ing, a, "/v1/payments?ids=%s,%s" % (done, oid), 10)
        assert g.status == 200 and g.json()["not_found"] == [oid] and took < 0.7, (g, took)
        t0 = time.time()
        ref = ing.request("POST", "/v1/refunds", {"payment_order_id": pid, "amount": "1000.00",
                                                  "currency": "IDR"},
                          auth=a, headers={"Idempotency-Key": new_key()}, timeout=10)
        took = time.time() - t0
        assert ref.status == 404 and took < 0.7, (ref, took)


def test_a_parked_read_runs_a_dozen_times_in_its_second():
    """A read whose payment's rows are held back for its whole second runs again at doubling
    intervals (8 ms up to 128 ms), about a dozen times, not every 10 ms (a hundred queries
    for one request, the readers crowded when kasir-risk lags)."""
    with _stopped_cleanly(start_ingress()) as ing, _held_payment(ing, "t229-h") as (a, r, _):
        before = ing.metric("kasir_ingress_parked_runs_total")
        g, took = _timed_get(ing, a, "/v1/payments/" + r.json()["payment_id"], 10)
        assert g.status == 404 and 0.8 <= took < 2.0, (g, took)
        runs = ing.metric("kasir_ingress_parked_runs_total") - before
        assert 5 <= runs <= 15, runs
        assert ing.metric("kasir_ingress_parked_requests") == 0


@contextlib.contextmanager
def _stopped_cleanly(ing):
    """ing, which must then stop with exit 0 (killed if the test failed first)"""
    try:
        yield ing
        assert ing.daemon.term() == 0
    finally:
        if ing.daemon.proc.poll() is None:
            ing.daemon.kill9()


@contextlib.contextmanager
def _held_payment(ing, name):
    """(partner, the 202 of a payment whose rows are held back by a lock on payments, a
    payment of the partner's whose rows are written): the lock held until the end"""
    a = Partner(name)
    done = _written_payment(ing, a)
    lock = TableLock()
    try:
        r = ing.pay(a, payment_body(), key=new_key(), timeout=4)
        assert r.status == 202, r
        yield a, r, done
    finally:
        lock.release()


def test_parked_reads_let_go_at_once_do_not_refuse_others():
    """60 reads parked on one payment's rows (sent 4 at a time, so each finds room in the
    queue on its way to being parked), readers.queue_max 8: while the rows are held back
    the crowd runs again together (each read on a multiple of its interval, the intervals
    powers of two), and once more when they are written, each time going back to the
    readers all at once, ahead of the queue and outside its count, so another partner
    polling meanwhile is never refused (before: the count went past the limit and its
    reads were answered 503 while the crowd drained)."""
    ing = start_ingress({"KASIR_READERS_QUEUE_MAX": "8"})
    try:
        a, b = Partner("t229-e"), Partner("t229-f")
        ing.request("GET", "/v1/payments?ids=pay_t229_warm", auth=a)  # keys cached
        ing.request("GET", "/v1/payments?ids=pay_t229_warm", auth=b)
        polled, stop = [], threading.Event()

        def poll():
            while not stop.is_set():
                polled.append(ing.request("GET", "/v1/payments?ids=pay_t229_none", auth=b,
                                          timeout=10).status)
                time.sleep(0.01)
        lock = TableLock()
        try:
            r = ing.pay(a, payment_body(), key=new_key(), timeout=4)
            assert r.status == 202, r
            pid = r.json()["payment_id"]
            got, threads = [], []
            for i in range(60):
                threads.append(in_thread(lambda: ing.request("GET", "/v1/payments/" + pid,
                                                             auth=a, timeout=20), got))
                if i % 4 == 3:
                    time.sleep(0.02)  # 4 at a time: each is parked before the queue of 8 fills
            poller = threading.Thread(target=poll)
            poller.start()
            time.sleep(0.5)  # the crowd runs together a few times; the rows written well
            # within the first read's second
        finally:
            lock.release()
        for t in threads:
            t.join(20)
        time.sleep(0.5)
        stop.set()
        poller.join(10)
        assert len(got) == 60 and all(g.status == 200 for g, _ in got), \
            sorted(set(g.status for g, _ in got))
        assert polled and set(polled) == {200}, sorted(set(polled))
        assert ing.daemon.term() == 0
    finally:
        if ing.daemon.proc.poll() is None:
            ing.daemon.kill9()
