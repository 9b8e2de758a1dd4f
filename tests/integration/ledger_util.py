"""Helpers of the ledger tests (40x-41x): per-test topics and partner, the ingress rows an
outcome refers to, PspOutcome messages, the kasir-ledger daemon (as the kasir_ledger role)
and `kasir-ledger verify`."""
import os
import subprocess

from conftest import PG_DSN, STACK, bin_path, create_topics, daemon_dsn, psql, psql_one, unique
from runtime_util import consume, produce, wait_until

# the daemon's role: may insert and read the ledger, never change it
LEDGER_DSN = daemon_dsn("ledger")


def psql_as_ledger(sql, check=True):
    """Runs sql as kasir_ledger; returns (returncode, stderr)."""
    p = subprocess.run(["psql", LEDGER_DSN, "-v", "ON_ERROR_STOP=1", "-qtAX", "-c", sql],
                       capture_output=True, text=True, timeout=60)
    if check and p.returncode != 0:
        raise AssertionError("psql failed: %s\n%s" % (sql, p.stderr))
    return p.returncode, p.stdout + p.stderr


def owner_entry(prefix, amount, chain=None, source_key=None):
    """One balanced entry of amount (bank debited, the sandbox's clearing credited, IDR) on a
    chain of its own (unique(prefix) unless named), posted by the owner through ledger_post
    under source_key (default "<chain>:k1"): (chain, entry id)."""
    chain = chain or unique(prefix)
    eid = int(psql_one(
        "SELECT ledger_post('%s', '%s', 'adjustment', 'j', NULL, 'r', "
        "ARRAY[ledger_account('bank', NULL, NULL, NULL, 'IDR'), "
        "ledger_account('psp_clearing', NULL, NULL, 'sandbox', 'IDR')], ARRAY[%d, %d]::bigint[], "
        "'IDR')" % (chain, source_key or chain + ":k1", amount, -amount)))
    return chain, eid


def verify(dsn=LEDGER_DSN):
    """Runs `kasir-ledger verify`; returns (exit code, output)."""
    env = dict(os.environ)
    env.update(STACK)
    env["KASIR_PG_DSN"] = dsn
    p = subprocess.run([bin_path("ledger"), "verify"], env=env, capture_output=True, text=True,
                       timeout=300)
    return p.returncode, p.stdout


