"""401: the ledger's rules hold against raw SQL, as the daemon's own role (kasir_ledger) and,
for the triggers, as the owner: no unbalanced entry (at the INSERT and at COMMIT), no UPDATE,
DELETE or TRUNCATE of an entry, a posting or an account, no balance written by hand, no
posting added to an entry already written."""
import subprocess

import pytest

from conftest import PG_DSN
from ledger_util import LEDGER_DSN, owner_entry, psql, psql_one



@pytest.fixture(scope="module")
def entry():
    """One balanced, properly chained entry (written through ledger_post by the owner), to
    attack as the daemon's role."""
    yield owner_entry("t401", 500)


def refused(sql, *, as_owner=False):
    """Runs sql as kasir_ledger (or as the owner, a superuser); asserts it failed; returns
    the error text."""
    dsn = PG_DSN if as_owner else LEDGER_DSN
    r = subprocess.run(["psql", dsn, "-v", "ON_ERROR_STOP=1", "-qtAX", "-c", sql],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0, "accepted: %s" % sql
    return r.stdout + r.stderr


def test_role_is_not_privileged():
    rows = psql("SELECT rolsuper, rolcreaterole, rolbypassrls FROM pg_roles WHERE rolname = 'kasir_ledger'")
    assert rows == [["f", "f", "f"]]
    out = refused("SET session_replication_role = replica")
    assert "permission denied" in out
    out = refused("ALTER TABLE ledger_postings DISABLE TRIGGER ALL")
    assert "must be owner" in out


@pytest.mark.parametrize("table", ["ledger_postings", "ledger_entries", "ledger_accounts"])
def test_no_update_delete_truncate(entry, table):
    chain, eid = entry
    where = {"ledger_postings": "entry_id = %d" % eid, "ledger_entries": "entry_id = %d" % eid,
             "ledger_accounts": "account = 'bank/IDR'"}[table]
    setcol = {"ledger_postings": "amount_minor = 1", "ledger_entries": "reference = 'x'",
              "ledger_accounts": "currency = 'USD'"}[table]
    for as_owner in (False, True):
        out = refused("UPDATE %s SET %s WHERE %s" % (table, setcol, where), as_owner=as_owner)
        assert ("append-only" in out) or ("permission denied" in out), out
        out = refused("DELETE FROM %s WHERE %s" % (table, where), as_owner=as_owner)
        assert ("append-only" in out) or ("permission denied" in out), out
        out = refused("TRUNCATE %s CASCADE" % table, as_owner=as_owner)
        assert ("append-only" in out) or ("permission denied" in out), out
    # the owner is stopped by the triggers themselves, not by privileges
    out = refused("UPDATE %s SET %s WHERE %s" % (table, setcol, where), as_owner=True)
    assert "append-only" in out
    out = refused("TRUNCATE %s CASCADE" % table, as_owner=True)
    assert "append-only" in out
    assert psql_one("SELECT count(*) FROM ledger_postings WHERE entry_id = %d AND "
                    "abs(amount_minor) = 500" % eid) == "2"


def test_unbalanced_entry_refused(entry):
    chain, _ = entry
    eid = int(psql_one("SELECT nextval('ledger_entries_entry_id_seq')"))
    ins = ("INSERT INTO ledger_entries (entry_id, chain, seq, source_key, kind, journal_id, "
           "reference, n_lines, prev_hash, hash) VALUES (%d, '%s', 2, '%s:k2', 'adjustment', "
           "'j', 'r', 2, '\\x00', '\\x00');" % (eid, chain, chain))
    # lines that do not balance: refused by the INSERT's statement check
    out = refused("BEGIN;" + ins + "INSERT INTO ledger_postings VALUES "
                  "(%d, 1, 'bank/IDR', 500, 'IDR', '%s'), (%d, 2, 'psp_clearing/sandbox/IDR', "
                  "-499, 'IDR', '%s'); COMMIT;" % (eid, chain, eid, chain))
    assert "unbalanced in IDR by 1" in out, out
    # an entry whose postings never come: refused at COMMIT by the deferred constraint trigger
    out = refused("BEGIN;" + ins + "COMMIT;")
    assert "has 0 postings, expected 2" in out, out
    # the deferred check also fires on demand (what the runtime's savepoint pass does)
    out = refused("BEGIN;" + ins + "SET CONSTRAINTS ALL IMMEDIATE; SELECT 'not reached';")
    assert "has 0 postings" in out and "not reached" not in out, out
    # lines written one statement at a time: refused (an entry is written whole)
    out = refused("BEGIN;" + ins + "INSERT INTO ledger_postings VALUES "
                  "(%d, 1, 'bank/IDR', 500, 'IDR', '%s'); INSERT INTO ledger_postings VALUES "
                  "(%d, 2, 'psp_clearing/sandbox/IDR', -500, 'IDR', '%s'); COMMIT;"
                  % (eid, chain, eid, chain))
    assert "lines missing" in out or "unbalanced" in out, out
    # a currency line on an account of another currency
    out = refused("BEGIN;" + ins + "INSERT INTO ledger_postings VALUES "
                  "(%d, 1, 'bank/IDR', 500, 'USD', '%s'), (%d, 2, 'psp_clearing/sandbox/IDR', "
                  "-500, 'USD', '%s'); COMMIT;" % (eid, chain, eid, chain))
    assert "not in USD" in out, out
    assert psql_one("SELECT count(*) FROM ledger_entries WHERE entry_id = %d" % eid) == "0"


def test_no_posting_added_to_a_written_entry(entry):
    chain, eid = entry
    out = refused("INSERT INTO ledger_postings VALUES (%d, 3, 'bank/IDR', 7, 'IDR', '%s'), "
                  "(%d, 4, 'psp_clearing/sandbox/IDR', -7, 'IDR', '%s')" % (eid, chain, eid, chain))
    assert "line range" in out, out
    out = refused("INSERT INTO ledger_postings VALUES (%d, 2, 'bank/IDR', 7, 'IDR', '%s')"
                  % (eid, chain))
    assert "duplicate key" in out or "unbalanced" in out, out


def test_balances_only_move_with_postings(entry):
    out = refused("UPDATE ledger_balances SET balance_minor = 0 WHERE account = 'bank/IDR'")
    assert "permission denied" in out
    for sql in ("UPDATE ledger_balances SET balance_minor = 0 WHERE account = 'bank/IDR'",
                "INSERT INTO ledger_balances VALUES ('bank/IDR', 'x', 1, 1)",
                "DELETE FROM ledger_balances WHERE account = 'bank/IDR'",
                "TRUNCATE ledger_balances"):
        out = refused(sql, as_owner=True)
        assert "balances change only with their postings" in out, (sql, out)
