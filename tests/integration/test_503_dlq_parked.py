"""503: outbox rows the runtime parked as undeliverable (kasir_outbox_dead): kasir-dlq parked
lists them with their headers decoded; parked retry --dry-run changes nothing; parked retry
moves them back into kasir_outbox in one audited statement (the parked row stays, marked
retried), and the owning worker's relay delivers them."""
import base64
import struct

from conftest import psql, psql_one
from runtime_util import Run, wait_until
from tools_util import dlq, dlq_json, topic_records


def headers_blob(h):
    """lib/outbox.c's compact header encoding (ks_outbox_headers_encode)"""
    out = b""
    for k, v in h.items():
        kb = k.encode()
        out += struct.pack(">H", len(kb)) + kb
        if v is None:
            out += struct.pack(">I", 0xFFFFFFFF)
        else:
            vb = v.encode()
            out += struct.pack(">I", len(vb)) + vb
    return out


def park(run, row_id, n):
    owner = "demo/" + run.group
    h = headers_blob({"kasir.message_id": "%s-pm%d" % (run.name, n), "kasir.producer": "demo"})
    psql("INSERT INTO kasir_outbox_dead (id, worker, message_id, topic, key, value, headers, "
         "created_at, attempts, last_error) VALUES (%d, '%s', '%s-pm%d', '%s', '\\x%s', '\\x%s', "
         "'\\x%s', now() - interval '1 hour', 7, 'Broker: Unknown topic or partition')"
         % (row_id, owner, run.name, n, run.out, (b"k%d" % n).hex(), (b"parked-value-%d" % n).hex(),
            h.hex()))
    return owner


def test_parked_list_and_retry(daemons):
    run = Run("t503", partitions=1)
    base = int(psql_one("SELECT coalesce(max(id), 0) + 1000000 FROM kasir_outbox_dead"))
    owner = park(run, base + 1, 1)
    park(run, base + 2, 2)

    rows = dlq_json("parked", "--worker", owner)
    assert [r["id"] for r in rows] == [base + 1, base + 2]
    r = rows[0]
    assert r["topic"] == run.out and r["message_id"] == "%s-pm1" % run.name
    assert r["headers"] == {"kasir.message_id": "%s-pm1" % run.name, "kasir.producer": "demo"}
    assert r["attempts"] == 7 and "Unknown topic" in r["last_error"] and r["retried_at"] is None
    assert r["key"] == "k1" and r["value"] == "parked-value-1"
    assert owner in dlq("parked", "--worker", owner).stdout

    # dry run: lists, moves nothing
    dlq("parked", "retry", "--worker", owner, "--dry-run")
    assert psql_one("SELECT count(*) FROM kasir_outbox WHERE worker = '%s'" % owner) == "0"

    # retry one by id: back into kasir_outbox under a fresh id, the parked row marked
    out = dlq_json("parked", "retry", "--id", str(base + 1), "--by", "t503-operator",
                   "--note", "topic created")
    assert out[0]["retried"] == 1
    rows = psql("SELECT id, message_id, topic, encode(key, 'escape'), encode(value, 'escape') "
                "FROM kasir_outbox WHERE worker = '%s'" % owner)
    assert len(rows) == 1 and int(rows[0][0]) != base + 1
    assert rows[0][1:] == ["%s-pm1" % run.name, run.out, "k1", "parked-value-1"]
    assert psql_one("SELECT retried_by FROM kasir_outbox_dead WHERE id = %d" % (base + 1)) == \
        "t503-operator"
    assert [r["id"] for r in dlq_json("parked", "--worker", owner)] == [base + 2]
    assert len(dlq_json("parked", "--worker", owner, "--all")) == 2
    # retrying it again moves nothing (it is no longer parked)
    assert dlq_json("parked", "retry", "--id", str(base + 1))[0]["retried"] == 0
    audit = [a for a in dlq_json("audit", "--limit", "100") if a["action"] == "parked-retry"
             and a["filters"].get("id") == "{%d}" % (base + 1)]
    assert [a["done"] for a in audit] == [0, 1]
    assert audit[1]["actor"] == "t503-operator" and audit[1]["note"] == "topic created"

    # the owner's relay delivers it
    d = daemons("demo", env=run.env())
    wait_until(lambda: len(topic_records(run.out)) >= 1, timeout=30, what="retried row relayed")
    recs = topic_records(run.out)
    assert len(recs) == 1
    assert recs[0]["key"] == "k1"
    assert base64.b64decode(recs[0]["raw_base64"]) == b"parked-value-1"
    assert recs[0]["headers"]["kasir.message_id"] == "%s-pm1" % run.name
    wait_until(lambda: psql_one("SELECT count(*) FROM kasir_outbox WHERE worker = '%s'" % owner)
               == "0", timeout=30, what="relayed row deleted")
    assert d.term() == 0
