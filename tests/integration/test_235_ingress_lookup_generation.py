"""235: a key lookup that started before a key or partner change does not answer for
requests that came after it.

Concurrent look-ups of one key are coalesced: a request whose key is not cached waits for
the lookup already running for it (test 220). A revocation's NOTIFY empties the caches, so
the next request of the revoked key misses and is looked up again... but before, it joined
a lookup still running that had read the key before the revocation committed, and was
admitted: "a revoked key is refused at once" had a window of one lookup query. And a lookup
that had read a partner's rate limit before it changed wrote the old limit over the new
one, as fresh, for every cached key of that partner. Here the lookup's answer is held by a
proxy (the query itself ran at once) while the change commits and is seen:
- the revoked key's next request is refused 401 (before: 200, the old lookup's answer);
- the partner's new rate limit of 1/s holds for its other key (before: the old
  100,000/s came back with the held answer, and no request was refused);
- a lookup that read the new limit and finished after another, unrelated change still
  charges its requests at the new limit (in the first fix, such a lookup left the older
  limit in place: 3 of 3 admitted at "1/s")."""
import base64
import hashlib
import time
import uuid

from conftest import psql_one
from ingress_util import Partner, PgProxy, cli, in_thread, start_ingress
from runtime_util import wait_until

READ = "/v1/payments?ids=pay_t235"
FLUSHES = "kasir_ingress_auth_cache_flushes_total"
COALESCED = "kasir_ingress_auth_lookups_coalesced_total"
HOLD_S = 5.0


def _held_lookup(ing, px, partner):
    """a request of partner's key whose lookup's answer the proxy holds; its result list"""
    px.delay_answer_on(hashlib.sha256(partner.api_key.encode()).hexdigest().encode(), HOLD_S)
    got = []
    in_thread(lambda: ing.request("GET", READ, auth=partner, timeout=15), got)
    assert px.answer_held.wait(5), "the lookup's answer was never held"
    return got


def _ingress(px):
    # two readers: the held lookup takes one, the lookups of the test's next requests the other
    return start_ingress({"KASIR_PG_DSN": px.dsn(), "KASIR_AUTH_TIMEOUT": "10s",
                          "KASIR_READERS_THREADS": "2"})


def _changed(ing, before):
    wait_until(lambda: ing.metric(FLUSHES) > before, timeout=5, what="the flush")


def _basic(api_key):
    return "Basic " + base64.b64encode((api_key + ":").encode()).decode()


def test_a_request_after_the_revocation_does_not_join_the_older_lookup():
    px = PgProxy()
    ing = _ingress(px)
    try:
        p = Partner("t235-r-" + uuid.uuid4().hex[:6])
        first = _held_lookup(ing, px, p)
        f0 = ing.metric(FLUSHES)
        cli("key", "revoke", p.key_id)
        _changed(ing, f0)
        t0 = time.time()
        r = ing.request("GET", READ, auth=p, timeout=15)
        assert r.status == 401, (r, "admitted by the lookup that read the key before its revocation")
        assert time.time() - t0 < HOLD_S / 2, "it waited for the held lookup"
        assert px.answer_held.is_set(), "the hold ended before the request: nothing was tested"
        wait_until(lambda: first, timeout=10, what="the held request")
        # the held request came before the revocation was seen: its lookup's answer is its own
        assert first[0][0].status == 200, first
        assert ing.request("GET", READ, auth=p).status == 401
    finally:
        assert ing.daemon.term() == 0
        px.close()


def test_a_rate_limit_read_before_its_change_does_not_come_back():
    px = PgProxy()
    ing = _ingress(px)
    try:
        p = Partner("t235-l-" + uuid.uuid4().hex[:6])
        other = _basic(cli("key", "add", p.partner_id)["api_key"])
        first = _held_lookup(ing, px, p)
        f0 = ing.metric(FLUSHES)
        psql_one("UPDATE partners SET rate_limit_rps = 1, rate_limit_burst = 1 "
                 "WHERE partner_id = '%s' RETURNING 1" % p.partner_id)
        _changed(ing, f0)
        # the other key's lookup loads the new limit (and takes the one token)
        assert ing.request("GET", READ, auth=other).status == 200
        assert px.answer_held.is_set(), "the hold ended before the request: nothing was tested"
        wait_until(lambda: first, timeout=10, what="the held request")
        # the held answer carried the old 100,000/s: it is not the partner's limit now
        got = [ing.request("GET", READ, auth=other).status for _ in range(3)]
        assert got.count(429) >= 2, (got, "the partner's old rate limit came back")
    finally:
        assert ing.daemon.term() == 0
        px.close()


def test_a_newer_limit_read_by_a_lookup_outlived_by_a_change_is_charged():
    px = PgProxy()
    ing = _ingress(px)
    try:
        p = Partner("t235-n-" + uuid.uuid4().hex[:6])
        q = Partner("t235-o-" + uuid.uuid4().hex[:6])
        assert ing.request("GET", READ, auth=p).status == 200  # its limits: 100,000/s
        f0 = ing.metric(FLUSHES)
        psql_one("UPDATE partners SET rate_limit_rps = 1, rate_limit_burst = 1 "
                 "WHERE partner_id = '%s' RETURNING 1" % p.partner_id)
        _changed(ing, f0)
        # the lookup reads 1/s; two more requests of the key join it while it is held
        c0 = ing.metric(COALESCED)
        got = [_held_lookup(ing, px, p)]
        for _ in range(2):
            got.append([])
            in_thread(lambda: ing.request("GET", READ, auth=p, timeout=15), got[-1])
        # they joined the held lookup (not lookups of their own after the next change)
        wait_until(lambda: ing.metric(COALESCED) >= c0 + 2, timeout=2, what="the joins")
        f1 = ing.metric(FLUSHES)
        psql_one("UPDATE partners SET rate_limit_burst = rate_limit_burst "
                 "WHERE partner_id = '%s' RETURNING 1" % q.partner_id)
        _changed(ing, f1)
        assert px.answer_held.is_set(), "the hold ended before the change: nothing was tested"
        wait_until(lambda: all(got), timeout=10, what="the three requests")
        statuses = sorted(g[0][0].status for g in got)
        assert statuses == [200, 429, 429], (statuses, "charged at the partner's old limit")
    finally:
        assert ing.daemon.term() == 0
        px.close()
