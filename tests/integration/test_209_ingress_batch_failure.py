"""209: a failed group commit does not break its writer.

A batch that fails while its connection stays up (here: cancelled while it waits for a
lock) answers its requests 503, and the next batches on the same writer work. Until the
fix, the writer forgot that its session had the batch statement prepared, preparing it
again failed with 42P05, and every later batch on that writer failed."""
import concurrent.futures
import subprocess
import time

from conftest import PG_DSN, psql, psql_one
from ingress_util import new_key, Partner, payment_body, start_ingress


def blocked_writers():
    return [row[0] for row in psql(
        "SELECT pid FROM pg_stat_activity WHERE query LIKE '%ingress_batch(%' "
        "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()")]


def test_writer_survives_a_cancelled_batch():
    ing = start_ingress()
    a = Partner("cancel-" + new_key()[-6:])
    locker = None
    try:
        assert ing.pay(a, payment_body(), key=new_key()).status == 202
        # a session that keeps the writers' inserts waiting
        locker = subprocess.Popen(
            ["psql", PG_DSN, "-qtAX", "-c",
             "BEGIN; LOCK TABLE idempotency_keys IN SHARE ROW EXCLUSIVE MODE; "
             "SELECT pg_sleep(60); ROLLBACK;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while psql_one("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                       "WHERE c.relname = 'idempotency_keys' AND l.granted "
                       "AND l.mode = 'ShareRowExclusiveLock'") != "1":
            assert time.time() < deadline, "the lock was not taken"
            time.sleep(0.05)
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            # two requests far enough apart to land in both writers
            first = pool.submit(ing.pay, a, payment_body(), key=new_key())
            time.sleep(0.3)
            second = pool.submit(ing.pay, a, payment_body(), key=new_key())
            deadline = time.time() + 10
            while len(blocked_writers()) < 2:
                assert time.time() < deadline, blocked_writers()
                time.sleep(0.05)
            for pid in blocked_writers():
                psql("SELECT pg_cancel_backend(%s)" % pid)
            answers = [first.result(timeout=30), second.result(timeout=30)]
        assert [r.status for r in answers] == [503, 503], answers
        psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
             "WHERE query LIKE '%LOCK TABLE idempotency_keys%' AND pid <> pg_backend_pid()")
        locker.wait(timeout=10)
        locker = None
        # every later request is accepted, whichever writer takes it
        for _ in range(12):
            r = ing.pay(a, payment_body(), key=new_key())
            assert r.status == 202, r
    finally:
        if locker is not None:
            psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                 "WHERE query LIKE '%LOCK TABLE idempotency_keys%' AND pid <> pg_backend_pid()")
            locker.kill()
        ing.daemon.term()
