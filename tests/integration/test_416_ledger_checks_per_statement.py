"""416: the database checks on the ledger's hot path cost a call per statement, not per row,
and refuse what they refused before (840_ledger.sql, docs/LEDGER.md "Cost per entry"):
- a status move that kasir_transitions allows calls no function (the guards' WHEN clause
  lists the allowed moves), the lists are the table's, and they follow the table: a row
  removed refuses the move, a row added allows it, in that very transaction;
- the COMMIT check runs once per INSERT statement into ledger_entries whatever its number of
  entries, names the entry whose postings never came, leaves nothing behind, and its pending
  row cannot be taken away by hand;
- ledger_post() posts under SET CONSTRAINTS ALL IMMEDIATE (the worker runtime's
  one-message-at-a-time pass), since the entry and its postings come in one statement."""
import re
import subprocess
import uuid

from conftest import PG_DSN, psql, psql_one, unique
from ledger_util import LEDGER_DSN


def run(sql, dsn=PG_DSN):
    """Runs sql statement by statement in one session; returns (returncode, stdout, stderr)."""
    p = subprocess.run(["psql", dsn, "-v", "ON_ERROR_STOP=1", "-qtAX", "-f", "-"], input=sql,
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def calls(fn):
    """The SQL of this transaction's call count of fn (track_functions on in the session)."""
    return "SELECT coalesce(pg_stat_get_xact_function_calls('%s'::regproc), 0);" % fn


def guard_lists():
    """{(table, from, to)} as the guards' WHEN clauses list them."""
    moves = set()
    for tbl, tdef in psql("SELECT c.relname, replace(pg_get_triggerdef(t.oid), E'\\n', ' ') FROM pg_trigger t "
                          "JOIN pg_class c ON c.oid = t.tgrelid WHERE t.tgname LIKE '%_transition' "
                          "AND c.relname IN ('payments', 'payment_orders', 'payouts', 'refunds')"):
        for frm, tos in re.findall(r"WHEN '(\w+)'::text THEN \(?new\.status = "
                                   r"(ANY \(ARRAY\[[^\]]*\]\)|'\w+'::text)", tdef):
            for to in re.findall(r"'(\w+)'::text", tos):
                moves.add((tbl, frm, to))
    return moves


def test_status_guards_list_the_table_and_follow_it():
    entity = {"payment": "payments", "order": "payment_orders", "payout": "payouts",
              "refund": "refunds"}
    table = {(entity[e], f, t) for e, f, t in
             psql("SELECT entity, from_status, to_status FROM kasir_transitions")}
    assert len(table) >= 20 and guard_lists() == table

    t = uuid.uuid4().hex[:10]
    pay, order = "pay_t416_" + t, "ord_t416_" + t
    psql("INSERT INTO payments (payment_id, partner_id, checkout_id, buyer_id, status) "
         "VALUES ('%s', 'p416', 'co_%s', 'b', 'NOT_STARTED')" % (pay, t))
    psql("INSERT INTO payment_orders (order_id, payment_id, partner_id, seq, seller_id, "
         "amount_minor, currency, method) VALUES ('%s', '%s', 'p416', 0, 's', 1, 'IDR', 'CARD')"
         % (order, pay))
    try:
        # allowed moves: no call of the guard
        rc, out, err = run("BEGIN; SET track_functions = 'pl';"
                           "UPDATE payment_orders SET status = 'EXECUTING' WHERE order_id = '%s';"
                           "UPDATE payments SET status = 'EXECUTING' WHERE payment_id = '%s';"
                           "%s COMMIT;" % (order, pay, calls("kasir_transition_guard")))
        assert rc == 0 and out.split() == ["0"], (out, err)
        # a refused move still calls it, and it refuses
        rc, out, err = run("UPDATE payment_orders SET status = 'NOT_STARTED' WHERE order_id = '%s';"
                           % order)
        assert rc != 0 and "cannot move order from EXECUTING to NOT_STARTED" in err, err
        # a row removed: the move it allowed is refused in that transaction
        rc, out, err = run("BEGIN; DELETE FROM kasir_transitions WHERE entity = 'order' AND "
                           "from_status = 'EXECUTING' AND to_status = 'SUCCESS';"
                           "UPDATE payment_orders SET status = 'SUCCESS' WHERE order_id = '%s';"
                           "ROLLBACK;" % order)
        assert rc != 0 and "cannot move order from EXECUTING to SUCCESS" in err, err
        # a row added: the move is allowed, without a call
        rc, out, err = run("BEGIN; SET track_functions = 'pl';"
                           "INSERT INTO kasir_transitions VALUES ('order', 'EXECUTING', 'NOT_STARTED');"
                           "UPDATE payment_orders SET status = 'NOT_STARTED' WHERE order_id = '%s';"
                           "%s ROLLBACK;" % (order, calls("kasir_transition_guard")))
        assert rc == 0 and out.split() == ["0"], (out, err)
        # both rolled back: the guards are the table's again
        assert guard_lists() == table
        rc, out, err = run("UPDATE payment_orders SET status = 'NOT_STARTED' WHERE order_id = '%s';"
                           % order)
        assert rc != 0 and "cannot move order from EXECUTING to NOT_STARTED" in err, err
        assert psql_one("SELECT status FROM payment_orders WHERE order_id = '%s'" % order) == "EXECUTING"
    finally:
        psql("DELETE FROM payment_orders WHERE order_id = '%s'; DELETE FROM payments WHERE "
             "payment_id = '%s'" % (order, pay))


def entries_sql(chain, ids, with_postings):
    """One INSERT statement of two-line entries ids on chain (seq 1..), and their postings for
    the ids in with_postings, in the same statement."""
    rows = ", ".join("(%d, '%s', %d, '%s:%d', 'adjustment', 'j', 'r', 2, '\\x00', '\\x00')"
                     % (eid, chain, k + 1, chain, eid) for k, eid in enumerate(ids))
    lines = ", ".join("(%d, 1, 'bank/IDR', 5, 'IDR', '%s'), (%d, 2, 'psp_clearing/sandbox/IDR', "
                      "-5, 'IDR', '%s')" % (eid, chain, eid, chain) for eid in with_postings)
    sql = ("WITH e AS (INSERT INTO ledger_entries (entry_id, chain, seq, source_key, kind, "
           "journal_id, reference, n_lines, prev_hash, hash) VALUES %s RETURNING entry_id)" % rows)
    if lines:
        sql += (", p AS (INSERT INTO ledger_postings (entry_id, line, account, amount_minor, "
                "currency, chain) VALUES %s)" % lines)
    return sql + " SELECT count(*) FROM e;"


def new_ids(n):
    return [int(r[0]) for r in psql("SELECT nextval('ledger_entries_entry_id_seq') "
                                    "FROM generate_series(1, %d)" % n)]


def accounts():
    psql("SELECT ledger_account('bank', NULL, NULL, NULL, 'IDR'), "
         "ledger_account('psp_clearing', NULL, NULL, 'sandbox', 'IDR')")


def test_commit_check_once_per_statement():
    accounts()
    chain, ids = unique("t416"), new_ids(3)
    # (rolled back: the entries' hashes are made up, and the ledger keeps what commits)
    rc, out, err = run("BEGIN; SET track_functions = 'pl';" + entries_sql(chain, ids, ids) +
                       "SELECT count(*) FROM ledger_entry_checks;"
                       "SET CONSTRAINTS ALL IMMEDIATE;" + calls("ledger_entry_balanced") +
                       "SELECT count(*) FROM ledger_entry_checks; ROLLBACK;")
    # three entries, one pending check, one call, nothing left
    assert rc == 0 and out.split() == ["3", "1", "1", "0"], (out, err)


def test_commit_check_names_the_entry_without_postings():
    accounts()
    chain, ids = unique("t416"), new_ids(3)
    rc, out, err = run("BEGIN;" + entries_sql(chain, ids, [ids[0], ids[2]]) + "COMMIT;")
    assert rc != 0 and "ledger: entry %d (%s:%d) has 0 postings, expected 2" % (
        ids[1], chain, ids[1]) in err, err
    # two statements: each is checked
    more = new_ids(1)
    rc, out, err = run("BEGIN;" + entries_sql(chain, ids, ids) +
                       entries_sql(chain + "b", more, []) + "COMMIT;")
    assert rc != 0 and "ledger: entry %d " % more[0] in err, err
    assert psql_one("SELECT count(*) FROM ledger_entries WHERE entry_id IN (%s)"
                    % ", ".join(map(str, ids + more))) == "0"


def test_pending_check_cannot_be_removed():
    accounts()
    chain, ids = unique("t416"), new_ids(1)
    for undo in ("DELETE FROM ledger_entry_checks;",
                 "UPDATE ledger_entry_checks SET entry_ids = '{}', n_lines = '{}';",
                 "TRUNCATE ledger_entry_checks;"):
        rc, out, err = run("BEGIN;" + entries_sql(chain, ids, []) + undo + "COMMIT;")
        # (PostgreSQL itself refuses to truncate a table with pending trigger events)
        assert rc != 0 and ("removed only by the check" in err or
                            "pending trigger events" in err), (undo, err)
    rc, out, err = run("TRUNCATE ledger_entry_checks;")
    assert rc != 0 and "removed only by the check" in err, err
    rc, out, err = run("SELECT count(*) FROM ledger_entry_checks;", dsn=LEDGER_DSN)
    assert rc != 0 and "permission denied" in err, err
    assert psql_one("SELECT count(*) FROM ledger_entries WHERE entry_id = %d" % ids[0]) == "0"


def test_ledger_post_under_immediate_constraints():
    chain = unique("t416")
    rc, out, err = run(
        "BEGIN; SET CONSTRAINTS ALL IMMEDIATE;"
        "SELECT ledger_post('%s', '%s:k', 'adjustment', 'j', NULL, 'r', "
        "ARRAY[ledger_account('bank', NULL, NULL, NULL, 'IDR'), "
        "ledger_account('psp_clearing', NULL, NULL, 'sandbox', 'IDR')], "
        "ARRAY[700, -700]::bigint[], 'IDR') IS NOT NULL; COMMIT;" % (chain, chain))
    assert rc == 0 and out.split() == ["t"], (out, err)
    assert psql("SELECT p.line, p.amount_minor FROM ledger_postings p JOIN ledger_entries e "
                "USING (entry_id) WHERE e.chain = '%s' ORDER BY 1" % chain) == [["1", "700"],
                                                                              ["2", "-700"]]
