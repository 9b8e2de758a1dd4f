"""115: a batch that fails even one message at a time while PostgreSQL answers (here every
output of the run is refused by a trigger on kasir_outbox) is re-run with an exponential
backoff, never in a tight loop; PostgreSQL is not reported down; /healthz turns red after
worker.health.max_failures identical failures and green again once the cause is gone."""
import time
import urllib.error

from conftest import http_get, psql
from runtime_util import Run, metrics, produce, wait_until


def healthz(port):
    try:
        return http_get("http://127.0.0.1:%d/healthz" % port, 2)[0]
    except urllib.error.HTTPError as e:
        return e.code


def test_failing_batch_backs_off_and_turns_health_red(daemons):
    run = Run("t115", partitions=1)
    trig = "t115_" + run.name.split("-")[-1]
    psql("""
CREATE OR REPLACE FUNCTION %(n)s_fn() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'outbox refused by test trigger' USING ERRCODE = 'P0001'; END $$;
CREATE TRIGGER %(n)s BEFORE INSERT ON kasir_outbox FOR EACH ROW
  WHEN (NEW.topic = '%(t)s') EXECUTE FUNCTION %(n)s_fn();""" % {"n": trig, "t": run.out})
    try:
        produce([run.event(i) for i in range(20)])
        d = daemons("demo", env=run.env(KASIR_WORKER_HEALTH_MAX_FAILURES=3,
                                        KASIR_WORKER_FAILURE_BACKOFF_MAX="2s"))
        wait_until(lambda: healthz(d.port) == 503, 30, what="/healthz red")
        t0 = time.time()
        f0 = int(metrics(d.port)["kasir_worker_failed_batches_total"])
        time.sleep(6)
        f1 = int(metrics(d.port)["kasir_worker_failed_batches_total"])
        rate = (f1 - f0) / (time.time() - t0)
        assert rate <= 1.5, "failed batches re-run %.1f/s: no backoff" % rate
        m = metrics(d.port)
        assert m["kasir_worker_postgresql_up"] == "1"
        assert int(m.get("kasir_worker_infra_failures_total", "0")) == 0
        assert run.applied() == 0
    finally:
        psql("DROP TRIGGER IF EXISTS %s ON kasir_outbox; DROP FUNCTION IF EXISTS %s_fn()" % (trig, trig))
    run.wait_applied(20, timeout=30)
    wait_until(lambda: healthz(d.port) == 200, 15, what="/healthz green again")
    assert d.term() == 0
