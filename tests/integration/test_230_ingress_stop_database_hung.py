"""230: SIGTERM while the database hangs (connections open, nothing answered) with a
writer inside a statement: the ingress exits within its drain timeout, status 1 and an
error line, instead of waiting for its writer forever (before: still alive long after the
signal, its main thread joining a writer blocked in its statement).

What such a writer holds is a claim whose client was not answered (the drain ends its
connection), a release, or a refund's or payout's finish kept after a 503: each resumed by
the client's retry once idempotency.lock has passed, the state kill -9 leaves. (Until
session 29 it was the rows of a payment answered 202; those are kasir-risk's now.)"""
import base64
import signal
import subprocess
import time

from ingress_util import (PgProxy, Partner, cli, new_key, payment_body, payout_body,
                          payout_finish_refused, start_ingress)
from runtime_util import wait_until


def _sigterm(ing, wait):
    """SIGTERM, then (exit status or None if still running after wait s, seconds taken)."""
    t0 = time.time()
    ing.daemon.proc.send_signal(signal.SIGTERM)
    try:
        rc = ing.daemon.proc.wait(wait)
    except subprocess.TimeoutExpired:
        rc = None
    return rc, time.time() - t0


def test_sigterm_while_the_database_hangs_exits_within_the_drain_timeout():
    """Every request answered, and a writer inside the statement of a kept finish (a
    payout's, refused, then applied again once a second) when the database stops
    answering: the stop ends within the drain timeout, exit 1, the thread named."""
    px = PgProxy()
    ing = start_ingress({"KASIR_PG_DSN": px.dsn(), "KASIR_HTTP_DRAIN_TIMEOUT": "3s"})
    try:
        a = Partner("t230-a")
        with payout_finish_refused() as marker:
            _payout_refused_at_its_finish(ing, a, marker)
            px.freeze()
            try:
                time.sleep(1.5)  # the kept finish is applied again: now in its statement
                rc, took = _sigterm(ing, 15)
            finally:
                px.thaw()
        assert rc == 1, (rc, took)
        assert took < 10, took
        assert "did not stop in time" in ing.daemon.log_tail(20), ing.daemon.log_tail(20)
    finally:
        ing.daemon.kill9()
        px.close()


def _payout_refused_at_its_finish(ing, partner, marker):
    """A payout answered 503 because the database refused its finish, which the writers
    keep (payout_finish_refused)"""
    r = ing.request("POST", "/v1/payouts", payout_body(description=marker + "1"), auth=partner,
                    headers={"Idempotency-Key": new_key()}, timeout=10)
    assert r.status == 503 and b"could not be recorded" in r.body, r
    wait_until(lambda: ing.metric("kasir_ingress_finishes_pending") >= 1, timeout=5, step=0.05,
               what="the finish kept")
    assert ing.metric("kasir_ingress_finishes_pending") == 1


def test_sigterm_with_a_zero_drain_timeout_on_a_healthy_database_exits_0():
    """http.drain_timeout 0 is a valid setting: the store's threads still get the 5 s floor
    to notice the stop (they nap 100 ms, the broker check takes up to 1 s), so a clean stop
    is exit 0, not a false 'did not stop in time' (the first version of this bound)."""
    ing = start_ingress({"KASIR_HTTP_DRAIN_TIMEOUT": "0"})
    try:
        r = ing.pay(Partner("t230-b"), payment_body(), key=new_key())
        assert r.status == 202, r
        # idle: the server counts a request done a moment after its answer has left (a
        # stop with drain 0 in that moment rightly reports it)
        time.sleep(1)
        assert ing.daemon.term() == 0, ing.daemon.log_tail(5)
        log = ing.daemon.log_tail(20)
        assert "did not stop in time" not in log, log
        # an idle stop has nothing to report (it warned "0 requests not answered")
        assert "ingress.drain.timeout" not in log, log
    finally:
        ing.daemon.kill9()


