"""228: a finish the database refuses does not fail the claims that shared its batch (a review
of producers/ingress/store.c's group commit).

Claims and finishes of concurrent requests run in one transaction (ingress_batch()). When
the database refused one finish (a constraint, a trigger: the payment's event published, its
rows refused), the whole transaction rolled back and every claim in it, other clients'
unrelated payments, was answered 503 and had to be retried; the instance also reported the
database down. Now a batch refused by the database (not a lost connection) with claims in it
runs its claims again alone; only the refused finishes are kept (test 213, 227).
Here 300 payments whose rows a trigger refuses run beside 300 ordinary ones: every one of the
600 is answered 202 on its first try."""
import concurrent.futures
import uuid

from conftest import psql_one
from ingress_util import (Partner, checkout_id, new_key, payment_body, payment_rows_refused,
                          rows_written, start_ingress)


def test_claims_beside_a_refused_finish_are_answered():
    tag = uuid.uuid4().hex[:12]
    ing = start_ingress()
    try:
        with payment_rows_refused() as marker:
            p = Partner("p228-" + tag[:8])
            reqs = []
            for i in range(300):
                reqs.append(payment_body(checkout_id=marker + str(i)))  # rows refused
                reqs.append(payment_body(checkout_id=checkout_id()))  # never a card-like digit run

            def pay(body):
                return ing.pay(p, body, key=new_key(), timeout=30)

            with concurrent.futures.ThreadPoolExecutor(16) as ex:
                got = list(ex.map(pay, reqs))
            bad = [(i, r.status, r.code) for i, r in enumerate(got) if r.status != 202]
            assert not bad, "%d of %d not answered 202 at once, e.g. %s" % (
                len(bad), len(got), bad[:5])
            # the refused finishes were refused (kept), the others' rows written
            assert psql_one("SELECT count(*) FROM payments WHERE checkout_id LIKE '%s%%'"
                            % marker) == "0"
            assert ing.metric("kasir_ingress_finishes_pending") >= 1
            rows_written(*[r.json()["payment_id"] for i, r in enumerate(got) if i % 2 == 1])
        rows_written(*[r.json()["payment_id"] for r in got], timeout=30)
    finally:
        ing.daemon.term()
