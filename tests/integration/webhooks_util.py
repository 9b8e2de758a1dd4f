"""Helpers of the kasir-webhooks tests (70x): a kasir-webhooks of our own (its own group,
started at the end of kasir.webhooks.received so other tests' notifications are not its
business, and its own outcome topic), orders, refunds and payouts written as the ingress
writes them, signed notifications, outcome ids as lib/outcome.c derives them."""
import base64
import hashlib
import hmac
import json
import time
import uuid

import pytest

from conftest import Daemon, create_topics, psql, unique
from pipeline_util import pipeline  # deploy/local/pipeline.py: offsets and watermarks
from runtime_util import consume

IN_TOPICS = ["kasir.webhooks.received", "kasir.webhooks.received.retry.5s",
             "kasir.webhooks.received.retry.1m", "kasir.webhooks.received.retry.10m"]
DLQ = "kasir.webhooks.received.dlq"


def derive(prefix, ns, *parts):
    """lib/ids.c ks_id_derive: UUIDv8 over SHA-256(ns "\\0" part ...)."""
    h = bytearray(hashlib.sha256(ns.encode() + b"".join(b"\0" + p.encode() for p in parts)).digest())
    h[6] = 0x80 | (h[6] & 0x0F)
    h[8] = 0x80 | (h[8] & 0x3F)
    x = h[:16].hex()
    return "%s_%s-%s-%s-%s-%s" % (prefix, x[:8], x[8:12], x[12:16], x[16:20], x[20:])


def outcome_id(kind, object_id, status):
    return derive("out", "outcome", kind, object_id, status)


class Worker:
    """kasir-webhooks with its own group and outcome topic, positioned at the end of its
    input topics (kasir_offsets rows written before it starts)."""

    def __init__(self, prefix="wh"):
        self.name = unique(prefix)
        self.group = self.name + "-g"
        self.out = self.name + ".outcomes"
        create_topics(self.out + ":3")
        pipeline.join_at_end(self.group, IN_TOPICS)
        self.daemon = None
        self.started = []

    def start(self, **env):
        e = {"KASIR_WORKER_GROUP": self.group, "KASIR_WEBHOOKS_OUTPUT_TOPIC": self.out,
             "KASIR_WORKER_OUTBOX_MIN_AGE": "3s", "KASIR_WORKER_OUTBOX_SWEEP": "1s",
             "KASIR_WORKER_BATCH_WAIT": "20ms"}
        e.update({k: str(v) for k, v in env.items()})
        self.daemon = Daemon("webhooks", [], e)
        self.started.append(self.daemon)
        self.daemon.start(wait_path="/readyz", timeout=40)
        return self

    def outcomes(self, idle_ms=10000):
        # kasir-consume stops at the high watermarks; idle_ms only bounds a stalled fetch
        return [m for m in consume(self.out, idle_ms=idle_ms)]

    def wait_outcomes(self, pred, n, timeout=30):
        """The outcomes matching pred once there are at least n of them (or after timeout)."""
        deadline = time.time() + timeout
        while True:
            got = [m for m in self.outcomes() if pred(m["value"])]
            if len(got) >= n or time.time() > deadline:
                return got
            time.sleep(0.3)

    def stop(self):
        """SIGTERM to the running daemon (its exit code); any other left is killed: a
        worker left running would read the next test's notifications first (the events
        table is shared by every group)."""
        code = self.daemon.term() if self.daemon else None
        for d in self.started:
            d.kill9()
        return code


