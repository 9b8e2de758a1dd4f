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
- kill -9 while the rows are behind: nothing of the rows is written; risk, reading the
  event, writes them, and a retry of the key replays the 202;
- a refund of one of its orders, whose batch ran while the rows were being written, is
  claimed once more, not answered 404.""" 
import subprocess
import tempfile
import threading
import time

from conftest import BROKERS, psql, psql_one
from ingress_util import (Partner, TableLock, in_thread, new_key, now_ms, payment_body,
                          rows_written, start_ingress)
from risk_util import Risk, risk_daemons  # noqa: F401
from runtime_util import wait_until


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


def _the_event(pid, since):
    """The PaymentRequested of pid as the ingress published it: key, headers, value."""
    p = subprocess.run(["kcat", "-b", BROKERS, "-C", "-t", "kasir.payments.requested",
                        "-o", "s@%d" % since, "-e", "-q", "-f", "%k\x1f%h\x1e%s\x1d"],
                       capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    found = []
    for rec in p.stdout.split(b"\x1d"):
        head, _, value = rec.partition(b"\x1e")
        if pid.encode() in value:
            key, _, hdrs = head.partition(b"\x1f")
            found.append((key.decode(), hdrs.decode(), value))
    assert len(found) == 1, found
    return found[0]


def _republish(topic, key, hdrs, value):
    """The same bytes, key and headers, on a topic of the test's own."""
    with tempfile.NamedTemporaryFile(suffix=".bin") as f:
        f.write(value)
        f.flush()
        args = ["kcat", "-b", BROKERS, "-P", "-t", topic, "-k", key]
        for kv in hdrs.split(","):
            if "=" in kv:
                args += ["-H", kv]
        p = subprocess.run(args + [f.name], capture_output=True, timeout=30)
        assert p.returncode == 0, p.stderr


def test_kill9_with_rows_behind_then_risk_writes_them(risk_daemons):
    """The ingress answers, then dies before the rows are written; risk, reading the event,
    writes them (approved: NOT_STARTED, with the orders), and a retry of the key on a new
    ingress replays the 202 byte for byte."""
    ing = start_ingress()
    partner = Partner("t225-b")
    body = payment_body(n=2)
    key = new_key()
    since = now_ms()
    lock = TableLock()
    try:
        r = ing.pay(partner, body, key=key, timeout=4)
        assert r.status == 202, r
        pid = r.json()["payment_id"]
        ing.daemon.kill9()  # SIGKILL while the finish waits for the lock, or before
        time.sleep(0.3)
        # a writer's backend that got the finish outlives the process, waiting for the
        # lock, and would commit the rows once the lock goes: end it as the dead
        # process's session (a finish not yet sent died with the process)
        psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
             "WHERE wait_event_type = 'Lock' AND query LIKE '%ingress_batch%'")
    finally:
        lock.release()
    time.sleep(0.5)
    assert _rows(pid) == 0
    assert psql_one("SELECT count(*) FROM payment_orders WHERE payment_id = '%s'" % pid) == "0"
    assert psql_one("SELECT state FROM idempotency_keys WHERE resource_id = '%s'" % pid) == \
        "in_flight"
    # risk reads the event (here: the same message on the test's own topic)
    rk = Risk("t225", [])
    _republish(rk.payments, *_the_event(pid, since))
    rk.start(risk_daemons)
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


def test_refund_claimed_while_its_order_is_written():
    """A refund of an order whose payment this instance just answered: the refund's batch
    finds no order row, and the payment's rows are written (their entry gone) before the
    refund's outcome is handled. The refund is claimed once more (then: not captured),
    never answered 404 for an order that exists."""
    ing = start_ingress()
    partner = Partner("t225-c")
    slow = "t225_slow_" + new_key()[-8:].lower()
    try:
        lock = TableLock()
        try:
            r = ing.pay(partner, payment_body(), key=new_key(), timeout=4)
            assert r.status == 202, r
            oid = r.json()["payment_orders"][0]["payment_order_id"]
            # the refund's batch: no order row, its record deleted, and that takes 2 s
            psql("CREATE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                 "PERFORM pg_sleep(2); RETURN NULL; END $$; "
                 "CREATE TRIGGER %s AFTER DELETE ON idempotency_keys FOR EACH ROW "
                 "WHEN (OLD.partner_id = '%s' AND OLD.route = 'refunds') "
                 "EXECUTE FUNCTION %s()" % (slow, slow, partner.partner_id, slow))
            got = []
            t = threading.Thread(target=lambda: got.append(ing.request(
                "POST", "/v1/refunds", {"payment_order_id": oid, "amount": "1000.00",
                                        "currency": "IDR"},
                auth=partner, headers={"Idempotency-Key": new_key()}, timeout=30)))
            t.start()
            time.sleep(0.7)  # the refund's batch is in its trigger now
        finally:
            lock.release()  # the payment's rows are written while it sleeps
        t.join(30)
        ref = got[0]
        assert ref.status == 409 and ref.code == "refund_not_captured", ref
    finally:
        psql("DROP TRIGGER IF EXISTS %s ON idempotency_keys; DROP FUNCTION IF EXISTS %s()"
             % (slow, slow))
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
            assert r.status == 202, r
            # the finish waits for the lock in a batch of its own (a claim sent sooner could
            # join that batch, and wait with it, as any claim batched with a stuck finish)
            wait_until(lambda: psql_one(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query LIKE '%ingress_batch%'") == "1",
                timeout=10, what="the finish waiting for the lock")
            t0 = time.time()
            again = ing.pay(partner, body, key=key, timeout=10)
            took = time.time() - t0
            assert again.status == 409 and again.code == "request_in_progress", again
            assert 0.8 <= took < 6, took  # the rows stay held back all along
        finally:
            lock.release()
        rows_written(r.json()["payment_id"])
        rep = ing.pay(partner, body, key=key, timeout=5)
        assert rep.status == 202 and rep.body == r.body, rep
    finally:
        assert ing.daemon.term() == 0
