"""121 (review): the batch-failure policy for transient errors on a healthy server.

(1) A lock_timeout is one message's transient failure, not an infrastructure
failure. worker.h: "anything else that fails a batch while PostgreSQL answers ... the batch
is re-run one message at a time ... a message's error with retriable = 1 (a PSP 503, a lock
timeout) sends it to its retry topic". classify() (lib/worker.c) instead treats every
transient SQLSTATE of the batch pass (55P03, 57014, 40001, 40P01) as OUT_FAILED: the whole
batch is rolled back and re-run, with backoff, never isolated. One row held by a long
transaction elsewhere (an operator's session, a reconciliation job) stalls every other
message of the batch, on every partition in it, for as long as the lock is held.

Here one account's row is locked by another session for 40 s; the nine other events in the
batch must be applied while it is held (the locked one goes to its retry topic).
Fails today: none of the ten is applied while the lock is held.

(2) "Identical failures" are compared by their full message text. batch_failed()
(lib/worker.c) continues the streak only when err->msg equals the last one, and a PostgreSQL
error message carries its DETAIL: a deadlock names the processes and transaction ids
("Process 4711 waits for ShareLock on transaction 912345; blocked by process 4712"), which
differ on every try. A batch that deadlocks on every re-run (two workers locking the same
rows in opposite order) therefore never reaches worker.health.max_failures: the partition
is stuck and /healthz stays green, nobody is paged. The streak should be keyed by what
failed and its SQLSTATE, not by text that names pids and xids.

Transient errors such as a deadlock now go one message at a time to retry topics (part 1),
so the batch-level failure here is one no message is to blame for (42501, a revoked
privilege), raised with a DETAIL naming the current transaction, whose text differs on
every try as a deadlock report's does.
Fails today: /healthz stays 200 after many failed re-runs."""
import subprocess
import time

from conftest import PG_DSN, http_get, psql
from runtime_util import Run, metrics, produce


def test_locked_row_does_not_stall_the_batch(daemons):
    run = Run("t121", partitions=1, delays=("1s",))
    locked = run.name + "-locked"
    psql("INSERT INTO demo_accounts (account, currency, balance_minor, applied) "
         "VALUES ('%s', 'IDR', 0, 0)" % locked)
    holder = subprocess.Popen(
        ["psql", PG_DSN, "-qtAX", "-c",
         "BEGIN; SELECT 1 FROM demo_accounts WHERE account = '%s' FOR UPDATE; "
         "SELECT pg_sleep(40); COMMIT;" % locked],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        produce([run.event(0, account=locked)] + [run.event(i) for i in range(1, 10)])
        d = daemons("demo", env=run.env(KASIR_WORKER_PG_LOCK_TIMEOUT="500ms",
                                        KASIR_WORKER_FAILURE_BACKOFF_MAX="1s"))
        deadline = time.time() + 20
        while time.time() < deadline and run.applied() < 9:
            time.sleep(0.3)
        assert holder.poll() is None, "the lock holder ended early; the test proves nothing"
        assert run.applied() >= 9, ("%d of the 9 unlocked events applied while one row was "
                                    "locked" % run.applied())
    finally:
        holder.kill()
        holder.wait()
    d.term()

def healthz(port):
    try:
        return http_get("http://127.0.0.1:%d/healthz" % port, 2)[0]
    except Exception as e:
        return getattr(e, "code", 0)


def test_repeated_deadlocks_turn_healthz_red(daemons):
    run = Run("t121b", partitions=1)
    trig = "t121b_" + run.name.split("-")[-1]
    psql("""
CREATE OR REPLACE FUNCTION %(n)s_fn() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'permission denied for table demo_applied' USING ERRCODE = '42501',
    DETAIL = format('Process %%s in transaction %%s; blocked by process %%s.',
                    pg_backend_pid(), txid_current(), pg_backend_pid() + 1);
END $$;
CREATE TRIGGER %(n)s BEFORE INSERT ON demo_applied FOR EACH ROW
  WHEN (NEW.event_id LIKE '%(p)s-%%') EXECUTE FUNCTION %(n)s_fn();""" % {"n": trig, "p": run.name})
    try:
        produce([run.event(i) for i in range(5)])
        d = daemons("demo", env=run.env(KASIR_WORKER_HEALTH_MAX_FAILURES="3",
                                        KASIR_WORKER_FAILURE_BACKOFF_MAX="500ms"))
        deadline = time.time() + 15
        red = False
        while time.time() < deadline and not red:
            red = healthz(d.port) != 200
            time.sleep(0.2)
        failed = int(metrics(d.port).get("kasir_worker_failed_batches_total", "0"))
        assert failed >= 3, "only %d failed batches: the scenario did not run" % failed
        assert red, "/healthz green after %d deadlocked re-runs of the same batch" % failed
    finally:
        psql("DROP TRIGGER IF EXISTS %s ON demo_applied; DROP FUNCTION IF EXISTS %s_fn()"
             % (trig, trig))
    d.term()
