"""Helpers of the risk tests (30x-31x): per-test topics, rules file and partner names,
PaymentRequested / PayoutRequested messages for kasir-produce, the kasir-risk daemon, and
the decisions it recorded in PostgreSQL."""
import json
import os
import random
import socket
import subprocess

import pytest

from conftest import (BROKERS, PG_DSN, TOP, Daemon, bin_path, create_topics, psql, psql_one,
                      unique)
from runtime_util import consume, produce, wait_until

RISK = bin_path("risk")
T0 = 1767225600000000  # 2026-01-01T00:00:00Z in microseconds: the tests' own clock


class Risk:
    """A test's own topics (payments, payouts, commands), group, partner and rules file."""

    def __init__(self, prefix, rules, partitions=3):
        self.name = unique(prefix)
        self.payments = self.name + ".payments"
        self.payouts = self.name + ".payouts"
        self.out = self.name + ".commands"
        self.group = self.name + "-g"
        self.partner = self.name + "-pA"
        self.other = self.name + "-pB"
        create_topics("%s:%d" % (self.payments, partitions), self.payments + ".retry.5s:1",
                      self.payments + ".dlq:1", self.payouts + ":1",
                      self.payouts + ".retry.5s:1", self.payouts + ".dlq:1",
                      "%s:%d" % (self.out, partitions))
        d = os.path.join(TOP, "var", "tmp")
        os.makedirs(d, exist_ok=True)
        self.rules_path = os.path.join(d, self.name + ".rules.json")
        self.write_rules(rules)
        self.n = 0
        # approved payouts need funds in the sellers' wallets (the ledger holds them)
        self.fund(["s1", "evil-seller"] + ["s%d" % i for i in range(20)], 10 ** 12)

    def fund(self, sellers, amount, currency="IDR", partner=None):
        """Credits each seller's wallet with amount (a test entry from suspense)."""
        fund_wallets(partner or self.partner, sellers, amount, currency)

    def write_rules(self, rules):
        with open(self.rules_path, "w") as f:
            json.dump(rules if isinstance(rules, dict) else {"rules": rules}, f)

    def env(self, **extra):
        e = {"KASIR_WORKER_TOPICS": self.payments + "," + self.payouts,
             "KASIR_WORKER_GROUP": self.group, "KASIR_RISK_RULES": self.rules_path,
             "KASIR_RISK_OUTPUT_TOPIC": self.out, "KASIR_WORKER_RETRY_DELAYS": "5s",
             "KASIR_WORKER_OUTBOX_MIN_AGE": "3s", "KASIR_WORKER_OUTBOX_SWEEP": "1s"}
        e.update({k: str(v) for k, v in extra.items()})
        return e

    def start(self, risk_daemons, **extra):
        return risk_daemons(self.env(**extra))

    # --- messages -------------------------------------------------------------------------

    def payment(self, buyer="b1", orders=None, at=None, checkout=None, partner=None,
                payment_id=None, metadata=None):
        """A PaymentRequested line; orders: [(seller, amount_minor, currency, method, token)]."""
        self.n += 1
        pid = payment_id or "pay_%s_%d" % (self.name, self.n)
        orders = orders or [("s1", 100000, "IDR", "VIRTUAL_ACCOUNT", None)]
        value = {
            "message_id": "msg_%s" % pid, "occurred_at": T0 + self.n if at is None else at,
            "partner_id": partner or self.partner, "payment_id": pid, "buyer_id": buyer,
            "checkout_id": checkout or "co_%s" % pid, "idempotency_key_hash": "0" * 64,
            "orders": [{"order_id": "ord_%s_%d" % (pid, k), "seller_id": o[0],
                        "amount_minor": o[1], "currency": o[2], "method": o[3],
                        "psp_preference": None, "payment_token": o[4] if len(o) > 4 else None,
                        "bank_code": "BCA" if o[3] in ("VIRTUAL_ACCOUNT", "BANK_TRANSFER") else None,
                        "ewallet_channel": "OVO" if o[3] == "EWALLET" else None}
                       for k, o in enumerate(orders)],
            "metadata": metadata or {}}
        return {"topic": self.payments, "key": buyer, "schema": "kasir.payments.PaymentRequested",
                "value": value}

    def payout(self, seller="s1", amount=100000, currency="IDR", account="1234567890",
               bank="BCA", at=None, payout_id=None, partner=None):
        self.n += 1
        poid = payout_id or "pyo_%s_%d" % (self.name, self.n)
        value = {"message_id": "msg_%s" % poid, "occurred_at": T0 + self.n if at is None else at,
                 "partner_id": partner or self.partner, "payout_id": poid, "seller_id": seller,
                 "amount_minor": amount, "currency": currency,
                 "channel": "BANK_ACCOUNT" if bank else "EWALLET", "bank_code": bank,
                 "ewallet_channel": None if bank else "OVO", "destination_account": account,
                 "account_holder": "Budi", "description": None}
        return {"topic": self.payouts, "key": seller, "schema": "kasir.payouts.PayoutRequested",
                "value": value}

    # --- what risk recorded ------------------------------------------------------------------

    def decisions(self):
        """{payment_id or payout_id: (decision, [reasons], [rules])}"""
        out = {}
        for table, col in (("risk_payments", "payment_id"), ("risk_payouts", "payout_id")):
            for pid, dec, reasons, rules in psql(
                    "SELECT %s, decision, array_to_string(reasons, ','), "
                    "array_to_string(rules, ',') FROM %s WHERE partner_id IN ('%s', '%s')"
                    % (col, table, self.partner, self.other)):
                out[pid] = (dec, [r for r in reasons.split(",") if r],
                            [r for r in rules.split(",") if r])
        return out

    def wait_decided(self, n, timeout=60):
        wait_until(lambda: len(self.decisions()) >= n, timeout=timeout,
                   what="%d decisions" % n)
        return self.decisions()

    def commands(self, n, timeout=30):
        """The output topic once it holds at least n messages (the relay runs after the
        commit that made the decisions visible)."""
        got = []

        def enough():
            got[:] = consume(self.out, idle_ms=500)
            return len(got) >= n
        wait_until(enough, timeout=timeout, what="%d commands" % n)
        return got


