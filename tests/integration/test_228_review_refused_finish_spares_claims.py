"""228: a finish the database refuses does not fail the claims that shared its batch (a review
of producers/ingress/store.c's group commit).

Claims and finishes of concurrent requests run in one transaction (ingress_batch()). When
the database refused one finish (a constraint, a trigger: the payout's event published, its
finish refused), the whole transaction rolled back and every claim in it, other clients'
unrelated payments, was answered 503 and had to be retried; the instance also reported the
database down. Now a batch refused by the database (not a lost connection) with claims in it
runs its claims again alone; only the refused finishes are kept (test 227).
Here 300 payouts whose finishes a trigger refuses run beside 300 ordinary payments: every
payment is answered 202 on its first try. (Until session 29 the refused finishes were
payments'; a payment has no finish since.)"""
import concurrent.futures
import uuid

from ingress_util import (Partner, checkout_id, new_key, payment_body, payout_body,
                          payout_finish_refused, payouts_requested, start_ingress)
from runtime_util import wait_until


def test_claims_beside_a_refused_finish_are_answered():
    tag = uuid.uuid4().hex[:12]
    ing = start_ingress()
    try:
        p = Partner("p228-" + tag[:8])
        with payout_finish_refused() as marker:
            reqs = []
            for i in range(300):
                reqs.append(("/v1/payouts", payout_body(description=marker + str(i))))
                reqs.append(("/v1/payments", payment_body(checkout_id=checkout_id())))

            def send(req):
                return ing.request("POST", req[0], req[1], auth=p,
                                   headers={"Idempotency-Key": new_key()}, timeout=30)

            with concurrent.futures.ThreadPoolExecutor(16) as ex:
                got = list(ex.map(send, reqs))
            pays = [r for i, r in enumerate(got) if i % 2 == 1]
            bad = [(i, r.status, r.code) for i, r in enumerate(pays) if r.status != 202]
            assert not bad, "%d of %d payments not answered 202 at once, e.g. %s" % (
                len(bad), len(pays), bad[:5])
            outs = [r for i, r in enumerate(got) if i % 2 == 0]
            assert all(r.status == 503 and b"could not be recorded" in r.body for r in outs), \
                [r for r in outs if r.status != 503][:3]
            # the refused finishes were refused (kept)
            assert payouts_requested(marker) == 0
            assert ing.metric("kasir_ingress_finishes_pending") >= 1
        # the database takes them again: the kept finishes are recorded, no client needed
        wait_until(lambda: payouts_requested(marker) == 300, timeout=30,
                   what="the kept finishes recorded")
    finally:
        ing.daemon.term()
