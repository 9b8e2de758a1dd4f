"""234: a valid key is admitted even when its partner's rate limit went stale between the
request's own key lookup and its admission.

A CI run (session 32) answered 401 "not authenticated" to a key in its rotation grace
(test 212): the rotation's NOTIFY emptied the caches, marking every partner's limits stale,
between the request's lookup (which loads its partner's limits) and its admission, which
then found them stale, returned "admitted" without marking the request authenticated, and
the route's safety net refused it. The same window, made as wide as the lookup: an
auth.cache_ttl of 0, under which every limit is stale by the time it is read. A request
whose own lookup just loaded its partner's limits takes its token from them, stale or not:
it is admitted, and the partner's rate limit still holds."""
import uuid

from ingress_util import Partner, start_ingress

READ = "/v1/payments?ids=pay_x"


def test_admitted_when_the_limits_went_stale_after_the_lookup():
    ing = start_ingress({"KASIR_AUTH_CACHE_TTL": "0"})
    try:
        p = Partner("stale-" + uuid.uuid4().hex[:6])
        for _ in range(3):
            r = ing.request("GET", READ, auth=p)
            assert r.status == 200, r
        # the rate limit is still the partner's: a burst of 1 at 1/s refuses what follows
        q = Partner("slow-" + uuid.uuid4().hex[:6], rps=1)
        got = [ing.request("GET", READ, auth=q).status for _ in range(3)]
        assert got[0] == 200 and 429 in got, got
    finally:
        assert ing.daemon.term() == 0
