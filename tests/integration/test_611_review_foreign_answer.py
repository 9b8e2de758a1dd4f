"""611 (review): a 200 that is not the answer to our charge is not a success.

A hostile or broken PSP (a proxy's cache, a mixed-up connection, a bug at the PSP) answers
the charge of order A with 200 and a succeeded charge that is another order's, or A's at
another amount, or in another currency. The executor must not report A SUCCEEDED on it
(the ledger would book money that did not move as asked, and a refund of A would go to
the other order's charge): the outcome is unknown, asked about again, and the command ends
in the DLQ when the PSP keeps answering so. The status lookup answers the same foreign
object, so nothing resolves it."""
import json

from executor_util import Exec, consume, produce, psql, wait_until
from fakepsp_util import FakePsp, charge_body


def test_foreign_charge_objects_are_not_success(daemons):
    ex = Exec("ex611", partitions=1)
    other, amt, cur = (ex.order_id(i) for i in range(3))
    ex.orders([(other, 50000, "CARD"), (amt, 50000, "CARD"), (cur, 50000, "CARD")])

    def obj(body):
        ref = body.get("reference", "")
        o = {"id": "sbch_" + ref[-12:], "object": "charge", "status": "succeeded",
             "reference": ref, "amount": "50000", "currency": "IDR", "method": "card"}
        if ref == other:
            o["reference"] = "ord_someone_else"
        elif ref == amt:
            o["amount"] = "5"
        elif ref == cur:
            o["currency"], o["amount"] = "USD", "500.00"
        return o

    def answer(method, path, headers, body):
        if method == "POST":
            return 200, "application/json", json.dumps(obj(charge_body(body))).encode()
        ref = path.split("reference=")[-1]
        return 200, "application/json", json.dumps({"data": [obj({"reference": ref})]}).encode()

    psp = FakePsp(answer)
    try:
        produce([ex.command(o, 50000) for o in (other, amt, cur)])
        daemons("executor", env=ex.env(psp, KASIR_WORKER_RETRY_MAX_ATTEMPTS="3"))
        wait_until(lambda: len(ex.dlq(idle_ms=500)) >= 3, timeout=90, what="3 commands in the DLQ")
    finally:
        psp.close()
    outs = [m["value"] for m in consume(ex.outcomes, idle_ms=1000)]
    assert [(o["order_id"], o["status"]) for o in outs] == [], outs
    rows = psql("SELECT order_id, state, coalesce(verdict, '') FROM executor_attempts "
                "WHERE order_id IN ('%s','%s','%s')" % (other, amt, cur))
    assert sorted(r[1:] for r in rows) == [["sent", ""]] * 3, rows
