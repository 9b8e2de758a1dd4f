"""219: a partner's burst of new connections while its key is not cached is never refused.
Every cache miss used to cost the client address a token of its unauthenticated bucket
(auth.ip_burst), looked-up key valid or not: a partner opening more connections at once
than the burst, at start or when the cache entry expires, got 429 and a closed connection
for requests with a valid key (the ingress bench's load generator died of it). A miss now
costs the address a token only when the key turns out unknown or revoked, and is looked up
only while the address has tokens left: made-up keys are still refused with 429, without a
query, once their failures have emptied the bucket.

Here the burst is 3 and 24 requests with one valid, never-cached key arrive at once: all are
answered as authenticated (404 for a payment that does not exist), none 429. Then made-up
keys from the same address: 401s, then 429 once three failures emptied the bucket."""
import base64
import concurrent.futures
import threading
import uuid

from ingress_util import Partner, start_ingress


def test_cold_cache_burst_of_a_valid_key_is_not_refused():
    ing = start_ingress(extra_env={"KASIR_AUTH_IP_BURST": "3", "KASIR_AUTH_IP_RPS": "1"})
    try:
        p = Partner("t219-" + uuid.uuid4().hex[:6])
        n = 24
        gate = threading.Barrier(n)

        def one(i):
            gate.wait()
            return ing.request("GET", "/v1/payments/pay_t219_%d" % i, auth=p).status

        with concurrent.futures.ThreadPoolExecutor(n) as ex:
            codes = list(ex.map(one, range(n)))
        assert codes.count(429) == 0, codes
        assert set(codes) == {404}, codes

        def made_up():
            key = "sk_made_up_" + uuid.uuid4().hex + ":"
            return "Basic " + base64.b64encode(key.encode()).decode()

        bad = [ing.request("GET", "/v1/payments/pay_t219_x", auth=made_up()).status
               for _ in range(8)]
        assert bad[:3] == [401, 401, 401], bad
        assert bad[-1] == 429, bad
    finally:
        ing.daemon.term()
