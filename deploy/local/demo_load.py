#!/usr/bin/python3
"""The demo's load (make demo, after services.sh started the pipeline): a realistic mix
through every rail, then a wait until the pipeline is quiet, then the summary.

    demo_load.py [--payments N] [--threads N] [--timeout S]

1. a burst of N card payments (default 1,000) over 12 sellers of partner A, one in ten
   declined by the PSP (token tok_decline_...), timed from the first request sent to the
   last payment final in PostgreSQL: the figure of the run, payments/s end to end;
2. the other rails: virtual accounts, QRIS and an e-wallet paid by the customer through the
   sandbox (POST /_sandbox/events: a webhook to the ingress), one paid with two duplicate
   webhooks, one with a stale "pending" delivered after its "paid" (out of order), one VA
   left to expire; partner B's payments; a buyer on the risk blocklist;
3. refunds (one full, two partial of one order), payouts (one paid, one declined by the PSP,
   one refused by risk for a blocked account, one larger than the seller's balance);
4. a poison message on kasir.payments.requested and a settlement file with injected
   discrepancies uploaded with the operator key;
5. waits until every worker's consumer lag is 0, no outbox row is unsent and the sandbox
   has delivered every webhook; prints payments, refunds and payouts by status, ledger
   totals by account type, `kasir-ledger verify`, dead letters per topic and the figure.

Reads the pipeline's wiring and the demo keys from var/demo.env (KASIR_SERVICES_ENV).
Exit 1 when verify fails or the pipeline did not become quiet. Standard library only."""
import argparse
import base64
import datetime
import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pipeline  # noqa: E402

TOP = pipeline.TOP
FINAL_PAYMENT = ("SUCCESS", "FAILED")
FINAL_ORDER = ("SUCCESS", "FAILED", "EXPIRED")


def read_env(path):
    env = {}
    with open(path) as f:
        for line in f:
            m = re.match(r'^([A-Z0-9_]+)="?(.*?)"?\s*$', line)
            if m and not line.startswith("#"):
                env[m.group(1)] = m.group(2)
    return env


class Http:
    """Keep-alive JSON calls to one base URL, one connection per thread."""

    def __init__(self, base):
        u = urllib.parse.urlparse(base)
        self.host, self.port = u.hostname, u.port
        self.local = threading.local()

    def call(self, method, path, body=None, key=None, headers=None, raw=None,
             ctype="application/json", timeout=30):
        h = dict(headers or {})
        if key:
            h["Authorization"] = "Basic " + base64.b64encode((key + ":").encode()).decode()
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is not None:
            h["Content-Type"] = ctype
        for attempt in (0, 1):
            c = getattr(self.local, "conn", None)
            if c is None:
                c = self.local.conn = http.client.HTTPConnection(self.host, self.port,
                                                                 timeout=timeout)
            try:
                c.request(method, path, body=data, headers=h)
                r = c.getresponse()
                out = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    c.close()
                    self.local.conn = None
                try:
                    return r.status, json.loads(out) if out else {}
                except ValueError:
                    return r.status, out
            except (http.client.HTTPException, OSError):
                c.close()
                self.local.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")


