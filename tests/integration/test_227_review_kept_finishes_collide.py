"""227: every key whose payout was published but not recorded is taken over by its retry
(a review of producers/ingress/store.c's forced keys).

When a refund's or payout's finish fails after its event was published, the client is
answered 503 and the ingress keeps the finish and marks the key, so that the client's retry
takes the record over at once instead of meeting 409s until the record's lock expires (30
s). The marks lived in a fixed table of 1,024 slots, one key per slot: a second key landing
in a slot erased the first one's mark, and that key's retry got 409 `idempotency_in_flight`
for up to 30 s. One slot is enough for it; a PostgreSQL outage fails hundreds of finishes
at once. Here 1,100 payouts' finishes are refused (a trigger), more keys than the table had
slots, and every retry must be taken over (republished: a 503 again while the trigger
stands, never a 409), then recorded once the database takes it. (Until session 29 this was
1,100 payments; a payment has no finish since.)"""
import concurrent.futures
import time
import uuid

from conftest import psql_one
from ingress_util import (Partner, new_key, payout_body, payout_finish_refused,
                          payouts_requested, start_ingress)
from runtime_util import wait_until

N = 1100


def test_every_unrecorded_payout_is_taken_over_by_its_retry():
    tag = uuid.uuid4().hex[:12]
    ing = start_ingress()
    try:
        p = Partner("p227-" + tag[:8])
        with payout_finish_refused() as marker:
            reqs = [(new_key(), payout_body(description=marker + str(i))) for i in range(N)]

            def payout(kb):
                # a 503 of a batch failed whole (since test 228 its claims run again alone)
                # is told apart by its detail: the finish's own says "could not be recorded"
                for _ in range(50):
                    r = ing.request("POST", "/v1/payouts", kb[1], auth=p,
                                    headers={"Idempotency-Key": kb[0]}, timeout=30)
                    if r.status != 503 or b"could not be recorded" in r.body:
                        return r
                    time.sleep(0.05)
                return r

            t = time.monotonic()  # the records' locks date from these claims
            with concurrent.futures.ThreadPoolExecutor(16) as ex:
                first = list(ex.map(payout, reqs))
            bad = [(i, r.status, r.body[:80]) for i, r in enumerate(first)
                   if r.status != 503 or b"could not be recorded" not in r.body]
            assert not bad, "%d of %d not refused at the finish, e.g. %s" % (len(bad), N, bad[:3])
            assert psql_one("SELECT count(*) FROM payouts WHERE description LIKE '%s%%' "
                            "AND status = 'PENDING_PUBLISH'" % marker) == str(N)
            assert ing.metric("kasir_ingress_finishes_pending") >= N
            with concurrent.futures.ThreadPoolExecutor(16) as ex:
                again = list(ex.map(payout, reqs))
            assert time.monotonic() - t < 25, "the retries outlived the records' lock"
            # taken over: published again, and refused again at the finish (not a 409)
            bad = [(i, a.status, a.code) for i, a in enumerate(again)
                   if a.status != 503 or b"could not be recorded" not in a.body]
            assert not bad, "%d of %d retries not taken over, e.g. %s" % (len(bad), N, bad[:5])
        # the database takes the finishes again: the kept ones are recorded, no client needed
        wait_until(lambda: payouts_requested(marker) == N, timeout=30,
                   what="the kept finishes recorded")
        # and each key is now complete: a retry replays the payout's stored 202
        r = ing.request("POST", "/v1/payouts", reqs[7][1], auth=p,
                        headers={"Idempotency-Key": reqs[7][0]})
        assert r.status == 202 and r.headers.get("idempotent-replayed") == "true", r
    finally:
        ing.daemon.term()
