"""124 (review): a broken schema dead-letters every message. worker.h: "a batch that fails
even one message at a time on a healthy server (a bug, a broken schema): rolled back and
re-run after an exponential backoff ...; after worker.health.max_failures identical failures
in a row /healthz turns red". In lib/worker.c that case never happens: in the isolated pass
ks_batch_run_msg() turns every handler failure into ks_batch_fail() of its message, so a
statement that fails for every message alike (a trigger calling a function a deploy dropped:
42883; a missing column or table, a revoked privilege: class 42) sends each input to its DLQ
as "failed", at full speed, and the batch "succeeds". During a bad deploy every payment ends
in a dead-letter topic (to be replayed by hand) instead of waiting for the fix.

Here a trigger on demo_applied (for this test's events only) calls a function that does not
exist. Nothing may be dead-lettered while it is broken; /healthz turns red; once the trigger
is dropped every event is applied.
Fails today: all 20 events are in the DLQ."""
import time

from conftest import http_get, psql
from runtime_util import Run, consume, produce, wait_until


def healthz(port):
    try:
        return http_get("http://127.0.0.1:%d/healthz" % port, 2)[0]
    except Exception as e:
        return getattr(e, "code", 0)


def test_broken_schema_is_not_dead_lettered(daemons):
    run = Run("t124", partitions=1)
    trig = "t124_" + run.name.split("-")[-1]
    psql("""
CREATE OR REPLACE FUNCTION %(n)s_fn() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM %(n)s_dropped_by_a_deploy(NEW.event_id);
  RETURN NEW;
END $$;
CREATE TRIGGER %(n)s BEFORE INSERT ON demo_applied FOR EACH ROW
  WHEN (NEW.event_id LIKE '%(p)s-%%') EXECUTE FUNCTION %(n)s_fn();""" % {"n": trig, "p": run.name})
    try:
        produce([run.event(i) for i in range(20)])
        d = daemons("demo", env=run.env(KASIR_WORKER_HEALTH_MAX_FAILURES="2",
                                        KASIR_WORKER_FAILURE_BACKOFF_MAX="1s"))
        time.sleep(8)
        dlq = consume(run.dlq, idle_ms=500)
        assert dlq == [], "%d of 20 events dead-lettered for a broken schema" % len(dlq)
        assert healthz(d.port) != 200, "healthz green while every batch fails"
    finally:
        psql("DROP TRIGGER IF EXISTS %s ON demo_applied; DROP FUNCTION IF EXISTS %s_fn()"
             % (trig, trig))
    run.wait_applied(20, timeout=40)
    d.term()
