"""308: the state machines of payments, payment orders and payouts are enforced by
PostgreSQL (810_status_machine.sql and its triggers): a move not in kasir_transitions - out of a terminal state
above all - fails with SQLSTATE KS422 whoever writes it, and kasir_transition_ok lets a
writer filter instead of failing."""
import subprocess
import uuid

from conftest import PG_DSN
from risk_util import psql, psql_one


def sql_error(sql):
    p = subprocess.run(["psql", PG_DSN, "-v", "ON_ERROR_STOP=1", "-qtAX", "-v", "VERBOSITY=verbose",
                        "-c", sql], capture_output=True, text=True, timeout=30)
    return p.returncode, p.stderr


def test_transitions_checked_in_sql():
    t = uuid.uuid4().hex[:10]
    pay, order, payout = "pay_t308_" + t, "ord_t308_" + t, "pyo_t308_" + t
    psql("INSERT INTO payments (payment_id, partner_id, checkout_id, buyer_id, status) "
         "VALUES ('%s', 'p308', 'co_%s', 'b', 'NOT_STARTED')" % (pay, t))
    psql("INSERT INTO payment_orders (order_id, payment_id, partner_id, seq, seller_id, "
         "amount_minor, currency, method) VALUES ('%s', '%s', 'p308', 0, 's', 1, 'IDR', 'QRIS')"
         % (order, pay))
    psql("INSERT INTO payouts (payout_id, partner_id, seller_id, amount_minor, currency, channel, "
         "destination_account, status) VALUES ('%s', 'p308', 's', 1, 'IDR', 'BANK_ACCOUNT', "
         "'12345', 'REQUESTED')" % payout)

    # allowed moves
    psql("UPDATE payments SET status = 'EXECUTING' WHERE payment_id = '%s'" % pay)
    psql("UPDATE payment_orders SET status = 'EXECUTING' WHERE order_id = '%s'" % order)
    psql("UPDATE payment_orders SET status = 'PENDING_CUSTOMER' WHERE order_id = '%s'" % order)
    psql("UPDATE payment_orders SET status = 'SUCCESS' WHERE order_id = '%s'" % order)
    psql("UPDATE payments SET status = 'SUCCESS' WHERE payment_id = '%s'" % pay)
    for s in ("HELD", "REQUESTED", "EXECUTING", "PAID_OUT"):
        psql("UPDATE payouts SET status = '%s' WHERE payout_id = '%s'" % (s, payout))

    # out of terminal states, and backwards: refused, whoever asks
    for table, key, value, to in (("payments", "payment_id", pay, "FAILED"),
                                  ("payments", "payment_id", pay, "NOT_STARTED"),
                                  ("payment_orders", "order_id", order, "EXPIRED"),
                                  ("payment_orders", "order_id", order, "EXECUTING"),
                                  ("payouts", "payout_id", payout, "FAILED")):
        rc, err = sql_error("UPDATE %s SET status = '%s' WHERE %s = '%s'" % (table, to, key, value))
        assert rc != 0 and "KS422" in err and "cannot move" in err, (table, to, err)
    assert psql_one("SELECT status FROM payments WHERE payment_id = '%s'" % pay) == "SUCCESS"
    assert psql_one("SELECT status FROM payouts WHERE payout_id = '%s'" % payout) == "PAID_OUT"
    # a status written again unchanged, or another column, is no move
    psql("UPDATE payments SET status = 'SUCCESS', updated_at = now() WHERE payment_id = '%s'" % pay)
    psql("UPDATE payment_orders SET refund_requested_minor = 1 WHERE order_id = '%s'" % order)

    # the filter writers use
    ok = lambda e, a, b: psql_one("SELECT kasir_transition_ok('%s', '%s', '%s')" % (e, a, b))  # noqa: E731
    assert ok("payment", "NOT_STARTED", "FAILED") == "t"
    assert ok("payment", "FAILED", "EXECUTING") == "f"
    assert ok("order", "PENDING_CUSTOMER", "EXPIRED") == "t"
    assert ok("payout", "HELD", "REQUESTED") == "t"
    assert ok("payout", "PAID_OUT", "FAILED") == "f"
    # terminal states have no way out
    terminal = psql("SELECT entity || ':' || s FROM (VALUES ('payment', 'SUCCESS'), "
                    "('payment', 'FAILED'), ('order', 'SUCCESS'), ('order', 'FAILED'), "
                    "('order', 'EXPIRED'), ('payout', 'PAID_OUT'), ('payout', 'FAILED')) v(entity, s) "
                    "WHERE EXISTS (SELECT 1 FROM kasir_transitions t WHERE t.entity = v.entity "
                    "AND t.from_status = v.s)")
    assert terminal == []
    psql("DELETE FROM payment_orders WHERE order_id = '%s'; DELETE FROM payments WHERE "
         "payment_id = '%s'; DELETE FROM payouts WHERE payout_id = '%s'" % (order, pay, payout))
