"""615 (review): a command moves only the money its order says.

The executor charges the command's amount and currency. A command that disagrees with its
order's row (a bug upstream, a corrupted or forged message on kasir.psp.commands) would move
money Kasir's books do not know: an order of 50,000 charged 5,000,000, or charged for
another partner. The lookup already reads the order's row; a command whose amount,
currency or partner is not the row's is dead-lettered, never sent."""
import json

from executor_util import Exec, consume, produce, wait_until
from fakepsp_util import FakePsp, charge_body


def test_command_not_matching_its_order_is_not_sent(daemons):
    ex = Exec("ex615", partitions=1)
    big, usd, other, ok = (ex.order_id(i) for i in range(4))
    ex.orders([(x, 50000, "CARD") for x in (big, usd, other, ok)])
    cb, cu, co, cok = (ex.command(big, 5000000), ex.command(usd, 50000), ex.command(other, 50000),
                       ex.command(ok, 50000))
    cu["value"]["currency"] = "USD"
    co["value"]["partner_id"] = "pt_someone_else"

    def answer(method, path, headers, body):
        b = charge_body(body)
        return 200, "application/json", json.dumps(
            {"id": "sbch_" + b.get("reference", "")[-10:], "object": "charge",
             "status": "succeeded", "reference": b.get("reference"), "amount": b.get("amount"),
             "currency": b.get("currency"), "method": "card"}).encode()

    psp = FakePsp(answer)
    try:
        produce([cb, cu, co, cok])
        daemons("executor", env=ex.env(psp))
        wait_until(lambda: len(ex.dlq(idle_ms=300)) >= 3, timeout=40, what="3 in the DLQ")
        wait_until(lambda: any(m["value"]["order_id"] == ok for m in consume(ex.outcomes, idle_ms=300)),
                   timeout=40, what="the matching command's outcome")
        sent = sorted(charge_body(b).get("reference") for m, p, h, b in psp.requests if m == "POST")
    finally:
        psp.close()
    assert sent == [ok], sent
    assert sorted(m["value"]["order_id"] for m in ex.dlq()) == sorted([big, usd, other])
