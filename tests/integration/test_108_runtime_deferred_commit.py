"""108: a batch whose end fails on a healthy database (a DEFERRABLE INITIALLY DEFERRED
constraint trigger raising at COMMIT, as the ledger's balance rule does) is isolated, not
looped: the culprit alone is dead-lettered with the constraint's error, the other 499 of
its 500-message batch are applied, the worker keeps consuming and /readyz stays green."""
import threading
import time

from conftest import http_get, psql
from runtime_util import Run, consume, metrics, produce, wait_until

MAGIC = 4242421  # the amount the trigger refuses; no other test uses it


def install_trigger(name):
    psql("""
CREATE OR REPLACE FUNCTION %(n)s_fn() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'entry %% does not balance', NEW.event_id USING ERRCODE = '23514';
END $$;
CREATE CONSTRAINT TRIGGER %(n)s AFTER INSERT ON demo_applied
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.amount_minor = %(m)d)
  EXECUTE FUNCTION %(n)s_fn();""" % {"n": name, "m": MAGIC})


def drop_trigger(name):
    psql("DROP TRIGGER IF EXISTS %s ON demo_applied; DROP FUNCTION IF EXISTS %s_fn()" % (name, name))


def test_deferred_failure_at_commit_isolates_one_message(daemons):
    run = Run("t108", partitions=1)
    trig = "t108_" + run.name.split("-")[-1]
    install_trigger(trig)
    try:
        lines = [run.event(i, amount=MAGIC if i == 250 else None) for i in range(500)]
        produce(lines)  # all 500 are there before the worker starts: one batch
        d = daemons("demo", env=run.env(KASIR_WORKER_BATCH_MAX=2000, KASIR_WORKER_BATCH_WAIT="2s"))
        ready_codes = []
        stop = threading.Event()

        def watch():
            while not stop.is_set():
                try:
                    ready_codes.append(http_get("http://127.0.0.1:%d/readyz" % d.port, 2)[0])
                except Exception as e:  # a 503 raises
                    ready_codes.append(getattr(e, "code", 0))
                time.sleep(0.05)

        t = threading.Thread(target=watch)
        t.start()
        try:
            run.wait_applied(499, timeout=60)
            wait_until(lambda: len(consume(run.dlq, idle_ms=300)) >= 1, 20, what="the culprit in the DLQ")
            # and it keeps consuming
            produce([run.event(i) for i in range(500, 520)])
            run.wait_applied(519, timeout=30)
        finally:
            stop.set()
            t.join()
        dlq = consume(run.dlq, idle_ms=500)
        assert len(dlq) == 1, [m["headers"] for m in dlq]
        h = dlq[0]["headers"]
        assert h["kasir.error.class"] == "failed"
        assert "does not balance" in h["kasir.error.message"], h
        assert int(h["kasir.origin.offset"]) == 250
        assert dlq[0]["value"]["amount_minor"] == MAGIC
        assert psql("SELECT count(*) FROM demo_applied WHERE event_id = '%s-250'" % run.name)[0][0] == "0"
        assert ready_codes and all(c == 200 for c in ready_codes), sorted(set(ready_codes))
        m = metrics(d.port)
        assert m["kasir_worker_postgresql_up"] == "1"
        assert int(m.get("kasir_worker_infra_failures_total", "0")) == 0
        processed, distinct = run.seen()
        assert processed == distinct == 519  # nothing applied twice
        assert d.term() == 0
    finally:
        drop_trigger(trig)
