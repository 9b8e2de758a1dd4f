"""612 (review): a command's value never becomes a header line of its own.

The psp_idempotency_key of a command is sent as the PSP's idempotency header
("Idempotency-Key: <key>"). A key holding a line feed ends that header and starts another
one of the command's choosing (here X-Sandbox-Fault, which the sandbox obeys; at a real PSP
any header, a second Idempotency-Key included). A command whose key or ids hold control
characters is invalid: dead-lettered at once, nothing sent."""
import json

from executor_util import Exec, produce, wait_until
from fakepsp_util import FakePsp


def test_crlf_in_idempotency_key_is_refused(daemons):
    ex = Exec("ex612", partitions=1)
    a, b = ex.order_id(0), ex.order_id(1)
    ex.orders([(a, 70000, "CARD"), (b, 70000, "CARD")])
    ca, cb = ex.command(a, 70000), ex.command(b, 70000)
    ca["value"]["psp_idempotency_key"] += "\nX-Sandbox-Fault: timeout_after_charge"
    cb["value"]["psp_idempotency_key"] += "\r\nX-Injected: 1"

    def answer(method, path, headers, body):
        return 200, "application/json", json.dumps(
            {"id": "sbch_x", "object": "charge", "status": "succeeded", "reference": "x",
             "amount": "70000", "currency": "IDR"}).encode()

    psp = FakePsp(answer)
    try:
        produce([ca, cb])
        daemons("executor", env=ex.env(psp))
        wait_until(lambda: len(ex.dlq(idle_ms=500)) >= 2, timeout=60, what="2 commands in the DLQ")
        sent = [(m, p, h) for m, p, h, _ in psp.requests]
    finally:
        psp.close()
    assert sent == [], sent
    dlq = ex.dlq()
    assert all(m["headers"].get("kasir.error.class") == "invalid" for m in dlq), \
        [m["headers"] for m in dlq]
