"""225: a payment is answered once Kafka confirmed its event; its rows are written behind
the answer (issue 12's latency: the 202 no longer waits for a second group commit).

The payment's 202 is stored by its claim's commit, before anything is published, so
sending it at the delivery report can never disagree with a replay. What must still hold,
with the rows held back by a lock on `payments` (the finish blocks on it, the claim does
not):
- the 202 arrives while the rows cannot be written (before: the answer waited for them);
- a read of the payment on this instance waits for its rows instead of answering 404,
  and answers 200 once they are written; a list read likewise;
- a retry of the key while the rows are behind waits for them on this instance (its
  claim found the record in flight; it is claimed again after the rows), then is the
  stored 202 byte for byte, a replay;
- kill -9 while the rows are behind: nothing of the rows is written, the event is in
  Kafka with everything risk needs to write them (test 301: risk writes an approved
  payment's missing rows)."""
import json
import subprocess
import threading
import time

from conftest import PG_DSN, psql, psql_one
from ingress_util import (Partner, count_in_kafka, new_key, now_ms, payment_body,
                          start_ingress)


class TableLock:
    """An EXCLUSIVE lock on payments held by a psql session of its own: reads (the claim's
    checkout probe) go on, inserts (the finish) wait."""

    def __init__(self):
        self.p = subprocess.Popen(["psql", PG_DSN, "-qtAX", "-v", "ON_ERROR_STOP=1"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        self.p.stdin.write("BEGIN; LOCK TABLE payments IN EXCLUSIVE MODE; "
                           "SELECT 'locked';\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        assert "locked" in line, line

    def release(self):
        if self.p.poll() is None:
            self.p.stdin.write("ROLLBACK;\n")
            self.p.stdin.close()
            self.p.wait(timeout=10)


def _rows(pid):
    return int(psql_one("SELECT count(*) FROM payments WHERE payment_id = '%s'" % pid))


def _get_async(ing, partner, path, out):
    def run():
        t0 = time.time()
        r = ing.request("GET", path, auth=partner, timeout=20)
        out.append((r, time.time() - t0))
    t = threading.Thread(target=run)
    t.start()
    return t


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
            t_get = _get_async(ing, partner, "/v1/payments/" + pid, got)
            t_list = _get_async(ing, partner, "/v1/payments?ids=" + pid, listed)
            again = []
            t_again = threading.Thread(
                target=lambda: again.append(ing.pay(partner, body, key=key, timeout=20)))
            t_again.start()
            time.sleep(1.0)
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
        assert waited >= 0.9, waited
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


def test_kill9_with_rows_behind_leaves_the_event():
    ing = start_ingress()
    partner = Partner("t225-b")
    body = payment_body()
    since = now_ms()
    lock = TableLock()
    try:
        r = ing.pay(partner, body, key=new_key(), timeout=4)
        assert r.status == 202, r
        pid = r.json()["payment_id"]
        ing.daemon.kill9()  # SIGKILL while the finish waits for the lock
    finally:
        lock.release()
    time.sleep(0.5)
    assert _rows(pid) == 0
    assert psql_one("SELECT count(*) FROM payment_orders WHERE payment_id = '%s'" % pid) == "0"
    # the idempotency record holds the answer (a retry of the key replays or resumes it)
    assert psql_one("SELECT state FROM idempotency_keys WHERE resource_id = '%s'" % pid) == \
        "in_flight"
    # the event risk reads to write the rows (test 301) is in Kafka
    assert count_in_kafka("kasir.payments.requested", pid, since) == 1
    assert json.loads(r.body)["payment_orders"][0]["status"] == "NOT_STARTED"
    psql("DELETE FROM idempotency_keys WHERE resource_id = '%s'" % pid)
