"""227: every key whose payment was published but not recorded is taken over by its retry
(a review of producers/ingress/store.c's forced keys).

When a payment's finish fails after its event was published (the client has its 202), the
ingress keeps the finish and marks the key so that the client's retry takes the record over
at once instead of meeting 409s until the record's lock expires (30 s; test 213). The marks
lived in a fixed table of 1,024 slots, one key per slot: a second key landing in a slot
erased the first one's mark, and that key's retry got 409 `idempotency_in_flight` for up to
30 s. One slot is enough for it; a PostgreSQL outage fails hundreds of finishes at once.
Here 1,100 payments' rows are refused (a trigger), more keys than the table had slots, and
every retry must be answered with its own 202 (a 503 retried as a client would)."""
import concurrent.futures
import time
import uuid

from conftest import psql_one
from ingress_util import (Partner, new_key, payment_body, payment_rows_refused, rows_written,
                          start_ingress)

N = 1100


def test_every_unrecorded_payment_is_taken_over_by_its_retry():
    tag = uuid.uuid4().hex[:12]
    ing = start_ingress()
    try:
        with payment_rows_refused() as marker:
            p = Partner("p227-" + tag[:8])
            reqs = [(new_key(), payment_body(checkout_id=marker + str(i))) for i in range(N)]

            def pay(kb):
                # a 503 (a batch failed whole; since test 228 its claims run again alone) is
                # retried with the same key, as a client would
                for _ in range(50):
                    r = ing.pay(p, kb[1], key=kb[0], timeout=30)
                    if r.status != 503:
                        return r
                    time.sleep(0.05)
                return r

            t = time.monotonic()  # the records' locks date from these claims
            with concurrent.futures.ThreadPoolExecutor(16) as ex:
                first = list(ex.map(pay, reqs))
            assert all(r.status == 202 for r in first), [r for r in first if r.status != 202][:3]
            time.sleep(1.5)  # every finish failed, and its first retry too
            # the finishes did fail: no row of these payments exists, each kept for a retry
            assert psql_one("SELECT count(*) FROM payments WHERE checkout_id LIKE '%s%%'"
                            % marker) == "0"
            assert ing.metric("kasir_ingress_finishes_pending") >= N
            with concurrent.futures.ThreadPoolExecutor(16) as ex:
                again = list(ex.map(pay, reqs))
            assert time.monotonic() - t < 25, "the retries outlived the records' lock"
            bad = [(i, a.status, a.code) for i, (r, a) in enumerate(zip(first, again))
                   if a.status != 202 or a.body != r.body]
            assert not bad, "%d of %d retries not taken over, e.g. %s" % (len(bad), N, bad[:5])
        # the database takes the rows again: the kept finishes write them, no client needed
        rows_written(*[r.json()["payment_id"] for r in first], timeout=30)
    finally:
        ing.daemon.term()