def new_order(amount_minor=15000000, currency="IDR", method="VIRTUAL_ACCOUNT", status="EXECUTING"):
    """A payment of one order, as the ingress and the executor leave it: (payment, order)."""
    pay = "pay_" + uuid.uuid4().hex
    order = "ord_" + uuid.uuid4().hex
    psql("INSERT INTO payments (payment_id, partner_id, checkout_id, buyer_id, status) "
         "VALUES ('%s', 'p-wh', '%s', 'b-1', 'NOT_STARTED'); "
         "INSERT INTO payment_orders (order_id, payment_id, partner_id, seq, seller_id, "
         "amount_minor, currency, method) VALUES ('%s', '%s', 'p-wh', 1, 's-1', %d, '%s', '%s')"
         % (pay, "co-" + uuid.uuid4().hex, order, pay, amount_minor, currency, method))
    if status != "NOT_STARTED":
        psql("UPDATE payment_orders SET status = '%s' WHERE order_id = '%s'" % (status, order))
    return pay, order


def new_refund(pay, order, amount_minor, currency="IDR"):
    rid = "rfd_" + uuid.uuid4().hex
    psql("INSERT INTO refunds (refund_id, partner_id, payment_id, order_id, amount_minor, "
         "currency, status) VALUES ('%s', 'p-wh', '%s', '%s', %d, '%s', 'EXECUTING')"
         % (rid, pay, order, amount_minor, currency))
    return rid


def new_payout(amount_minor, currency="IDR"):
    po = "po_" + uuid.uuid4().hex
    psql("INSERT INTO payouts (payout_id, partner_id, seller_id, amount_minor, currency, channel, "
         "bank_code, destination_account, account_holder, status) VALUES ('%s', 'p-wh', 's-1', "
         "%d, '%s', 'BANK_ACCOUNT', 'BCA', '1234567890', 'Budi', 'EXECUTING')"
         % (po, amount_minor, currency))
    return po


def sign_standard(secret, msg_id, ts, body):
    key = base64.b64decode(secret[len("whsec_"):])
    mac = hmac.new(key, ("%s.%d." % (msg_id, ts)).encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def post_sandbox_event(ingress, type_, data, event_id=None):
    """A notification in the sandbox PSP's format, signed as it signs (Standard Webhooks)
    with the ingress's secret, POSTed to the real ingress. Returns (status, event id)."""
    event_id = event_id or "evt_" + uuid.uuid4().hex
    body = json.dumps({"type": type_, "created_at": int(time.time()), "data": data}).encode()
    ts = int(time.time())
    r = ingress.request("POST", "/v1/webhooks/sandbox", raw=body, headers={
        "webhook-id": event_id, "webhook-timestamp": str(ts),
        "webhook-signature": sign_standard(ingress.secrets["sandbox"], event_id, ts, body)})
    return r.status, event_id


def dead_letters(needle, timeout=20):
    """DLQ messages of kasir-webhooks whose payload mentions needle."""
    deadline = time.time() + timeout
    while True:
        got = [m for m in consume(DLQ, idle_ms=10000)
               if needle in base64.b64decode(m["value"].get("body", "") or "").decode(errors="replace")]
        if got or time.time() > deadline:
            return got
        time.sleep(0.5)


def of(ref):
    """An outcome filter for Worker.wait_outcomes: the outcome of that order, refund or payout."""
    return lambda v: ref in (v.get("order_id"), v.get("refund_id"), v.get("payout_id"))


def dead_lettered_once(ref, reason):
    """The one DLQ copy of a notification about ref, its error naming reason; returns it."""
    dl = dead_letters(ref)
    assert len(dl) == 1, dl
    assert dl[0]["headers"]["kasir.error.message"].startswith(reason + ":"), dl[0]["headers"]
    return dl[0]


def worker_fixture(name):
    """A module fixture `wired`: (the ingress fixture, a kasir-webhooks Worker(name) running
    for the module, stopped cleanly after it)."""
    @pytest.fixture(scope="module")
    def wired(ingress):
        w = Worker(name)
        try:
            w.start()
            yield ingress, w
        finally:
            assert w.stop() == 0
    return wired


def events(psp, ref):
    """webhook_events rows of one operation: [(result, status)]."""
    return psql("SELECT result, coalesce(status, '') FROM webhook_events WHERE psp = '%s' "
                "AND object_id = '%s' ORDER BY received_at" % (psp, ref))