class Demo:
    def __init__(self, env, daemons):
        self.env = env
        self.daemons = daemons
        self.api = Http(env["KASIR_URL"])
        self.sandbox = Http(env["KASIR_SANDBOX_URL"])
        self.a, self.b = env["KASIR_DEMO_KEY_A"], env["KASIR_DEMO_KEY_B"]
        self.ops = env.get("KASIR_DEMO_OPS_KEY", "")
        self.run = uuid.uuid4().hex[:8]
        self.payments = {}   # payment_id -> {"orders": [order ids], "what": label}
        self.refunds, self.payouts = {}, {}
        self.rows = []       # (what, http status, detail) for the table of requests
        self.notes = []      # what could not be shown, said out loud
        self.n = 0

    def has(self, *names):
        return all(n in self.daemons for n in names)

    def note(self, msg):
        self.notes.append(msg)
        print("demo: " + msg, flush=True)

    # --- requests ---------------------------------------------------------------------------
    def pay(self, key, method, amount, seller, buyer=None, token=None, what=None):
        self.n += 1
        order = {"seller_id": seller, "amount": "%d.00" % amount, "currency": "IDR",
                 "method": method}
        if method == "card":
            order["payment_token"] = token or "tok_sandbox_visa"
        if method in ("virtual_account", "bank_transfer"):
            order["bank_code"] = "BCA"
        if method == "ewallet":
            order["ewallet_channel"] = "OVO"
        ref = "demo-%s-%d" % (self.run, self.n)
        body = {"buyer": {"id": buyer or "buyer-%s-%d" % (self.run, self.n)}, "checkout_id": ref,
                "payment_orders": [order]}
        st, j = self.api.call("POST", "/v1/payments", body, key, {"Idempotency-Key": ref})
        if st == 202:
            self.payments[j["payment_id"]] = {
                "orders": [o["payment_order_id"] for o in j["payment_orders"]],
                "what": what or method, "key": key, "amount": amount, "seller": seller}
            if what != "card (burst)":
                self.rows.append(("payment: %s (%s)" % (what or method, method), st, j["payment_id"]))
            return j["payment_id"]
        self.rows.append(("payment %s" % (what or method), st, j.get("code", "")))
        return None

    def request(self, what, path, body, key=None, idem=None):
        st, j = self.api.call("POST", path, body, key or self.a,
                              {"Idempotency-Key": idem or "demo-%s-%s" % (self.run, uuid.uuid4().hex[:8])})
        detail = ""
        if isinstance(j, dict):
            detail = j.get("refund_id") or j.get("payout_id") or j.get("file_id") or j.get("code") or ""
            if j.get("refund_id"):
                self.refunds[j["refund_id"]] = what
            if j.get("payout_id"):
                self.payouts[j["payout_id"]] = what
        self.rows.append((what, st, detail))
        return st, j

    # --- PostgreSQL reads -------------------------------------------------------------------
    def order_status(self, order_ids):
        if not order_ids:
            return {}
        return dict((r[0], r[1]) for r in pipeline.psql(
            "SELECT order_id, status FROM payment_orders WHERE order_id = ANY(%s)"
            % pipeline.sql_list(order_ids)))

    def final_payments(self, ids):
        return int(pipeline.psql("SELECT count(*) FROM payments WHERE payment_id = ANY(%s) "
                                 "AND status IN ('SUCCESS', 'FAILED')" % pipeline.sql_list(ids))[0][0])

    def wait(self, what, cond, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if cond():
                return True
            time.sleep(0.25)
        self.note("%s: not reached within %d s" % (what, timeout))
        return False

    # --- 1. the burst -----------------------------------------------------------------------
    def burst(self, n, threads, timeout):
        print("demo: %d card payments from %d threads (one in ten declined by the PSP)" % (n, threads),
              flush=True)
        ids, lock, errors = [], threading.Lock(), []
        todo = list(range(n))

        def worker():
            while True:
                with lock:
                    if not todo:
                        return
                    i = todo.pop()
                token = "tok_decline_insufficient_funds" if i % 10 == 9 else "tok_sandbox_visa"
                try:
                    pid = self.pay(self.a, "card", 100000 + 1000 * (i % 90), "seller-%d" % (i % 12),
                                   token=token, what="card (burst)")
                except Exception as e:  # noqa: BLE001 - reported, not hidden
                    errors.append(str(e))
                    continue
                if pid:
                    with lock:
                        ids.append(pid)
        t0 = time.time()
        ts = [threading.Thread(target=worker) for _ in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        t_sent = time.time()
        if errors:
            self.note("%d burst requests failed: %s" % (len(errors), errors[0]))
        print("demo: %d accepted in %.1f s (%.0f/s); waiting for every payment to be final"
              % (len(ids), t_sent - t0, len(ids) / max(t_sent - t0, 1e-6)), flush=True)
        self.figure = None
        if not self.has("risk", "executor", "ledger"):
            self.note("burst not timed: risk, executor and ledger must all run (KASIR_DEMO_DAEMONS)")
            return
        if self.wait("every burst payment final", lambda: self.final_payments(ids) >= len(ids), timeout):
            self.figure = (len(ids), time.time() - t0, t_sent - t0)

    # --- 2. the other rails -----------------------------------------------------------------
    def rails(self, timeout):
        pend = {}
        for what, method, amount in (("VA paid, 2 duplicate webhooks", "virtual_account", 250000),
                                     ("VA paid", "virtual_account", 175000),
                                     ("VA left to expire", "virtual_account", 300000),
                                     ("QRIS paid, stale webhook after", "qris", 85000),
                                     ("QRIS paid", "qris", 42000),
                                     ("e-wallet paid", "ewallet", 66000)):
            pid = self.pay(self.a, method, amount, "seller-%d" % (len(pend) % 3), what=what)
            if pid:
                pend[pid] = what
        for i in range(4):
            method = ("card", "qris", "card", "virtual_account")[i]
            pid = self.pay(self.b, method, 120000 + 5000 * i, "b-seller-%d" % (i % 2),
                           what="partner B")
            if pid and method != "card":
                pend[pid] = "partner B %s paid" % method
        self.pay(self.a, "card", 99000, "seller-1", buyer="buyer-fraud-001", what="blocked buyer")
        if not self.has("risk", "executor"):
            self.note("VA/QRIS/e-wallet webhooks not sent: risk and executor must run")
            return
        orders = {self.payments[p]["orders"][0]: w for p, w in pend.items()}
        self.wait("VA/QRIS/e-wallet orders PENDING_CUSTOMER",
                  lambda: all(s != "NOT_STARTED" and s != "EXECUTING"
                              for s in self.order_status(list(orders)).values())
                  and len(self.order_status(list(orders))) == len(orders), timeout)
        status = self.order_status(list(orders))
        for oid, what in orders.items():
            if status.get(oid) != "PENDING_CUSTOMER":
                self.note("%s: order %s is %s, not PENDING_CUSTOMER" % (what, oid, status.get(oid)))
                continue
            ev = {"psp": "sandbox", "event": "expire" if "expire" in what else "paid", "id": oid}
            if "duplicate" in what:
                ev["duplicates"] = 2
            if "stale" in what:
                ev["out_of_order"] = True
            st, j = self.sandbox.call("POST", "/_sandbox/events", ev)
            self.rows.append(("sandbox event: " + what, st, j.get("error", "") if isinstance(j, dict) else ""))

    # --- 3. refunds and payouts ---------------------------------------------------------------
    def refunds_payouts(self, timeout):
        captured = [(p, v) for p, v in self.payments.items()
                    if v["what"] == "card (burst)" and v["key"] == self.a]
        if self.has("executor", "ledger"):
            st = self.order_status([v["orders"][0] for _, v in captured[:40]])
            captured = [(p, v) for p, v in captured[:40] if st.get(v["orders"][0]) == "SUCCESS"]
        if len(captured) < 2:
            self.note("refunds not sent: fewer than 2 captured card orders")
        else:
            full, part = captured[0][1], captured[1][1]
            self.request("refund, full %d.00" % full["amount"], "/v1/refunds",
                         {"payment_order_id": full["orders"][0], "amount": "%d.00" % full["amount"],
                          "currency": "IDR"})
            self.request("refund, partial 30000.00", "/v1/refunds",
                         {"payment_order_id": part["orders"][0], "amount": "30000.00", "currency": "IDR"})
            self.request("refund, partial 20000.00 (same order)", "/v1/refunds",
                         {"payment_order_id": part["orders"][0], "amount": "20000.00", "currency": "IDR"})

        def payout(what, seller, amount, account="1234567890"):
            return self.request(what, "/v1/payouts", {
                "seller_id": seller, "amount": "%d.00" % amount, "currency": "IDR",
                "channel": "bank_account", "bank_code": "BCA", "destination_account": account,
                "account_holder": "Demo Seller"})
        payout("payout 150000.00", "seller-0", 150000)
        payout("payout to a blocked account", "seller-2", 50000, account="9876543210")
        payout("payout above the balance", "seller-11", 90000000)
        # a payout the PSP declines: every charge or payout call declines while it is sent,
        # so the others are executed first
        if self.has("psp-sandbox", "risk", "executor"):
            sent = list(self.payouts)
            self.wait("payouts executed", lambda: all(s not in ("REQUESTED", "HELD") for _, s in pipeline.psql(
                "SELECT payout_id, status FROM payouts WHERE payout_id = ANY(%s)" % pipeline.sql_list(sent))), timeout)
            self.sandbox.call("POST", "/_sandbox/faults", {"decline_pct": 100})
            try:
                st, j = payout("payout declined by the PSP", "seller-3", 40000)
                pid = j.get("payout_id") if isinstance(j, dict) else None
                if pid:
                    self.wait("declined payout executed", lambda: pipeline.psql(
                        "SELECT status FROM payouts WHERE payout_id = '%s'" % pid)[0][0]
                        not in ("REQUESTED", "HELD"), timeout)
            finally:
                self.sandbox.call("POST", "/_sandbox/faults", {"decline_pct": 0})

    # --- 4. poison and settlement -------------------------------------------------------------
    def poison_and_settlement(self):
        p = subprocess.run(["kcat", "-b", self.env["KASIR_KAFKA_BROKERS"], "-P", "-t",
                            "kasir.payments.requested", "-k", "demo-poison-" + self.run],
                           input=b"this is not an Avro message", capture_output=True, timeout=30)
        self.rows.append(("poison message to kasir.payments.requested", "kcat",
                          "sent" if p.returncode == 0 else p.stderr.decode()[:80]))
        day = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
        for asked in ("missing:1,amount:1,extra:1,fee:1", "extra:1"):  # a day with few rows: less
            st, j = self.sandbox.call("GET", "/_sandbox/settlements/sandbox?date=%s&discrepancies="
                                      "%s&seed=7&manifest=1" % (day, asked))
            if st == 200:
                break
        if st != 200 or not isinstance(j, dict):
            self.note("no settlement file from the sandbox (%s)" % st)
            return
        classes = ",".join(sorted({x["class"] for x in j.get("injected", [])}))
        st, r = self.api.call("POST", "/v1/settlements/sandbox", key=self.ops,
                              raw=j["csv"].encode(), ctype="text/csv",
                              headers={"Idempotency-Key": "demo-settle-" + self.run})
        self.rows.append(("settlement file, %d lines, injected %s" % (j["csv"].count("\n") - 1, classes),
                          st, r.get("file_id", r.get("code", "")) if isinstance(r, dict) else ""))

    # --- 5. quiet, then the summary ---------------------------------------------------------
    def webhooks_delivered(self):
        if not self.has("psp-sandbox"):
            return True
        st, j = self.sandbox.call("GET", "/_sandbox/webhooks")
        return st == 200 and all(200 <= d.get("status", 0) < 300 or d.get("attempts", 0) >= 5
                                 for d in j.get("deliveries", []))

    def summary(self, groups, timeout):
        print("demo: waiting until the pipeline is quiet (consumer lag 0, no outbox row, "
              "webhooks delivered)", flush=True)
        last = [0.0]

        def progress(state):
            if time.time() - last[0] > 10:
                last[0] = time.time()
                print("demo:   lag %s, outbox %s" % (state["lag"], state["outbox"]), flush=True)
        ok, state = pipeline.quiet(groups, timeout, extra=self.webhooks_delivered, progress=progress)
        if not ok:
            self.note("the pipeline was not quiet after %d s: lag %s, outbox %s"
                      % (timeout, state["lag"], state["outbox"]))

        print()
        print("  %-58s %-6s %s" % ("request", "status", "result"))
        for w, st, d in self.rows:
            print("  %-58s %-6s %s" % (w, st, d))
        ids = pipeline.sql_list(list(self.payments))
        print("\n  payments of this run by status")
        for st, n in pipeline.psql("SELECT status, count(*) FROM payments WHERE payment_id = ANY(%s) "
                                   "GROUP BY 1 ORDER BY 1" % ids):
            print("    %-18s %6s" % (st, n))
        print("  their orders by method and status")
        for method, st, n in pipeline.psql(
                "SELECT method, status, count(*) FROM payment_orders WHERE payment_id = ANY(%s) "
                "GROUP BY 1, 2 ORDER BY 1, 2" % ids):
            print("    %-18s %-18s %6s" % (method, st, n))
        for table, col, got in (("refunds", "refund_id", self.refunds), ("payouts", "payout_id", self.payouts)):
            rows = pipeline.psql("SELECT status, count(*) FROM %s WHERE %s = ANY(%s) GROUP BY 1 ORDER BY 1"
                                 % (table, col, pipeline.sql_list(list(got)))) if got else []
            print("  %s of this run: %s" % (table, ", ".join("%s %s" % (s, n) for s, n in rows) or "none"))
        print("\n  ledger totals by account type, on their normal side (the demo partners' "
              "accounts; the platform's hold every partner's, tests' too)")
        mine = pipeline.sql_list([self.env.get("KASIR_DEMO_PARTNER_A", ""),
                                  self.env.get("KASIR_DEMO_PARTNER_B", "")])
        for typ, cur, n, total in pipeline.psql(
                "SELECT type, currency, count(*), sum(balance_minor) FROM ledger_account_balances "
                "WHERE partner_id = ANY(%s) OR partner_id IS NULL GROUP BY 1, 2 ORDER BY 1, 2" % mine):
            print("    %-16s %s %6s accounts %20s" % (typ, cur, n, money(int(total), cur)))
        ledger_dsn = re.sub(r"user=\S+", "user=kasir_ledger", self.env["KASIR_PG_DSN"])
        env = dict(os.environ, KASIR_PG_DSN=ledger_dsn)
        v = subprocess.run([os.path.join(TOP, "build", "bin", "kasir-ledger"), "verify"], env=env,
                           capture_output=True, text=True, timeout=300)
        verify_line = (v.stdout.strip().splitlines() or [v.stderr.strip()])[-1]
        print("\n  kasir-ledger verify (exit %d): %s" % (v.returncode, verify_line))
        print("\n  dead letters per topic (whole topics: every run on this stack)")
        for t, n in sorted(pipeline.dlq_counts().items()):
            if not t.startswith("kasir.demo."):
                print("    %-40s %d" % (t, n))
        print()
        if self.figure:
            n, secs, sent = self.figure
            print("  the figure of the run: %d card payments, from the first request to the last "
                  "payment final in %.1f s = %.0f payments/s end to end" % (n, secs, n / secs))
            print("  (this Python client sent them at %.0f/s: when the two are close, the client was "
                  "the limit; `make bench BENCH=e2e` drives the pipeline at its bar)" % (n / max(sent, 1e-6)))
        else:
            print("  the figure of the run: not measured (see above)")
        if self.notes:
            print("\n  not shown in this run:")
            for m in self.notes:
                print("    - " + m)
        return ok and v.returncode == 0


def money(minor, cur):
    sign = "-" if minor < 0 else ""
    minor = abs(minor)
    return "%s%s.%02d %s" % (sign, "{:,}".format(minor // 100), minor % 100, cur)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--payments", type=int, default=int(os.environ.get("KASIR_DEMO_PAYMENTS", 1000)))
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--timeout", type=float, default=float(os.environ.get("KASIR_DEMO_TIMEOUT", 180)))
    a = ap.parse_args()
    env = read_env(os.environ.get("KASIR_SERVICES_ENV") or os.path.join(TOP, "var", "demo.env"))
    pipeline.BROKERS, pipeline.PG_DSN = env["KASIR_KAFKA_BROKERS"], env["KASIR_PG_DSN"]
    daemons = (os.environ.get("KASIR_DEMO_DAEMONS") or
               "psp-sandbox ingress risk executor ledger webhooks").split()
    d = Demo(env, daemons)
    d.burst(a.payments, a.threads, a.timeout)
    d.rails(a.timeout)
    d.refunds_payouts(a.timeout)
    d.poison_and_settlement()
    groups = pipeline.groups(env.get("KASIR_GROUP_SUFFIX", ""),
                             [w for w in pipeline.WORKERS if w in daemons])
    return 0 if d.summary(groups, a.timeout) else 1


if __name__ == "__main__":
    sys.exit(main())
