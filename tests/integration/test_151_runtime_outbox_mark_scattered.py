"""151: the outbox's sent mark deletes scattered deliveries in time linear in them.

A worker's outputs are rows in kasir_outbox until their delivery is reported; the next
batch deletes the delivered ones (lib/outbox.c, the sent mark). Delivered ids are scattered
whenever some partitions' deliveries come back after the others' (or some fail). The mark
sent them as ranges of consecutive ids joined on row comparisons, "(worker, id) >= (x, lo)
AND (worker, id) <= (x, hi)"; a row comparison bounds only the start of a btree scan, so
each range read on to the owner's last index entry: quadratic in the rows in flight. At
2,500 payments/s the ledger's marks took 127 ms for 1,666 rows (pg_stat_statements,
docs/BENCHMARKS.md session 33).

kasir-outboxmark (tests/tools/outboxmark) writes 40,000 rows through the real outbox,
every other one too large for its producer (never delivered), and marks the delivered half
in one transaction. The mark deletes exactly the delivered rows (what is left is the
refused half), within 3 s: 41 ms here;
before, 28.7 s (20,000 ranges, each scanning on to the owner's end; 20,000 rows: 7.1 s)."""
import os
import subprocess
import uuid

from conftest import BIN, BROKERS, PG_DSN, create_topics, psql

ROWS = 40000


def test_mark_of_scattered_deliveries():
    topic = "kasir.test.t151"
    create_topics(topic + ":6")
    owner = "t151-" + uuid.uuid4().hex[:8]
    env = dict(os.environ, KASIR_PG_DSN=PG_DSN, KASIR_KAFKA_BROKERS=BROKERS)
    try:
        p = subprocess.run([os.path.join(BIN, "kasir-outboxmark"), owner, topic, str(ROWS)],
                           capture_output=True, text=True, env=env, timeout=540)
    finally:
        psql("DELETE FROM kasir_outbox WHERE worker = '%s'" % owner)
    assert p.returncode == 0, p.stderr[-2000:]
    got = dict(kv.split("=") for kv in p.stdout.split())
    assert got["delivered"] == str(ROWS // 2), got
    # what is left is every refused row and no delivered one
    assert got["left"] == str(ROWS // 2) and got["wrong"] == "0", (got, "the mark deleted "
                                                                   "other rows than the delivered")
    assert int(got["mark_ms"]) < 3000, (got, "the mark's time grows with the square of its rows")