def test_sigterm_while_the_auth_listener_hangs_in_listen_exits_0_within_the_floor():
    """The auth caches' listener (NOTIFY kasir_ingress_auth) sends LISTEN on each new
    connection. A database that took the connection and then hung in that statement held
    SIGTERM forever: the listener was blocked in libpq and joined without a bound (alive
    20 s after the signal, the requests all answered). It now waits for LISTEN 2 s at most
    (then connects again), and every thread behind the server is joined by one deadline,
    the 5 s floor here."""
    px = PgProxy()
    px.hang_on(b"LISTEN kasir_ingress_auth")
    ing = start_ingress({"KASIR_PG_DSN": px.dsn(), "KASIR_HTTP_DRAIN_TIMEOUT": "3s"})
    try:
        deadline = time.time() + 10
        while px.hung == 0 and time.time() < deadline:
            time.sleep(0.05)
        assert px.hung >= 1, "the listener never sent LISTEN through the proxy"
        r = ing.pay(Partner("t230-c"), payment_body(), key=new_key(), timeout=4)
        assert r.status == 202, r  # the listener hangs alone: the rest works
        rc, took = _sigterm(ing, 20)
        log = ing.daemon.log_tail(10)
        assert rc == 0, (rc, took, log)
        # the listener itself stopped (within its 2 s), not left behind at the 5 s floor
        assert "did not stop in time" not in log and "still running at the stop" not in log, log
        assert took < 4.5, took
    finally:
        ing.daemon.kill9()
        px.close()


def test_a_clean_stop_with_a_finish_still_unrecorded_says_so():
    """A finish the database refused is kept and retried once a second until
    idempotency.lock; a clean stop in that time dropped it without a word. The stop now says
    how many it leaves (their retries resume them)."""
    ing = start_ingress({"KASIR_HTTP_DRAIN_TIMEOUT": "2s"})
    try:
        with payout_finish_refused() as marker:
            _payout_refused_at_its_finish(ing, Partner("t230-d"), marker)
            assert ing.daemon.term() == 0, ing.daemon.log_tail(5)
        log = ing.daemon.log_tail(30)
        assert "1 finishes of published refunds or payouts were still not recorded at the " \
               "stop" in log, log
    finally:
        ing.daemon.kill9()


def test_a_drain_timeout_beyond_an_hour_is_refused_at_start():
    """The stop's deadline is the signal + http.drain_timeout: a value the parser takes
    (up to 2^63 ms) overflowed it, and the drain was skipped (an immediate exit 1 with any
    request in flight). Now an error naming the setting, exit 2."""
    _refused_at_start("KASIR_HTTP_DRAIN_TIMEOUT", "200000000d", "http.drain_timeout")


def _refused_at_start(var, value, setting):
    """The daemon started with var=value exits 2 with a line naming setting."""
    ing = start_ingress({var: value}, wait_path=None)
    try:
        try:
            rc = ing.daemon.proc.wait(10)
        except subprocess.TimeoutExpired:
            rc = None  # it started
        assert rc == 2, (rc, ing.daemon.log_tail(5))
        assert setting in ing.daemon.log_tail(5), ing.daemon.log_tail(5)
    finally:
        ing.daemon.kill9()


def test_a_read_whose_ready_for_query_never_comes_is_answered_by_its_deadline():
    """A reader waited for a statement's result by its deadline, but then asked libpq for
    the end of the results with a blocking call: a server that sent the rows and then hung
    before ReadyForQuery held the reader (and, at a stop, its join) without a bound; the
    GET was never answered. Now every result is awaited by the deadline: 503 in ~2 s."""
    px = PgProxy()
    ing = start_ingress({"KASIR_PG_DSN": px.dsn(), "KASIR_READERS_READ_TIMEOUT": "2s"})
    try:
        a = Partner("t230-e")
        r = ing.pay(a, payment_body(), key=new_key())
        assert r.status == 202, r
        pid = r.json()["payment_id"]
        px.hold_ready(b"p.payment_id = ANY")
        t0 = time.time()
        g = ing.request("GET", "/v1/payments/" + pid, auth=a, timeout=15)
        took = time.time() - t0
        assert g.status == 503, (g.status, took)
        assert took < 5, took
        assert px.hung >= 1
        assert ing.daemon.term() == 0, ing.daemon.log_tail(5)
    finally:
        ing.daemon.kill9()
        px.close()