class Ledger:
    """A test's own names: outcomes topic (+ retry, dlq), entries topic, group, partner."""

    def __init__(self, prefix, partitions=3, delays=("2s",)):
        self.name = unique(prefix)
        self.partner = "pt_" + self.name.replace("-", "_")
        self.topic = self.name + ".outcomes"
        self.retry = [self.topic + ".retry." + d for d in delays]
        self.dlq = self.topic + ".dlq"
        self.out = self.name + ".entries"
        self.group = self.name + "-g"
        self.delays = ",".join(delays)
        self.n = 0
        self.since = psql_one("SELECT now()")  # before any entry of this test's partner
        create_topics("%s:%d" % (self.topic, partitions), *[r + ":1" for r in self.retry],
                      self.dlq + ":1", "%s:%d" % (self.out, partitions))

    def env(self, **extra):
        e = {"KASIR_WORKER_TOPICS": self.topic, "KASIR_WORKER_GROUP": self.group,
             "KASIR_LEDGER_OUTPUT_TOPIC": self.out, "KASIR_WORKER_RETRY_DELAYS": self.delays,
             "KASIR_WORKER_RETRY_MAX_ATTEMPTS": "3", "KASIR_PG_DSN": LEDGER_DSN,
             "KASIR_WORKER_OUTBOX_MIN_AGE": "3s", "KASIR_WORKER_OUTBOX_SWEEP": "1s"}
        e.update({k: str(v) for k, v in extra.items()})
        return e

    def id(self, kind, i):
        return "%s_%s_%s" % (kind, self.name.replace("-", "_"), i)

    # --- the ingress's rows (written as the ingress would, by the superuser) ---
    def payments(self, specs):
        """specs: [(payment, [(order, seller, amount)])], status EXECUTING, IDR, one statement."""
        pays, ords = [], []
        for pay, orders in specs:
            pays.append("('%s','%s','co_%s','buyer','EXECUTING')" % (pay, self.partner, pay))
            for k, (oid, seller, amount) in enumerate(orders):
                ords.append("('%s','%s','%s',%d,'%s',%d,'IDR','CARD','EXECUTING')" % (
                    oid, pay, self.partner, k, seller, amount))
        sql = ("INSERT INTO payments (payment_id, partner_id, checkout_id, buyer_id, status) VALUES "
               + ",".join(pays) + "; INSERT INTO payment_orders (order_id, payment_id, partner_id, "
               "seq, seller_id, amount_minor, currency, method, status) VALUES " + ",".join(ords))
        # on stdin: thousands of rows do not fit an argument list
        subprocess.run(["psql", PG_DSN, "-v", "ON_ERROR_STOP=1", "-qtAX", "-f", "-"],
                       input=sql, text=True, check=True, capture_output=True, timeout=120)

    def refund_row(self, refund, pay, order, amount):
        psql("UPDATE payment_orders SET refund_requested_minor = refund_requested_minor + %d "
             "WHERE order_id = '%s'; INSERT INTO refunds (refund_id, partner_id, payment_id, "
             "order_id, amount_minor, currency, status) VALUES ('%s','%s','%s','%s',%d,'IDR',"
             "'REQUESTED')" % (amount, order, refund, self.partner, pay, order, amount))

    def payout_row(self, payout, seller, amount):
        """A payout as the executor leaves it once it recorded its attempt at the PSP
        (EXECUTING: the status machine (810_status_machine.sql) has no REQUESTED -> PAID_OUT)."""
        psql("INSERT INTO payouts (payout_id, partner_id, seller_id, amount_minor, currency, "
             "channel, bank_code, destination_account, status) VALUES ('%s','%s','%s',%d,'IDR',"
             "'BANK_ACCOUNT','BCA','1234567890','EXECUTING')" % (payout, self.partner, seller,
                                                                 amount))

    def fee_plan(self, bps, fixed=0):
        psql("INSERT INTO ledger_fee_plans VALUES ('%s','IDR',%d,%d)" % (self.partner, bps, fixed))

    # --- outcomes ---
    def outcome(self, kind, status, amount, fee=0, order=None, payment=None, refund=None,
                payout=None, psp="sandbox", message_id=None, outcome_id=None, partition=None,
                next_action=None, partner=None, source="EXECUTOR"):
        self.n += 1
        oid = outcome_id or "out_%s_%s_%s" % (kind, status, refund or payout or order)
        line = {"topic": self.topic, "key": order or payout, "schema": "kasir.psp.PspOutcome",
                "value": {"message_id": message_id or "msg_%s_%d" % (oid, self.n),
                          "occurred_at": 1700000000000000 + self.n,
                          "partner_id": partner or self.partner, "outcome_id": oid,
                          "order_id": order, "payment_id": payment, "refund_id": refund,
                          "payout_id": payout, "kind": kind, "status": status, "psp": psp,
                          "psp_reference": "ref_" + oid, "amount_minor": amount,
                          "fee_minor": fee, "currency": "IDR", "failure_code": None,
                          "failure_message": None, "next_action": next_action or {},
                          "source": source}}
        if partition is not None:
            line["partition"] = partition
        return line

    # --- reading the ledger ---
    def balance(self, account_type, seller=None, psp="sandbox"):
        code = {"seller_wallet": "seller_wallet/%s/%s/IDR" % (self.partner, seller),
                "payout_hold": "payout_hold/%s/%s/IDR" % (self.partner, seller),
                "suspense": "suspense/%s/IDR" % self.partner,
                "psp_clearing": "psp_clearing/%s/IDR" % psp,
                "psp_fee_expense": "psp_fee_expense/%s/IDR" % psp}[account_type]
        return int(psql_one("SELECT coalesce((SELECT balance_minor FROM ledger_account_balances "
                            "WHERE account = '%s'), 0)" % code))

    def entries(self):
        """Entries of this test's partner: {source_key: kind}."""
        return dict(psql("SELECT source_key, kind FROM ledger_entries WHERE partner_id = '%s'"
                         % self.partner))

    def wait_entries(self, n, timeout=60):
        wait_until(lambda: len(self.entries()) >= n, timeout=timeout,
                   what="%d entries posted" % n)
        return self.entries()

    def status(self, table, key, value):
        return psql_one("SELECT status FROM %s WHERE %s = '%s'" % (table, key, value))

    def count(self):
        """Entries posted for this test's partner (posted since the test began: the index on
        posted_at reads those, where the partner alone read the whole ledger: polled by the
        kill -9 loops, ~150 ms a call on a ledger of millions let the daemon post all before
        a second kill could land)."""
        return int(psql_one("SELECT count(*) FROM ledger_entries WHERE partner_id = '%s' "
                            "AND posted_at >= '%s'" % (self.partner, self.since)))

    def kill9_during(self, daemons, env, total, kills, rnd, pause=0.3):
        """Starts kasir-ledger with env, then up to `kills` times: waits for progress (at most
        30 s), a random moment more, and kills it with -9 and starts another, unless all
        `total` entries are posted. Returns (the running daemon, kills made)."""
        import time
        d, made = daemons("ledger", env=env), 0
        for _ in range(kills):
            start, deadline = self.count(), time.time() + 30
            while self.count() == start and time.time() < deadline:
                time.sleep(0.01)
            time.sleep(rnd.uniform(0.0, pause))
            if self.count() >= total:
                break
            d.kill9()
            made += 1
            d = daemons("ledger", env=env)
        return d, made

    def dlq_messages(self, idle_ms=1000):
        return consume(self.dlq, idle_ms=idle_ms)

    def wait_dlq(self, n, what, timeout=30):
        """Until n messages are in the DLQ: a copy is relayed after its batch's commit."""
        wait_until(lambda: len(self.dlq_messages(idle_ms=300)) >= n, timeout=timeout, what=what)


__all__ = ["Ledger", "LEDGER_DSN", "psql_as_ledger", "verify", "produce", "consume",
           "wait_until", "psql", "psql_one"]
