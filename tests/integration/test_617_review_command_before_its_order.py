"""617 (review): a card charge's command can reach the executor before its order's row.

The ingress records a payment and its orders only once Kafka confirmed the payment's event
(the row is what marks the request complete), so risk can approve it and the executor read
its command before that commit: a finish kept and retried (PostgreSQL slow for a moment)
leaves the row seconds behind, and a fast pipeline (the e2e bench with short batch waits)
met it a few times in 10,000 payments. The executor dead-lettered such a command as "no
CHARGE row", and the payment sat NOT_STARTED until an operator replayed it. A charge whose
order row is missing is now retried (its retry topics), and charged once the row is there;
a command whose row never comes still ends in the DLQ after its attempts."""
from executor_util import Exec, assert_no_duplicates, consume, produce, wait_until
from sandbox_util import sandbox  # noqa: F401 (fixture)


def test_charge_waits_for_its_order_row(daemons, sandbox):
    ex = Exec("ex617", partitions=1)
    late, never = ex.order_id(0), ex.order_id(1)
    produce([ex.command(late, 120000), ex.command(never, 5000)])
    daemons("executor", env=ex.env(sandbox, KASIR_WORKER_RETRY_MAX_ATTEMPTS="4"))
    # the first attempt found no row: a retry copy, not a dead letter
    wait_until(lambda: any(m["value"]["order_id"] == late
                           for m in consume(ex.commands + ".retry.1s", idle_ms=300)),
               timeout=30, what="the command on its retry topic")
    assert [m for m in ex.dlq(idle_ms=300) if m["value"]["order_id"] == late] == []
    ex.orders([(late, 120000, "CARD")])  # the ingress's finish commits now
    wait_until(lambda: any(o["order_id"] == late and o["status"] == "SUCCEEDED"
                           for o in ex.outcomes_seen(idle_ms=300)),
               timeout=40, what="the late order charged")
    # the one whose row never comes: dead-lettered after its attempts, never sent
    wait_until(lambda: any(m["value"]["order_id"] == never for m in ex.dlq(idle_ms=300)),
               timeout=40, what="the orphan command in the DLQ")
    assert [m["value"]["order_id"] for m in ex.dlq()] == [never]
    led = assert_no_duplicates(sandbox)
    assert [e["reference"] for e in led["entries"] if e.get("reference") in (late, never)] == [late]