def test_started_with_sigterm_blocked_it_still_stops_on_sigterm():
    """A supervisor may start the daemon with SIGTERM blocked (the mask is inherited): the
    wait for the stop signal used that mask, so SIGTERM stayed pending for ever."""
    ing = start_ingress(block_term=True)
    try:
        rc, took = _sigterm(ing, 15)
        assert rc == 0, (rc, took, ing.daemon.log_tail(5))
    finally:
        ing.daemon.kill9()


def test_an_audit_export_into_a_database_that_hangs_gives_its_reader_back():
    """The audit export set itself up (connection, snapshot, cursor) on a reader thread with
    blocking libpq calls: a database that hung in its DECLARE kept that reader (one of two
    by default) for good and never answered the request. Each step now has the job's
    deadline: 503 after readers.read_timeout, and the reader serves the next read."""
    px = PgProxy()
    ing = start_ingress({"KASIR_PG_DSN": px.dsn(), "KASIR_READERS_READ_TIMEOUT": "2s",
                         "KASIR_READERS_THREADS": "1"})
    try:
        admin = Partner("t230-f", scopes="admin")
        px.hang_on(b"DECLARE kasir_export")
        t0 = time.time()
        r = ing.request("GET", "/v1/admin/audit-export?from=2026-01-01&to=2026-01-02",
                        auth=admin, timeout=15)
        took = time.time() - t0
        assert r.status == 503, (r.status, took)
        assert took < 5, took
        assert px.hung == 1
        # the only reader is free again: another partner's cold key look-up and read
        g = ing.request("GET", "/v1/payments/pay_none", auth=Partner("t230-g"), timeout=10)
        assert g.status == 404, g.status
        assert ing.daemon.term() == 0, ing.daemon.log_tail(5)
    finally:
        ing.daemon.kill9()
        px.close()


def test_sigterm_during_an_audit_export_waiting_for_rows_does_not_abort():
    """An audit export whose stream waits for its next rows has its connection suspended by
    the export itself, which the drain did not count: at the drain's timeout the server was
    stopped under it and libmicrohttpd aborted the process (SIGABRT, a core, no line). The
    stream now counts as suspended, and at the timeout live exports are cut (the client
    sees an incomplete response) so that the stop stays clean."""
    import http.client
    px = PgProxy()
    ing = start_ingress({"KASIR_PG_DSN": px.dsn(), "KASIR_HTTP_DRAIN_TIMEOUT": "2s"})
    try:
        admin = Partner("t230-h", scopes="admin")
        px.hang_on(b"FROM kasir_export")  # the cursor is declared, its first FETCH hangs
        c = http.client.HTTPConnection("127.0.0.1", ing.port, timeout=20)
        c.request("GET", "/v1/admin/audit-export?from=2026-01-01&to=2026-01-02",
                  headers={"Authorization": admin.basic()})
        resp = c.getresponse()
        assert resp.status == 200, resp.status
        deadline = time.time() + 5
        while px.hung == 0 and time.time() < deadline:
            time.sleep(0.05)
        assert px.hung == 1
        rc, took = _sigterm(ing, 20)
        assert rc == 0, (rc, took, ing.daemon.log_tail(10))
        assert took < 9, took
        assert "audit exports cut at the drain timeout" in ing.daemon.log_tail(20)
        try:
            body = resp.read()
            complete = True
        except (http.client.IncompleteRead, OSError):
            complete = False
        assert not complete, body  # never a truncated export that looks whole
        c.close()
    finally:
        ing.daemon.kill9()
        px.close()


def test_an_admin_write_whose_connection_is_lost_is_not_sent_twice():
    """The readers retried any statement whose connection was lost, the admin acts' writes
    too: an adjustment request without an idempotency_key that the database ran and
    committed, its answer lost with the connection, was sent again and made a second
    adjustment. Such a write is now never sent twice: 500 outcome_unknown (the acts that
    are idempotent, and an adjustment with an idempotency_key, are still retried once)."""
    px = PgProxy()
    ing = start_ingress({"KASIR_PG_DSN": px.dsn()})
    try:
        a, auth = _admin("t230-i")
        px.cut_on(b"ledger_adjustment_request")
        r = _adjust(ing, auth)
        assert px.cuts >= 1
        assert _adjustments_made(a) == 1, r.status
        _assert_outcome_unknown(r)
    finally:
        ing.daemon.kill9()
        px.close()


