"""616 (review): one order, one charge - whatever the command ids say.

The idempotency key the PSP dedups on comes in the command, and the journal is keyed by the
command id. Two commands for one order with their own ids and keys (an upstream bug, a
re-approval that derived new ids, a forged message) each find "no attempt" and each charge
with its own key: the PSP sees two operations and charges twice. A new attempt for an
object another command already acted on, or that another command of the same batch acts
on, is dead-lettered, never sent."""
import json

from executor_util import Exec, consume, produce, wait_until
from fakepsp_util import FakePsp, charge_body


def variant(cmd, n):
    c = json.loads(json.dumps(cmd))
    v = c["value"]
    v["command_id"] += "_v%d" % n
    v["psp_idempotency_key"] += "_v%d" % n
    v["message_id"] += "_v%d" % n
    return c


def test_second_command_for_an_order_is_not_sent(daemons):
    ex = Exec("ex616", partitions=1)
    a, b = ex.order_id(0), ex.order_id(1)
    ex.orders([(a, 30000, "CARD"), (b, 30000, "CARD")])

    def answer(method, path, headers, body):
        bd = charge_body(body)
        return 200, "application/json", json.dumps(
            {"id": "sbch_" + bd.get("reference", "")[-10:] + headers.get("Idempotency-Key", "")[-3:],
             "object": "charge", "status": "succeeded", "reference": bd.get("reference"),
             "amount": bd.get("amount"), "currency": bd.get("currency"), "method": "card"}).encode()

    psp = FakePsp(answer)
    try:
        ca, cb = ex.command(a, 30000), ex.command(b, 30000)
        # a: two commands in one batch; b: the second one after the first was charged
        produce([ca, variant(ca, 1)])
        daemons("executor", env=ex.env(psp))
        wait_until(lambda: any(m["value"]["order_id"] == a for m in consume(ex.outcomes, idle_ms=300)),
                   timeout=40, what="a charged")
        produce([cb])
        wait_until(lambda: any(m["value"]["order_id"] == b for m in consume(ex.outcomes, idle_ms=300)),
                   timeout=40, what="b charged")
        produce([variant(cb, 2)])
        wait_until(lambda: len(ex.dlq(idle_ms=300)) >= 2, timeout=40, what="2 in the DLQ")
        posts = sorted(charge_body(bd).get("reference") for m, p, h, bd in psp.requests if m == "POST")
    finally:
        psp.close()
    assert posts == [a, b], posts
