"""210: the group commit's plain inserts and their ON CONFLICT fallbacks (functions/ingress_batch.sql).

ingress_batch() inserts a batch's rows without ON CONFLICT and, on a unique violation,
rolls that attempt back and inserts them the way 207 did. These tests make each violation
happen inside a batch shared with unrelated payments, which must not notice:
- the claim: payments with one checkout id under different keys, sent together (one
  writer, 100 ms of gathering: they share batches, which the test checks);
- the finish: a payment resumed after its first attempt's finish went unrecorded, whose
  payment row that first attempt's finish (kept and retried) writes while the resumed one
  is publishing, finished in the same batch as new payments.
Without the fallbacks the whole batch fails and every request in it gets a 503."""
import concurrent.futures
import time

import pytest

from conftest import psql, psql_one
from ingress_util import (count_in_kafka, new_key, now_ms, Partner, payment_body, rows_written,
                          start_ingress)


@pytest.fixture(scope="module")
def ing():
    d = start_ingress({"KASIR_STORE_WRITERS": "1", "KASIR_STORE_GATHER_US": "100000"})
    yield d
    d.daemon.term()


def batches(ing):
    for line in ing.admin("/metrics")[1].decode().splitlines():
        if line.startswith("kasir_ingress_store_batches_total"):
            return int(float(line.split()[-1]))
    raise AssertionError("no kasir_ingress_store_batches_total in /metrics")


def burst(ing, calls):
    """Sends every (partner, body, key) at once; the answers in the same order. The
    requests must have shared group commits, or the test would not test what it says."""
    b0 = batches(ing)
    with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
        futs = [pool.submit(ing.pay, p, b, key=k) for p, b, k in calls]
        rs = [f.result(timeout=30) for f in futs]
    # each request is in one claim batch and (if claimed) one finish batch
    assert batches(ing) - b0 < len(calls), "no two requests shared a batch"
    return rs


def test_same_checkout_under_other_keys_in_one_batch(ing):
    a = Partner("fb-claim-" + new_key()[-6:])
    t0 = now_ms()
    shared = payment_body()
    dupes = [(a, dict(shared, buyer={"id": "buyer-%d" % i}), new_key()) for i in range(6)]
    others = [(a, payment_body(), new_key()) for _ in range(6)]
    rs = burst(ing, dupes + others)
    got, rest = rs[:6], rs[6:]
    assert all(r.status == 202 for r in rest), rest
    won = [r for r in got if r.status == 202]
    assert len(won) == 1, got
    assert all(r.status == 409 and r.code in ("duplicate_checkout", "request_in_progress")
               for r in got if r.status != 202), got
    pid = won[0].json()["payment_id"]
    rows_written(pid, *[r.json()["payment_id"] for r in rest])
    assert psql_one("SELECT count(*) FROM payments WHERE partner_id = '%s' AND checkout_id = '%s'"
                    % (a.partner_id, shared["checkout_id"])) == "1"
    assert psql_one("SELECT payment_id FROM payments WHERE partner_id = '%s' "
                    "AND checkout_id = '%s'" % (a.partner_id, shared["checkout_id"])) == pid
    for r in rest:
        q = r.json()["payment_id"]
        assert psql_one("SELECT status FROM payments WHERE payment_id = '%s'" % q) == "NOT_STARTED"
    time.sleep(0.5)
    assert count_in_kafka("kasir.payments.requested", shared["checkout_id"], t0) == 1


def test_resumed_payment_whose_row_exists_finishes_with_its_batch(ing):
    a = Partner("fb-finish-" + new_key()[-6:])
    key, body = new_key(), payment_body(n=2)
    first = ing.pay(a, body, key=key)
    assert first.status == 202, first
    pid = first.json()["payment_id"]
    rows_written(pid)
    tag = "t210_" + new_key()[-8:].lower()
    # the state a first attempt leaves when its event was published and its finish was not
    # recorded: the record unresolved and unlocked, no payment row. The rows its finish
    # wrote are kept aside; the retried finish of that first attempt writes them back the
    # moment the resumed attempt takes the record over (a trigger on this partner's record
    # only), so the resumed attempt's own finish finds them there.
    psql("CREATE TABLE %s_pay AS SELECT * FROM payments WHERE payment_id = '%s'; "
         "CREATE TABLE %s_ord AS SELECT * FROM payment_orders WHERE payment_id = '%s'; "
         "DELETE FROM payment_orders WHERE payment_id = '%s'; "
         "DELETE FROM payments WHERE payment_id = '%s'" % (tag, pid, tag, pid, pid, pid))
    # (as its owner: it fires in the ingress's session, whose role may not read these tables)
    psql("CREATE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$ BEGIN "
         "INSERT INTO payments SELECT * FROM %s_pay; "
         "INSERT INTO payment_orders SELECT * FROM %s_ord; RETURN NULL; END $$; "
         "CREATE TRIGGER %s AFTER UPDATE OF locked_at ON idempotency_keys FOR EACH ROW "
         "WHEN (NEW.partner_id = '%s' AND OLD.locked_at = '-infinity') "
         "EXECUTE FUNCTION %s()" % (tag, tag, tag, tag, a.partner_id, tag))
    try:
        psql("UPDATE idempotency_keys SET locked_at = '-infinity' WHERE resource_id = '%s'" % pid)
        others = [(a, payment_body(), new_key()) for _ in range(6)]
        rs = burst(ing, [(a, body, key)] + others)
    finally:
        psql("DROP TRIGGER IF EXISTS %s ON idempotency_keys; DROP FUNCTION IF EXISTS %s(); "
             "DROP TABLE IF EXISTS %s_pay, %s_ord" % (tag, tag, tag, tag))
    resumed, rest = rs[0], rs[1:]
    assert resumed.status == 202, resumed
    assert resumed.body == first.body  # the stored answer, byte for byte
    assert resumed.headers.get("idempotent-replayed") != "true"  # taken over, not a replay
    assert all(r.status == 202 for r in rest), rest
    rows_written(pid, *[r.json()["payment_id"] for r in rest])
    assert psql_one("SELECT status FROM payments WHERE payment_id = '%s'" % pid) == "NOT_STARTED"
    assert psql_one("SELECT count(*) FROM payment_orders WHERE payment_id = '%s'" % pid) == "2"
    for r in rest:
        q = r.json()["payment_id"]
        assert psql_one("SELECT status FROM payments WHERE payment_id = '%s'" % q) == "NOT_STARTED"
        assert psql_one("SELECT count(*) FROM payment_orders WHERE payment_id = '%s'" % q) == "1"
    # and it is now complete: the next attempt is a replay
    again = ing.pay(a, body, key=key)
    assert again.status == 202 and again.body == first.body
    assert again.headers.get("idempotent-replayed") == "true"