def fund_wallets(partner, sellers, amount, currency="IDR"):
    """Credits sellers' wallets from the partner's suspense account with entries of a test
    chain, through the ledger's own ledger_post (as the database owner)."""
    psql("SELECT ledger_post('sql:test_funding', 'test_fund:' || %s || ':' || s || ':' || "
         "gen_random_uuid(), 'adjustment', 'test_fund', %s, 'test funding', "
         "ARRAY[ledger_account('suspense', %s, NULL, NULL, '%s'), "
         "ledger_account('seller_wallet', %s, s, NULL, '%s')], ARRAY[%d, %d]::bigint[], '%s') "
         "FROM unnest(ARRAY[%s]::text[]) AS s ORDER BY s"
         % (q(partner), q(partner), q(partner), currency, q(partner), currency, amount, -amount,
            currency, ",".join(q(x) for x in sellers)))


def fund_suspense(partner, amount, currency="IDR"):
    """Credits the partner's suspense account as late captures do (psp_clearing/sandbox
    debited), with an entry of a test chain, through ledger_post (as the database owner):
    what a credit of a seller from suspense may take. Kind adjustment, as fund_wallets'
    entries: tests that read a ledger's output topic leave the SQL entry points' kinds out,
    and a daemon publishes whatever any test queued."""
    psql("SELECT ledger_post('sql:test_funding', 'test_suspense:' || %s || ':' || "
         "gen_random_uuid(), 'adjustment', 'test_fund', %s, 'test funding', "
         "ARRAY[ledger_account('psp_clearing', NULL, NULL, 'sandbox', '%s'), "
         "ledger_account('suspense', %s, NULL, NULL, '%s')], ARRAY[%d, %d]::bigint[], '%s')"
         % (q(partner), q(partner), currency, q(partner), currency, amount, -amount, currency))


def q(s):
    return "'" + s.replace("'", "''") + "'"


def low_port():
    """A free port below the ephemeral range: on a machine with many client connections an
    ephemeral port that was free a moment ago is often taken by an outgoing connection
    before the daemon binds it."""
    rnd = random.Random()
    for _ in range(100):
        port = rnd.randint(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise AssertionError("no free port")


@pytest.fixture
def risk_daemons():
    """risk_daemons(env, name="risk") starts a daemon on a low port; all are killed after."""
    started = []

    def start(env, name="risk", **kw):
        d = Daemon(name, (), env, port=low_port())
        started.append(d)
        return d.start(**kw)

    yield start
    for d in started:
        d.kill9()


def holds_cli(*args):
    e = dict(os.environ)
    e["KASIR_PG_DSN"] = PG_DSN
    p = subprocess.run([RISK, "holds", *args], capture_output=True, text=True, env=e, timeout=30)
    return p.returncode, p.stdout, p.stderr


def status(table, key, value):
    return psql_one("SELECT status FROM %s WHERE %s = '%s'" % (table, key, value))


__all__ = ["Risk", "RISK", "fund_wallets", "T0", "BROKERS", "holds_cli", "status", "produce", "consume",
           "wait_until", "psql", "psql_one", "risk_daemons", "low_port"]
