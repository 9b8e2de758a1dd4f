"""Helpers of the executor tests (60x-63x): per-test topics, group and partner, the ingress's
rows a command acts on, PspCommand / RefundRequested messages, the kasir-executor daemon
against a kasir-psp-sandbox of the test's own, and kasir-ledger turning the outcomes into
order statuses."""
import json
import subprocess

from conftest import PG_DSN, create_topics, psql, psql_one, unique
from ledger_util import LEDGER_DSN
from runtime_util import consume, metrics, produce, wait_until

FINAL = ("SUCCESS", "FAILED", "PENDING_CUSTOMER", "EXPIRED")


def ids(kind, key):
    """The psp-command and idempotency-key ids kasir-risk derives (consumers/risk/main.c):
    tests derive them the same way only to look the rows up; the executor takes them from
    the command."""
    return ("cmd_%s_%s" % (kind, key), "idk_%s_%s" % (kind, key))


class Exec:
    """A test's own topics (commands + retries + dlq, refunds, outcomes), groups, partner."""

    def __init__(self, prefix, partitions=3, delays=("1s",)):
        self.name = unique(prefix)
        self.tag = self.name.replace("-", "_")
        self.partner = "pt_" + self.tag
        self.commands = self.name + ".commands"
        self.refunds = self.name + ".refunds"
        self.outcomes = self.name + ".outcomes"
        self.group = self.name + "-g"
        self.delays = ",".join(delays)
        topics = ["%s:%d" % (self.commands, partitions), self.commands + ".dlq:1",
                  "%s:%d" % (self.refunds, partitions), self.refunds + ".dlq:1",
                  "%s:%d" % (self.outcomes, partitions), self.outcomes + ".dlq:1",
                  self.name + ".entries:1"]
        for d in delays:
            topics += [self.commands + ".retry." + d + ":1", self.refunds + ".retry." + d + ":1",
                       self.outcomes + ".retry." + d + ":1"]
        create_topics(*topics)
        self.n = 0

    def env(self, sandbox, **extra):
        e = {"KASIR_WORKER_TOPICS": self.commands + "," + self.refunds,
             "KASIR_WORKER_GROUP": self.group, "KASIR_WORKER_RETRY_DELAYS": self.delays,
             "KASIR_WORKER_RETRY_MAX_ATTEMPTS": "6",
             "KASIR_EXECUTOR_OUTCOMES_TOPIC": self.outcomes,
             "KASIR_EXECUTOR_COMMANDS_TOPIC": self.commands,
             "KASIR_EXECUTOR_SANDBOX_URL": sandbox.url,
             "KASIR_EXECUTOR_SANDBOX_SECRET": sandbox.keys["native"],
             "KASIR_EXECUTOR_STRIPE_URL": sandbox.url,
             "KASIR_EXECUTOR_STRIPE_SECRET": sandbox.keys["stripe"],
             "KASIR_EXECUTOR_PSP_TIMEOUT": "3s",
             "KASIR_WORKER_OUTBOX_MIN_AGE": "3s", "KASIR_WORKER_OUTBOX_SWEEP": "1s"}
        e.update({k: str(v) for k, v in extra.items()})
        return e

    def ledger_env(self):
        return {"KASIR_WORKER_TOPICS": self.outcomes, "KASIR_WORKER_GROUP": self.group + "-ledger",
                "KASIR_LEDGER_OUTPUT_TOPIC": self.name + ".entries",
                "KASIR_WORKER_RETRY_DELAYS": self.delays, "KASIR_WORKER_RETRY_MAX_ATTEMPTS": "3",
                "KASIR_PG_DSN": LEDGER_DSN, "KASIR_WORKER_OUTBOX_MIN_AGE": "3s",
                "KASIR_WORKER_OUTBOX_SWEEP": "1s"}

    # --- the ingress's rows (as the ingress leaves them once risk approved) ---
    def orders(self, specs):
        """specs: [(order, amount, method)]; one payment per order, NOT_STARTED, IDR."""
        pays, ords = [], []
        for oid, amount, method in specs:
            pays.append("('pay_%s','%s','co_%s','buyer','NOT_STARTED')" % (oid, self.partner, oid))
            ords.append("('%s','pay_%s','%s',0,'seller1',%d,'IDR','%s','NOT_STARTED')" % (
                oid, oid, self.partner, amount, method))
        sql = ("INSERT INTO payments (payment_id, partner_id, checkout_id, buyer_id, status) VALUES "
               + ",".join(pays) + "; INSERT INTO payment_orders (order_id, payment_id, partner_id, "
               "seq, seller_id, amount_minor, currency, method, status) VALUES " + ",".join(ords))
        subprocess.run(["psql", PG_DSN, "-v", "ON_ERROR_STOP=1", "-qtAX", "-f", "-"],
                       input=sql, text=True, check=True, capture_output=True, timeout=120)

    def order_id(self, i):
        return "ord_%s_%d" % (self.tag, i)

    def command(self, order, amount, method="CARD", token="pm_card_visa", psp="sandbox",
                details=None):
        self.n += 1
        d = {"payment_token": token} if token else {}
        if method in ("VIRTUAL_ACCOUNT", "BANK_TRANSFER"):
            d["bank_code"] = "BCA"
        d.update(details or {})
        cid, key = ids("CHARGE", order)
        return {"topic": self.commands, "key": order, "schema": "kasir.psp.PspCommand",
                "value": {"message_id": "msg_%s" % cid, "occurred_at": 1767225600000000 + self.n,
                          "partner_id": self.partner, "command_id": cid, "kind": "CHARGE",
                          "payment_id": "pay_" + order, "order_id": order, "refund_id": None,
                          "payout_id": None, "psp": psp, "psp_idempotency_key": key,
                          "amount_minor": amount, "currency": "IDR", "method": method,
                          "attempt": 1, "details": d}}

    def payout(self, payout, amount):
        """The payouts row (REQUESTED, as risk leaves an approved payout) and its command."""
        psql("INSERT INTO payouts (payout_id, partner_id, seller_id, amount_minor, currency, "
             "channel, bank_code, destination_account, account_holder, status) VALUES "
             "('%s','%s','seller1',%d,'IDR','BANK_ACCOUNT','BCA','1234567890','Siti','REQUESTED')"
             % (payout, self.partner, amount))
        cid, key = ids("PAYOUT", payout)
        return {"topic": self.commands, "key": payout, "schema": "kasir.psp.PspCommand",
                "value": {"message_id": "msg_%s" % cid, "occurred_at": 1767225600000000,
                          "partner_id": self.partner, "command_id": cid, "kind": "PAYOUT",
                          "payment_id": None, "order_id": None, "refund_id": None,
                          "payout_id": payout, "psp": "sandbox", "psp_idempotency_key": key,
                          "amount_minor": amount, "currency": "IDR", "method": "BANK_TRANSFER",
                          "attempt": 1, "details": {"bank_code": "BCA", "channel": "BANK_ACCOUNT",
                                                    "destination_account": "1234567890",
                                                    "account_holder": "Siti"}}}

    def refund(self, refund, order, amount, partner=None):
        return {"topic": self.refunds, "key": order, "schema": "kasir.refunds.RefundRequested",
                "value": {"message_id": "msg_" + refund, "occurred_at": 1767225600000000,
                          "partner_id": partner or self.partner, "refund_id": refund,
                          "payment_id": "pay_" + order, "order_id": order,
                          "amount_minor": amount, "currency": "IDR", "reason": None}}

    def refund_row(self, refund, order, amount, reserve=None):
        """A refund as the ingress accepts it, reserving reserve (default amount) of the
        order's refundable amount."""
        psql("UPDATE payment_orders SET refund_requested_minor = refund_requested_minor + %d "
             "WHERE order_id = '%s'" % (amount if reserve is None else reserve, order))
        psql("INSERT INTO refunds (refund_id, partner_id, payment_id, order_id, amount_minor, "
             "currency, status) VALUES ('%s','%s','pay_%s','%s',%d,'IDR','REQUESTED')"
             % (refund, self.partner, order, order, amount))

    # --- reading ---
    def statuses(self):
        """{order_id: status} of this test's orders."""
        return dict(psql("SELECT order_id, status FROM payment_orders WHERE partner_id = '%s'"
                         % self.partner))

    def attempts(self, where="true"):
        return psql("SELECT command_id, attempt, state, coalesce(verdict, ''), psp, "
                    "coalesce(psp_reference, '') FROM executor_attempts WHERE command_id LIKE "
                    "'cmd_%%\\_%s\\_%%' AND %s ORDER BY 1, 2" % (self.tag, where))

    def outcomes_seen(self, idle_ms=2000):
        return [m["value"] for m in consume(self.outcomes, idle_ms=idle_ms)]

    def dlq(self, idle_ms=1000):
        return consume(self.commands + ".dlq", idle_ms=idle_ms)

    def wait_final(self, n, timeout=120, final=FINAL, also=lambda: 0):
        """Waits until n orders are final (or counted by also(), e.g. dead-lettered)."""
        def done():
            st = self.statuses()
            return sum(1 for s in st.values() if s in final) + also() >= n
        wait_until(done, timeout=timeout, step=0.5, what="%d orders final" % n)


def assert_no_duplicates(sandbox):
    led = sandbox.ledger()
    assert led["duplicates"] == {}, list(led["duplicates"].items())[:5]
    return led


__all__ = ["Exec", "FINAL", "assert_no_duplicates", "consume", "metrics", "produce",
           "psql", "psql_one", "wait_until", "json"]
