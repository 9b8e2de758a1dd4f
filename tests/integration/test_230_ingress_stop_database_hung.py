"""230: SIGTERM while the database hangs (connections open, nothing answered) with a
payment's rows still to be written: the ingress exits within its drain timeout, status 1
and an error line, instead of waiting for its writer forever (before: still alive long after
the signal, its main thread joining a writer blocked in the finish's statement).

What the writer held is the rows of a payment already answered 202; they are written by
kasir-risk from the event, as after kill -9 (test 225)."""
import signal
import subprocess
import time

from ingress_util import PgProxy, Partner, TableLock, new_key, payment_body, start_ingress


def test_sigterm_while_the_database_hangs_exits_within_the_drain_timeout():
    px = PgProxy()
    ing = start_ingress({"KASIR_PG_DSN": px.dsn(), "KASIR_HTTP_DRAIN_TIMEOUT": "3s"})
    try:
        a = Partner("t230-a")
        lock = TableLock()  # the finish waits for it: the rows stay behind the 202
        try:
            r = ing.pay(a, payment_body(), key=new_key(), timeout=4)
            assert r.status == 202, r
            px.freeze()
            t0 = time.time()
            ing.daemon.proc.send_signal(signal.SIGTERM)
            try:
                rc = ing.daemon.proc.wait(15)
            except subprocess.TimeoutExpired:
                rc = None
            took = time.time() - t0
        finally:
            px.thaw()
            lock.release()
        assert rc == 1, (rc, took)
        assert took < 10, took
        assert "did not stop in time" in ing.daemon.log_tail(20), ing.daemon.log_tail(20)
    finally:
        ing.daemon.kill9()
        px.close()


def test_sigterm_with_a_zero_drain_timeout_on_a_healthy_database_exits_0():
    """http.drain_timeout 0 is a valid setting: the store's threads still get the 5 s floor
    to notice the stop (they nap 100 ms, the broker check takes up to 1 s), so a clean stop
    is exit 0, not a false 'did not stop in time' (the first version of this bound)."""
    ing = start_ingress({"KASIR_HTTP_DRAIN_TIMEOUT": "0"})
    try:
        r = ing.pay(Partner("t230-b"), payment_body(), key=new_key())
        assert r.status == 202, r
        assert ing.daemon.term() == 0, ing.daemon.log_tail(5)
        assert "did not stop in time" not in ing.daemon.log_tail(20)
    finally:
        ing.daemon.kill9()
