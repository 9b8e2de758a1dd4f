"""614 (review): two refunds of one order accepted at once stay within its capture.

A refund request is accepted when the order's capture covers it on top of the refunds
accepted before (executor_refunds). Two executor instances can check two refunds of one
order at the same time (one read from the refunds topic, one from its retry topic): each
computes "refunded so far" from a snapshot that cannot see the other's uncommitted row, and
both accept - more than the capture is committed to be refunded, and both REFUND commands
go to the PSP. Here the other instance's acceptance of refund A (the whole capture) is a
transaction held open, holding the order's refund lock as an acceptance does; refund B, checked
meanwhile, must wait for it and be refused (refund_exceeds_captured), never sent."""
import subprocess
import time

from conftest import PG_DSN
from executor_util import Exec, consume, produce, psql, wait_until
from fakepsp_util import FakePsp


def test_concurrent_refunds_do_not_exceed_capture(daemons):
    ex = Exec("ex614", partitions=1)
    o = ex.order_id(0)
    ex.orders([(o, 100000, "CARD")])
    psql("UPDATE payment_orders SET status = 'EXECUTING' WHERE order_id = '%s'" % o)
    psql("UPDATE payment_orders SET status = 'SUCCESS', captured_minor = 100000 "
         "WHERE order_id = '%s'" % o)
    cmd = ex.command(o, 100000)["value"]
    psql("INSERT INTO executor_attempts (command_id, attempt, kind, object_id, order_id, psp, "
         "method, idem_key, amount_minor, currency, state, verdict, psp_reference, resolved_at) "
         "VALUES ('%s', 1, 'CHARGE', '%s', '%s', 'sandbox', 'CARD', '%s', 100000, 'IDR', "
         "'resolved', 'SUCCEEDED', 'sbch_%s', now())" % (cmd["command_id"], o, o,
                                                         cmd["psp_idempotency_key"], ex.tag))
    ra, rb = "rfa_" + ex.tag, "rfb_" + ex.tag
    ex.refund_row(rb, o, 60000)
    psp = FakePsp(lambda *a: (503, "application/json", b"{}"))
    holder = subprocess.Popen(
        ["psql", PG_DSN, "-v", "ON_ERROR_STOP=1", "-qtAX", "-c",
         "BEGIN; SELECT pg_advisory_xact_lock(hashtextextended('kasir-executor-refund:%s', 0)); "
         "INSERT INTO executor_refunds (refund_id, order_id, amount_minor, psp, psp_reference) "
         "VALUES ('%s', '%s', 100000, 'sandbox', 'sbch_%s'); SELECT pg_sleep(6); COMMIT;"
         % (o, ra, o, ex.tag)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        produce([ex.refund(rb, o, 60000)])
        daemons("executor", env=ex.env(psp))
        assert holder.wait(timeout=30) == 0, holder.stderr.read()
        wait_until(lambda: any(m["value"].get("refund_id") == rb
                               for m in consume(ex.outcomes, idle_ms=300)) or
                   any(m["value"].get("refund_id") == rb and m["value"]["kind"] == "REFUND"
                       for m in consume(ex.commands, idle_ms=300)),
                   timeout=40, what="refund B decided")
        time.sleep(1)
    finally:
        if holder.poll() is None:
            holder.kill()
        psp.close()
    sent = [m["value"] for m in consume(ex.commands, idle_ms=500) if m["value"]["kind"] == "REFUND"]
    assert sent == [], sent
    outs = [(m["value"]["status"], m["value"]["failure_code"])
            for m in consume(ex.outcomes, idle_ms=500) if m["value"].get("refund_id") == rb]
    assert outs == [("FAILED", "refund_exceeds_captured")], outs
    live = psql("SELECT refund_id FROM executor_refunds WHERE order_id = '%s' AND NOT failed" % o)
    assert [r[0] for r in live] == [ra], live
