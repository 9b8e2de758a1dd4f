"""220: concurrent cache misses for one credential cost one look-up.

Each miss used to run a query of its own: a partner opening many connections at once while
its key is not cached (at start, when the cache entry expires) sent as many identical
look-ups to PostgreSQL, each holding a reader. Now a miss that finds a look-up of the same
credential running waits for its answer (kasir_ingress_auth_lookups_coalesced_total), and
one queued after it finds the answer cached.

Here api_keys is locked (ACCESS EXCLUSIVE) while 24 requests with one valid, never-cached
key arrive at once, so that every one of them misses the cache and is queued before any
look-up can finish; four readers take them. Then the lock goes: one look-up in
kasir_ingress_auth_lookups_total, 23 coalesced, all 24 answered as authenticated (404 for a
payment that does not exist). The same with a made-up key: one look-up, 24 answers 401."""
import base64
import concurrent.futures
import threading
import time
import uuid

from conftest import psql_one
from ingress_util import Partner, TableLock, start_ingress

N = 24


def burst(ing, auth, path):
    gate = threading.Barrier(N)

    def one(i):
        gate.wait()
        return ing.request("GET", path % i, auth=auth).status

    with concurrent.futures.ThreadPoolExecutor(N) as ex:
        return list(ex.map(one, range(N)))


def wait_queued(timeout=10):
    """until a look-up waits for the lock, and a second more for the rest of the burst to
    arrive and miss the cache (loopback: milliseconds)"""
    until = time.time() + timeout
    while time.time() < until:
        if psql_one("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE '%FROM api_keys k JOIN partners%'") != "0":
            time.sleep(1.0)
            return
        time.sleep(0.02)
    raise AssertionError("no look-up waited for the lock")


def locked_burst(ing, auth, path):
    with TableLock("api_keys", "ACCESS EXCLUSIVE") as lock:
        result = {}
        t = threading.Thread(target=lambda: result.update(codes=burst(ing, auth, path)))
        t.start()
        wait_queued()
        lock.release()
        t.join(30)
    return result["codes"]


def test_concurrent_misses_for_one_key_cost_one_lookup():
    ing = start_ingress(extra_env={"KASIR_READERS_THREADS": "4", "KASIR_AUTH_TIMEOUT": "8s",
                                   "KASIR_AUTH_IP_BURST": "100"})
    try:
        p = Partner("t220-" + uuid.uuid4().hex[:6])
        time.sleep(0.5)  # the NOTIFY of the new key has emptied the cache by now
        l0 = ing.metric("kasir_ingress_auth_lookups_total")
        c0 = ing.metric("kasir_ingress_auth_lookups_coalesced_total")
        codes = locked_burst(ing, p, "/v1/payments/pay_t220_%d")
        assert set(codes) == {404}, codes
        assert ing.metric("kasir_ingress_auth_lookups_total") - l0 == 1
        assert ing.metric("kasir_ingress_auth_lookups_coalesced_total") - c0 == N - 1

        # cached now: no look-up at all
        codes = burst(ing, p, "/v1/payments/pay_t220_again_%d")
        assert set(codes) == {404}, codes
        assert ing.metric("kasir_ingress_auth_lookups_total") - l0 == 1

        # an unknown key: one look-up, every request refused
        made_up = "Basic " + base64.b64encode(
            ("ksk_made_up_" + uuid.uuid4().hex + ":").encode()).decode()
        codes = locked_burst(ing, made_up, "/v1/payments/pay_t220_bad_%d")
        assert set(codes) == {401}, codes
        assert ing.metric("kasir_ingress_auth_lookups_total") - l0 == 2
    finally:
        ing.daemon.term()
