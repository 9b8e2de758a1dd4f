"""310: risk writes the read model's rows in the order an ingress before session 29 wrote
them: every payment first, in id order, then the orders. Such an ingress's finish
(payments in id order, then their orders), still running in a rolling deploy, and risk's
decisions of the same payments then wait for each other but never deadlock (since session
29 the ingress writes no rows of a payment, and risk writes them all).

The ingress's transaction is played by a psql session doing what its finish does, held
between its two payments by a trigger (its session's only: risk's own insert of B must not
sleep); risk decides both meanwhile: A (rejected: its row
moves to FAILED) and B (approved: its missing rows are written, since the ingress answers
before writing them). Before, risk wrote B, its order and A's order before waiting for A,
and the ingress's insert of B waited for risk: PostgreSQL broke the cycle after
deadlock_timeout by failing one of them."""
import os
import subprocess
import time

from conftest import PG_DSN, psql, psql_one
from risk_util import Risk, produce, risk_daemons, status  # noqa: F401
from runtime_util import wait_until


def test_ingress_finish_and_risk_decisions_do_not_deadlock(risk_daemons):
    r = Risk("t310", [{"id": "bl-buyer", "type": "blocklist", "list": "buyer",
                       "values": ["evil-buyer"]}], partitions=1)  # one batch for both
    va = ("s1", 100000, "IDR", "VIRTUAL_ACCOUNT")
    a = r.payment(buyer="evil-buyer", orders=[va], payment_id="pay_%s_a" % r.name)
    b = r.payment(buyer="fine", orders=[va], payment_id="pay_%s_b" % r.name)
    av, bv = a["value"], b["value"]
    tag = r.name.replace("-", "_")
    psql("CREATE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
         "IF NEW.payment_id = '%s' AND current_setting('application_name') = 'fake_ingress' "
         "THEN PERFORM pg_sleep(4); END IF; RETURN NEW; END $$; "
         "CREATE TRIGGER %s BEFORE INSERT ON payments FOR EACH ROW "
         "WHEN (NEW.partner_id = '%s') EXECUTE FUNCTION %s()"
         % (tag, bv["payment_id"], tag, r.partner, tag))
    d = r.start(risk_daemons)
    produce([r.payment(buyer="warm", orders=[va])])
    r.wait_decided(1, timeout=60)  # risk is assigned and deciding
    try:
        # the ingress's finish: A, then (4 s later) B, then the orders
        rows = ", ".join("('%s', '%s', '%s', '%s', 'NOT_STARTED')"
                         % (v["payment_id"], r.partner, v["checkout_id"], v["buyer_id"])
                         for v in (av, bv))
        ords = ", ".join("('%s', '%s', '%s', 0, 's1', 100000, 'IDR', 'VIRTUAL_ACCOUNT')"
                         % (v["orders"][0]["order_id"], v["payment_id"], r.partner)
                         for v in (av, bv))
        ingress = subprocess.Popen(
            ["psql", PG_DSN, "-qtAX", "-v", "ON_ERROR_STOP=1", "-c",
             "BEGIN; INSERT INTO payments (payment_id, partner_id, checkout_id, buyer_id, "
             "status) VALUES %s; INSERT INTO payment_orders (order_id, payment_id, partner_id, "
             "seq, seller_id, amount_minor, currency, method) VALUES %s; COMMIT;"
             % (rows, ords)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=dict(os.environ, PGAPPNAME="fake_ingress"))  # only its insert of B sleeps
        wait_until(lambda: psql_one("SELECT count(*) FROM pg_stat_activity "
                                    "WHERE wait_event = 'PgSleep' "
                                    "AND query LIKE 'BEGIN; INSERT INTO payments%'") == "1",
                   timeout=10, what="the ingress's finish between its payments")
        produce([a, b])  # risk decides both while the finish sleeps
        out, _ = ingress.communicate(timeout=60)
        assert ingress.returncode == 0, out
        assert "deadlock" not in out
        r.wait_decided(3, timeout=60)
        wait_until(lambda: status("payments", "payment_id", av["payment_id"]) == "FAILED",
                   timeout=30, what="A failed")
        assert status("payment_orders", "order_id", av["orders"][0]["order_id"]) == "FAILED"
        assert status("payments", "payment_id", bv["payment_id"]) == "NOT_STARTED"
        assert status("payment_orders", "order_id", bv["orders"][0]["order_id"]) == \
            "NOT_STARTED"
        time.sleep(0.5)
        assert "deadlock" not in open(d.log_path, errors="replace").read()
    finally:
        psql("DROP TRIGGER IF EXISTS %s ON payments; DROP FUNCTION IF EXISTS %s()" % (tag, tag))
