"""715: kasir-webhooks decides a whole batch with one statement per step (lock, look-up,
record). Notifications that meet in one batch must end as they do one at a time: two
copies of one event count once, a second late success of an operation is a duplicate of
the first (each event sees the state the events before it in the batch left), an unknown
reference is dead-lettered without stopping the others, and each operation gets one
state. The notifications are published while the worker is stopped, so that it reads
them together when it starts again."""
import time
import uuid

from conftest import psql, psql_one
from ingress_util import ingress  # noqa: F401
from webhooks_util import (Worker, events, new_order, of, post_sandbox_event,
                          dead_lettered_once)


def _charge(order, status):
    return {"id": "sbch_" + uuid.uuid4().hex[:12], "object": "charge", "reference": order,
            "amount": "150000.00", "currency": "IDR", "method": "virtual_account",
            "status": status}


def test_one_batch_ends_as_one_at_a_time(ingress):  # noqa: F811
    w = Worker("wh715")
    try:
        w.start()
        pay_a, a = new_order()
        expired = _charge(a, "expired")
        assert post_sandbox_event(ingress, "charge.expired", expired)[0] == 200
        assert w.wait_outcomes(of(a), 1)[0]["value"]["status"] == "EXPIRED"
        assert w.stop() == 0

        late = dict(expired, status="succeeded")
        st, ev = post_sandbox_event(ingress, "charge.succeeded", late)
        assert st == 200
        # the same event delivered again (same id), and a second event telling the same
        # late payment
        assert post_sandbox_event(ingress, "charge.succeeded", late, event_id=ev)[0] == 200
        assert post_sandbox_event(ingress, "charge.succeeded", late)[0] == 200
        pay_b, b = new_order()
        assert post_sandbox_event(ingress, "charge.succeeded", _charge(b, "succeeded"))[0] == 200
        ghost = "ord_" + uuid.uuid4().hex
        assert post_sandbox_event(ingress, "charge.succeeded", _charge(ghost, "succeeded"))[0] == 200

        w.start()
        deadline = time.time() + 30
        while time.time() < deadline and (len(events("sandbox", a)) < 3 or not events("sandbox", b)):
            time.sleep(0.2)
        ev_a = events("sandbox", a)
        assert ev_a[0] == ["applied", "EXPIRED"], ev_a
        assert sorted(ev_a[1:]) == [["duplicate", "SUCCEEDED"], ["late_success", "SUCCEEDED"]], ev_a
        assert events("sandbox", b) == [["applied", "SUCCEEDED"]]
        dead_lettered_once(ghost, "unknown_reference")
        got = w.wait_outcomes(of(a), 2)
        assert [m["value"]["status"] for m in got] == ["EXPIRED", "SUCCEEDED"], got
        got = w.wait_outcomes(of(b), 1)
        assert [m["value"]["status"] for m in got] == ["SUCCEEDED"], got
        assert got[0]["value"]["payment_id"] == pay_b
        assert psql_one("SELECT status || ' ' || late_success FROM webhook_operations "
                        "WHERE kind = 'CHARGE' AND object_id = '%s'" % a) == "EXPIRED true"
        assert psql_one("SELECT status FROM webhook_operations "
                        "WHERE kind = 'CHARGE' AND object_id = '%s'" % b) == "SUCCEEDED"
    finally:
        assert w.stop() == 0


def test_what_the_executor_resolved_is_not_reported_again(ingress):  # noqa: F811
    """A card's charge.succeeded often arrives before the ledger posted the executor's
    SUCCEEDED outcome: the executor's journal, resolved in the transaction that put that
    outcome in its outbox, already says so. The notification is a duplicate, not a second
    report for the ledger to drop; a failure reported after it is stale."""
    w = Worker("wh715b")
    try:
        w.start()
        pay, order = new_order(method="CARD")
        psql("INSERT INTO executor_attempts (command_id, attempt, kind, object_id, order_id, psp, "
             "method, idem_key, amount_minor, currency, state, verdict, psp_reference) VALUES "
             "('cmd_%s', 1, 'CHARGE', '%s', '%s', 'sandbox', 'CARD', 'idem_%s', 15000000, 'IDR', "
             "'resolved', 'SUCCEEDED', 'sbch_r')" % (uuid.uuid4().hex, order, order, uuid.uuid4().hex))
        charge = dict(_charge(order, "succeeded"), method="card")
        assert post_sandbox_event(ingress, "charge.succeeded", charge)[0] == 200
        assert post_sandbox_event(ingress, "charge.failed", dict(charge, status="failed"))[0] == 200
        deadline = time.time() + 30
        while time.time() < deadline and len(events("sandbox", order)) < 2:
            time.sleep(0.2)
        assert sorted(events("sandbox", order)) == [["duplicate", "SUCCEEDED"], ["stale", "FAILED"]]
        assert w.wait_outcomes(of(order), 1, timeout=3) == []
    finally:
        assert w.stop() == 0
