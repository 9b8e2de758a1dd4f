"""610 (review): a journal row the executor did not write is not a licence to call.

Two instances can hold the same command at once (its main-topic copy on one, its retry
copy on the other; their circuits and so their failover choices differ). Both look it up,
find no attempt, and journal attempt 1 - one at the primary, one at the secondary. The
journal's INSERT ... ON CONFLICT DO NOTHING lets the loser "commit" nothing and send anyway:
two PSPs charge one order. Here the other instance's attempt 1 (at stripe, still in
flight) is inserted and held uncommitted while this executor looks up and journals: its
insert waits, finds the row, writes nothing - and must then not send to the sandbox. It
asks stripe, the PSP of the attempt that exists, instead."""
import subprocess
import time

from conftest import PG_DSN
from executor_util import Exec, produce, psql, wait_until
from sandbox_util import sandbox  # noqa: F401 (fixture)


def test_conflicting_journal_row_is_not_sent(daemons, sandbox):
    ex = Exec("ex610", partitions=1)
    o = ex.order_id(0)
    ex.orders([(o, 120000, "CARD")])
    cmd = ex.command(o, 120000)
    cid, key = cmd["value"]["command_id"], cmd["value"]["psp_idempotency_key"]
    # the other instance's journal commit, in flight: attempt 1 at stripe
    holder = subprocess.Popen(
        ["psql", PG_DSN, "-v", "ON_ERROR_STOP=1", "-qtAX", "-c",
         "BEGIN; INSERT INTO executor_attempts (command_id, attempt, kind, object_id, order_id, "
         "psp, method, idem_key, amount_minor, currency) VALUES ('%s', 1, 'CHARGE', '%s', '%s', "
         "'stripe', 'CARD', '%s', 120000, 'IDR'); SELECT pg_sleep(12); COMMIT;" % (cid, o, o, key)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1)
        produce([cmd])
        daemons("executor", env=ex.env(sandbox))
        assert holder.wait(timeout=30) == 0, holder.stderr.read()
    finally:
        if holder.poll() is None:
            holder.kill()
    # the attempt that exists is resolved at its own PSP
    wait_until(lambda: [r[2] for r in ex.attempts()] == ["resolved"], timeout=60,
               what="attempt resolved")
    time.sleep(2)
    led = sandbox.ledger()
    mine = [(e["psp"], e["kind"]) for e in led["entries"] if e.get("reference") == o]
    # one charge, at the PSP of the journaled attempt; the sandbox's own API never charged
    assert mine == [("stripe", "charge")], mine
    rows = psql("SELECT attempt, psp, state, psp_reference FROM executor_attempts "
                "WHERE command_id = '%s'" % cid)
    assert len(rows) == 1 and rows[0][1] == "stripe" and rows[0][3].startswith("pi_"), rows
