"""422: `kasir-ledger verify` holds no snapshot between its reads.

verify read the whole ledger in one REPEATABLE READ transaction: on a large ledger, minutes
(2.6 M entries: 27 s here) during which PostgreSQL can clean up no row changed since it
began, in any table, the pipeline's hot rows among them (payments, orders, balance stripes,
the outbox). Now one short transaction reads the heads, stripes and accounts, and the
entries are read a range of each chain per statement, each its own snapshot.

Here verify goes through a proxy that holds the answer to its first read of entries for 4
s (the statement has run; its answer waits). The first chain in verify's order is this
test's own one-entry chain ("!!" sorts before every other chain's name, and a later run's
before an earlier one's), so that answer is small. While it is held, verify's session is idle with no snapshot (backend_xmin NULL);
before, it sat in its transaction with its snapshot. verify then passes."""
import os
import subprocess
import time

from conftest import STACK, bin_path, daemon_dsn, psql, psql_one, unique
from ingress_util import PgProxy
from ledger_util import owner_entry

HOLD_S = 4
PATTERN = b"FROM ledger_entries e LEFT JOIN ledger_postings p"


def test_verify_holds_no_snapshot_while_it_reads():
    # a later run's chain sorts before an earlier one's (entries cannot be removed)
    c, _ = owner_entry(None, 100, chain="!!t422-%013d-%s"
                       % (10 ** 13 - int(time.time() * 1000), unique("c")))
    assert psql_one("SELECT chain FROM ledger_chains WHERE last_seq > 0 "
                    "ORDER BY chain COLLATE \"C\" LIMIT 1") == c
    px = PgProxy()
    px.delay_answer_on(PATTERN, HOLD_S)
    since = psql_one("SELECT now()")
    env = dict(os.environ)
    env.update(STACK)
    env["KASIR_PG_DSN"] = daemon_dsn(
        "ledger", "host=127.0.0.1 port=%d dbname=kasir user=kasir" % px.port)
    p = subprocess.Popen([bin_path("ledger"), "verify"], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    try:
        assert px.answer_held.wait(60), "verify never read entries"
        rows = psql("SELECT state, backend_xmin IS NOT NULL, backend_xid IS NOT NULL "
                    "FROM pg_stat_activity WHERE usename = 'kasir_ledger' "
                    "AND backend_start >= '%s'" % since)
        assert px.answer_held.is_set(), "the hold ended before the look: nothing was tested"
        assert rows, "verify's session not found"
        assert all(r == ["idle", "f", "f"] for r in rows), (
            "verify's session holds a snapshot while its answer waits: %s" % rows)
        out, _ = p.communicate(timeout=600)
    finally:
        if p.poll() is None:
            p.kill()
        px.close()
    assert p.returncode == 0 and "verify: ok" in out, out
