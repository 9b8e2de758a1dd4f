"""106: an input's kasir.message_id header that the runtime cannot keep as it is.

- Longer than an id (63 characters): it used to be cut, so two inputs whose ids share the
  first 63 characters got the same id, and their outputs the same kasir.message_id: a
  reader's dedup would drop one of them (a lost output).
- Bytes that are not text (invalid UTF-8): PostgreSQL refuses them, the dead-letter copy
  could never be written and the partition stalled for good (poison must never stall).
Either way the runtime now uses a hash of the header's bytes: distinct, storable, and the
same for every copy of that input."""
import os
import subprocess
import tempfile

from conftest import BROKERS, create_topics, kcat_messages, psql_one
from runtime_util import Run, check_outputs, consume, produce, wait_until


def wait_outputs(run, n):
    """The commit is visible before the relay: wait for n messages on the output topic."""
    wait_until(lambda: len(consume(run.out, idle_ms=500)) >= n, 20, what="%d outputs" % n)


def test_long_message_ids_stay_distinct(daemons):
    run = Run("t106a", partitions=1)
    stem = "upstream-" + "x" * 70
    lines = []
    for i in range(4):
        line = run.event(i)
        line["headers"] = {"kasir.message_id": "%s-%s-%d" % (stem, run.name, i)}
        lines.append(line)
    produce(lines)
    d = daemons("demo", env=run.env())
    run.wait_applied(4, timeout=30)
    wait_outputs(run, 4)
    check_outputs(run, 4)              # four outputs, four distinct message ids
    ids = psql_one("SELECT count(DISTINCT message_id) FROM demo_applied "
                   "WHERE event_id LIKE '%s-%%'" % run.name)
    assert ids == "4"
    assert d.term() == 0


def test_message_id_not_text_does_not_stall(daemons):
    run = Run("t106b", partitions=1)
    # the Avro bytes of one event, produced again with a header that is not UTF-8
    scratch = run.name + ".scratch"
    create_topics(scratch + ":1")
    ev = run.event(1)
    ev["topic"] = scratch
    produce([ev])
    (_, value), = kcat_messages(scratch)
    produce([run.event(0)])
    with tempfile.NamedTemporaryFile(delete=False) as f:
        f.write(value)
    try:
        p = subprocess.run(["kcat", "-b", BROKERS, "-P", "-t", run.topic, "-p", "0", "-k", "acct",
                            "-H", b"kasir.message_id=\xff\xfe-not-text", f.name],
                           capture_output=True, timeout=30)
        assert p.returncode == 0, p.stderr
    finally:
        os.unlink(f.name)
    produce([run.event(i) for i in range(2, 6)])
    d = daemons("demo", env=run.env())
    run.wait_applied(6, timeout=30)    # the one behind it too: nothing stalls
    wait_outputs(run, 6)
    check_outputs(run, 6)
    assert consume(run.dlq, idle_ms=500) == []
    assert d.term() == 0