def test_an_adjustment_with_an_idempotency_key_is_still_retried_when_the_connection_goes():
    """With a key, a second run of the request answers the first adjustment ("replay"): the
    lost connection is retried once, as for the other (idempotent) admin acts, and the
    answer is an ordinary 503 to retry (here every attempt is cut), never a second row."""
    px = PgProxy()
    ing = start_ingress({"KASIR_PG_DSN": px.dsn()})
    try:
        a, auth = _admin("t230-l")
        px.cut_on(b"ledger_adjustment_request")
        r = _adjust(ing, auth, idempotency_key="k-230-l")
        assert px.cuts == 2, px.cuts  # sent again once, on a fresh connection
        assert _adjustments_made(a) == 1, r.status
        assert r.status == 503 and r.code == "unavailable", (r.status, r.body)
    finally:
        ing.daemon.kill9()
        px.close()


def test_an_admin_write_past_its_deadline_says_its_outcome_is_unknown():
    """A write that waited for a lock past the job's deadline was answered 503 'did not
    answer in time' with Retry-After, and then ran and committed when the lock went (the
    server does not notice the client has gone while it waits): a blind retry made it twice.
    Its answer is now 500 outcome_unknown, without Retry-After. (The readers' connections
    carry statement_timeout = readers.read_timeout, which usually cancels such a write a
    moment after the answer, but not always; here the statement reaches the server only
    after the deadline, through a proxy that holds it, so it surely outlives its answer.
    Before session 20 the DSN's own options turned the timeout off instead, which was the
    bug test 232 shows.)"""
    px = PgProxy()
    ing = start_ingress({"KASIR_READERS_READ_TIMEOUT": "1s", "KASIR_PG_DSN": px.dsn()})
    try:
        a, auth = _admin("t230-j")
        px.delay_on(b"ledger_adjustment_request", 1.5)
        r = _adjust(ing, auth)
        assert _adjustments_made(a) == 1, r.status  # it did commit, after its answer
        _assert_outcome_unknown(r)
    finally:
        ing.daemon.kill9()
        px.close()


def _admin(name):
    a = Partner(name)
    key = cli("key", "add", a.partner_id, "--scopes", "admin")["api_key"]
    return a, "Basic " + base64.b64encode((key + ":").encode()).decode()


def _adjust(ing, auth, **extra):
    return ing.request("POST", "/v1/admin/adjustments",
                       dict({"seller_id": "s1", "currency": "IDR", "counter_account": "suspense",
                             "direction": "credit", "amount": "10.00", "reason": "ticket 230"},
                            **extra),
                       auth=auth, timeout=15)


def _adjustments_made(partner):
    """The partner's adjustments once the count has settled (the statement the ingress gave
    up on may still be running)."""
    from conftest import psql_one
    deadline, n = time.time() + 5, 0
    while time.time() < deadline:
        n = int(psql_one("SELECT count(*) FROM ledger_adjustments WHERE partner_id = '%s'"
                         % partner.partner_id))
        if n:
            break
        time.sleep(0.1)
    time.sleep(0.5)
    return int(psql_one("SELECT count(*) FROM ledger_adjustments WHERE partner_id = '%s'"
                        % partner.partner_id)) if n else n


def _assert_outcome_unknown(r):
    assert r.status == 500 and r.code == "outcome_unknown", (r.status, r.body)
    assert "retry-after" not in {k.lower() for k in r.headers}, r.headers


def test_an_audit_export_whose_connection_goes_before_ready_for_query_is_a_503():
    """The cursor's DECLARE answered, then the connection closed before ReadyForQuery: the
    export went on with a dead connection and answered 200 with nothing in it (a failed
    transfer). It is a 503 now, as when the connection goes at any other step."""
    px = PgProxy()
    ing = start_ingress({"KASIR_PG_DSN": px.dsn()})
    try:
        admin = Partner("t230-k", scopes="admin")
        px.hold_ready(b"DECLARE kasir_export", cut=True)
        r = ing.request("GET", "/v1/admin/audit-export?from=2026-01-01&to=2026-01-02",
                        auth=admin, timeout=15)
        assert r.status == 503, (r.status, r.body[:200])
    finally:
        ing.daemon.kill9()
        px.close()


