"""232: a DSN that carries `options` (an operator's -c settings) kept the readers'
statement_timeout out: libpq keeps the last value of a repeated keyword and the DSN came
after the ingress's own options, so a read whose statement waited on a lock was given up by
the ingress at its deadline (503) while its backend went on waiting, a connection and a
lock request held for as long as the lock (session 17's review). The readers' timeout now
comes after the DSN and the DSN's own settings are kept beside it."""
import time

from conftest import PG_DSN, psql
from ingress_util import Partner, PgProxy, TableLock, start_ingress


def test_a_dsn_with_options_keeps_the_readers_statement_timeout():
    p = Partner("t232")
    ing = start_ingress({"KASIR_PG_DSN": PG_DSN + " options='-c work_mem=8MB'",
                         "KASIR_READERS_READ_TIMEOUT": "1s"})
    try:
        # the DSN's own settings still apply: reads work through it
        r = ing.request("GET", "/v1/payments?ids=pay_none", auth=p)
        assert r.status == 200, r
        with TableLock("payments", "ACCESS EXCLUSIVE"):
            t0 = time.monotonic()
            r = ing.request("GET", "/v1/payments/pay_t232_locked", auth=p)
            assert r.status == 503, r
            assert time.monotonic() - t0 < 5
            time.sleep(1.5)  # the server's statement_timeout (1 s) has ended the statement
            waiting = psql("SELECT pid, state, wait_event_type FROM pg_stat_activity "
                           "WHERE application_name = 'kasir-ingress-reader' "
                           "AND state = 'active' AND wait_event_type = 'Lock'")
            assert waiting == [], waiting
        assert ing.daemon.term() == 0, ing.daemon.log_tail(5)
    finally:
        ing.daemon.kill9()


def test_a_server_that_answers_with_a_copy_does_not_hold_a_reader():
    """The readers took results until PQgetResult said there were none: a COPY result is
    returned again at every call without waiting, so a server (or a proxy posing as one)
    that answered a read with the start of a COPY held the reader in a loop that never
    looked at its deadline, the GET never answered and a core spent (session 17's review).
    Now the connection is given up at once: 503, and the next read works."""
    px = PgProxy()
    ing = start_ingress({"KASIR_PG_DSN": px.dsn(), "KASIR_READERS_READ_TIMEOUT": "2s"})
    try:
        a = Partner("t232-c")
        assert ing.request("GET", "/v1/payments?ids=pay_none", auth=a).status == 200
        px.copy_on(b"p.payment_id = ANY")
        t0 = time.monotonic()
        g = ing.request("GET", "/v1/payments/pay_t232_copy", auth=a, timeout=15)
        assert g.status == 503, g
        assert time.monotonic() - t0 < 5
        px.copy_on(None)
        assert ing.request("GET", "/v1/payments?ids=pay_none", auth=a).status == 200
        assert ing.daemon.term() == 0, ing.daemon.log_tail(5)
    finally:
        ing.daemon.kill9()
        px.close()
