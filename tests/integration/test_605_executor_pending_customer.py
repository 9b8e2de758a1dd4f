"""605: PENDING_CUSTOMER end to end through the HTTP API. A payment with a virtual-account
order and a QRIS order is accepted by kasir-ingress; its commands (as kasir-risk approves
them) run at the sandbox; kasir-ledger takes the outcomes; GET /v1/payments/{id} then shows
each order PENDING_CUSTOMER with its next_action: the VA number, the QR string, the
expiry."""
import json

import pytest

from executor_util import Exec, produce, psql, wait_until
from ingress_util import Partner, payment_body, start_ingress
from sandbox_util import sandbox  # noqa: F401 (fixture)

# the payment's rows are kasir-risk's to write (conftest.payment_rows)
pytestmark = pytest.mark.usefixtures("payment_rows")


def test_pending_customer_shown_by_api(daemons, sandbox):
    ing = start_ingress()
    try:
        ex = Exec("ex605")
        p = Partner(ex.name)
        body = payment_body(method="virtual_account", amount="250000.00")
        body["payment_orders"].append({"seller_id": "seller-2", "amount": "80000.00",
                                       "currency": "IDR", "method": "qris"})
        r = ing.pay(p, body, key="idem-" + ex.name)
        assert r.status in (200, 201, 202), r
        pid = r.json()["payment_id"]
        wait_until(lambda: psql("SELECT status FROM payments WHERE payment_id='%s'" % pid)
                   == [["NOT_STARTED"]], timeout=30, what="payment published")
        orders = psql("SELECT order_id, amount_minor, method FROM payment_orders WHERE "
                      "payment_id = '%s' ORDER BY seq" % pid)
        ex.partner = p.partner_id
        cmds = []
        for oid, amount, method in orders:
            c = ex.command(oid, int(amount), method=method, token=None)
            c["value"]["payment_id"] = pid
            cmds.append(c)
        produce(cmds)
        daemons("executor", env=ex.env(sandbox))
        daemons("ledger", env=ex.ledger_env())

        def shown():
            g = ing.request("GET", "/v1/payments/" + pid, auth=p)
            assert g.status == 200, g
            return g.json()
        wait_until(lambda: all(o["status"] == "PENDING_CUSTOMER" for o in shown()["payment_orders"]),
                   timeout=60, what="orders pending the customer")
        pay = shown()
        assert pay["status"] == "EXECUTING", pay
        va, qr = pay["payment_orders"]
        assert va["next_action"]["va_number"].isdigit() and va["next_action"]["bank_code"] == "BCA"
        assert qr["next_action"]["qr_string"].startswith("000201")
        for o in (va, qr):
            assert o["next_action"]["expires_at"].endswith("Z"), o
        # the same numbers the sandbox gave out for these references
        for o in (va, qr):
            ch = sandbox.native("GET", "/sandbox/v1/charges?reference=" + o["payment_order_id"]).json()
            act = ch["data"][0]["next_action"]
            assert act.get("va_number", act.get("qr_string")) in json.dumps(o["next_action"])
    finally:
        ing.daemon.term()