def test_an_error_at_the_commit_is_the_answer_not_the_result_before_it():
    """An implicit transaction commits at Sync, after the statement's result: a deferred
    constraint that fails there sends an error after the result. The readers kept the first
    result and dropped the rest, so an admin act answered 201 for a transaction that was
    rolled back. The error is now the answer (503), and nothing is there."""
    import uuid
    from conftest import psql, psql_one
    a, auth = _admin("t230-m")
    fn = "test_refuse_at_commit_" + uuid.uuid4().hex[:12]
    psql("CREATE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
         "IF NEW.partner_id = '%s' THEN RAISE EXCEPTION 'test refuses at commit'; END IF; "
         "RETURN NULL; END $$" % (fn, a.partner_id))
    ing = None
    try:
        psql("CREATE CONSTRAINT TRIGGER %s AFTER INSERT ON ledger_adjustments DEFERRABLE "
             "INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION %s()" % (fn, fn))
        ing = start_ingress()
        for extra in ({}, {"idempotency_key": "k-230-m"}):  # sent once, and retried once
            r = _adjust(ing, auth, **extra)
            assert r.status == 503, (extra, r.status, r.body)
        assert psql_one("SELECT count(*) FROM ledger_adjustments WHERE partner_id = '%s'"
                        % a.partner_id) == "0"
    finally:
        if ing:
            ing.daemon.kill9()
        psql("DROP TRIGGER IF EXISTS %s ON ledger_adjustments" % fn)
        psql("DROP FUNCTION IF EXISTS %s()" % fn)


def test_an_audit_export_whose_database_hangs_mid_stream_gives_its_slot_back():
    """An audit export's stream thread FETCHed its rows with a blocking call: a database that
    hung there held the export's slot (two at most), its connection and its thread for good,
    and the client waited for ever; two such exports refused every later one with 503. Each
    FETCH now has readers.export_fetch_timeout (and 5 s, for a server that does not end the
    statement itself): the response ends incomplete (no end record) and the slot is free
    again."""
    import http.client
    px = PgProxy()
    # the server ends a FETCH itself at the setting; the ingress gives up 5 s after it
    ing = start_ingress({"KASIR_PG_DSN": px.dsn(), "KASIR_READERS_EXPORT_FETCH_TIMEOUT": "1s"})
    try:
        admin = Partner("t230-l", scopes="admin")
        px.hang_on(b"FROM kasir_export")  # the cursor is declared, its first FETCH hangs
        path = "/v1/admin/audit-export?from=2026-01-01&to=2026-01-02"
        conns, t0 = [], time.time()
        for _ in range(2):  # both slots
            c = http.client.HTTPConnection("127.0.0.1", ing.port, timeout=20)
            c.request("GET", path, headers={"Authorization": admin.basic()})
            resp = c.getresponse()
            assert resp.status == 200, resp.status
            conns.append((c, resp))
        for c, resp in conns:
            try:
                body, complete = resp.read(), True
            except (http.client.IncompleteRead, OSError):
                body, complete = b"", False
            assert not complete and b'"end"' not in body, body
            c.close()
        took = time.time() - t0
        assert took < 10, took
        assert px.hung == 2, px.hung
        # the slots are free: a third export starts (its FETCH hangs too, which is the test's)
        c = http.client.HTTPConnection("127.0.0.1", ing.port, timeout=20)
        c.request("GET", path, headers={"Authorization": admin.basic()})
        assert c.getresponse().status == 200
        c.close()
        assert "no rows from the database within readers.export_fetch_timeout" in \
            ing.daemon.log_tail(30)
    finally:
        ing.daemon.kill9()
        px.close()


def test_an_export_fetch_timeout_out_of_range_is_refused_at_start():
    _refused_at_start("KASIR_READERS_EXPORT_FETCH_TIMEOUT", "0s", "readers.export_fetch_timeout")
