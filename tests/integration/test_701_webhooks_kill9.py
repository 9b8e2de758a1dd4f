"""701: kill -9 of kasir-webhooks during a burst of real notifications (sandbox PSP ->
kasir-ingress -> kasir.webhooks.received), restarted each time: afterwards every event's
outcome was emitted exactly once (one emission per outcome id, every copy on the wire with
the same message id), every event is recorded once, and every operation is SUCCEEDED."""
import random
import threading
import time

import pytest

from conftest import psql, psql_one
from ingress_util import ingress  # noqa: F401
from sandbox_util import new_keys, start_sandbox, stop_sandbox
from webhooks_util import Worker, new_order, outcome_id

N_CARD = 120  # charge.succeeded at once
N_VA = 40     # charge.pending, then paid with 2 duplicate copies


@pytest.fixture(scope="module")
def wired(ingress):  # noqa: F811
    keys = new_keys()
    keys["native_whsec"] = ingress.secrets["sandbox"]
    sb = start_sandbox(keys, {"KASIR_WEBHOOK_BASE": "http://127.0.0.1:%d/v1/webhooks" % ingress.port})
    yield sb
    assert stop_sandbox(sb) == 0


def test_kill9_during_burst_exactly_once(wired):
    sb = wired
    w = Worker("wh701")
    try:
        run_burst(sb, w)
    finally:
        w.stop()


def run_burst(sb, w):
    env = {"KASIR_INSTANCE_ID": w.name + "-i1", "KASIR_WORKER_BATCH_MAX": "50"}
    w.start(**env)
    cards = [new_order(amount_minor=150000, method="CARD")[1] for _ in range(N_CARD)]
    vas = [new_order(amount_minor=150000)[1] for _ in range(N_VA)]
    errors = []

    def burst():
        try:
            for i, o in enumerate(cards):
                r = sb.native("POST", "/sandbox/v1/charges", {
                    "reference": o, "amount": "1500.00", "currency": "IDR", "method": "card",
                    "payment_token": "tok_ok"})
                assert r.status == 201, r
                if i < len(vas):
                    r = sb.native("POST", "/sandbox/v1/charges", {
                        "reference": vas[i], "amount": "1500.00", "currency": "IDR",
                        "method": "virtual_account"})
                    assert r.status == 201, r
                    assert sb.event("sandbox", "paid", vas[i], duplicates=2).status == 202
                time.sleep(0.01)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    t = threading.Thread(target=burst)
    t.start()
    rnd = random.Random(701)
    for _ in range(3):
        time.sleep(rnd.uniform(0.4, 1.5))
        w.daemon.kill9()
        w.start(**env)
    t.join(120)
    assert not errors, errors
    refs = cards + vas
    inlist = ",".join("'%s'" % r for r in refs)
    deadline = time.time() + 90
    want = N_CARD + 2 * N_VA
    while time.time() < deadline:
        n = int(psql_one("SELECT count(*) FROM webhook_events WHERE object_id IN (%s)" % inlist))
        if n >= want:
            break
        time.sleep(0.5)
    assert n == want, (n, want)
    # every event recorded once (a replay found its row): applied, or stale for a VA's
    # pending read after its success (the two sit in two partitions, keyed by event id)
    rows = psql("SELECT object_id, status, result, coalesce(outcome_id, '') FROM webhook_events "
                "WHERE object_id IN (%s)" % inlist)
    assert len(rows) == want
    assert {(s, r) for _, s, r, _ in rows} <= {("SUCCEEDED", "applied"),
                                             ("PENDING_CUSTOMER", "applied"),
                                             ("PENDING_CUSTOMER", "stale")}, rows
    assert sorted(o for o, s, r, _ in rows if s == "SUCCEEDED") == sorted(refs)
    assert psql_one("SELECT count(*) FROM webhook_operations WHERE object_id IN (%s) "
                    "AND status = 'SUCCEEDED'" % inlist) == str(len(refs))
    time.sleep(3)  # the relay of the last batch
    msgs = w.outcomes()
    mine = [m for m in msgs if m["value"]["order_id"] in set(refs)]
    by_id, emitted = {}, {}
    for m in mine:
        v = m["value"]
        prev = by_id.setdefault(v["outcome_id"], v["message_id"])
        assert prev == v["message_id"], "one outcome, two message ids"
        # the runtime's id names the emission: copies of one emission share it
        emitted.setdefault(v["outcome_id"], set()).add(m["headers"]["kasir.message_id"])
    assert all(len(s) == 1 for s in emitted.values()), "an outcome emitted twice"
    # exactly the outcomes of the applied events, each derived from its operation
    want_ids = {oid for _, _, r, oid in rows if r == "applied"}
    assert want_ids >= {outcome_id("CHARGE", o, "SUCCEEDED") for o in refs}
    assert set(by_id) == want_ids, (len(by_id), len(want_ids))
    assert w.stop() == 0  # SIGTERM: a clean shutdown
