"""504: kasir-tap. For every schema of the catalogue, values that use every field type
(records, arrays and maps empty and not, enums, both branches of every union, bytes, long
extremes, text with commas, quotes, newlines and non-ASCII) are produced and tapped:
JSON lines give back exactly the values; the Avro object container file is read back by
python3-avro (an independent implementation) with the same records; the CSV opens with
Python's csv module with one column per field. Undecodable messages are reported on stderr
(exit 3), never skipped silently. Start positions, --follow, filters, and offsets committed
only with --group."""
import base64
import csv
import datetime
import glob
import io
import json
import os
import signal
import subprocess
import time

import avro.datafile
import avro.io

from conftest import TOP, bin_path, create_topics, unique
from runtime_util import produce, wait_until
from tools_util import tap

SCHEMAS = sorted(glob.glob(os.path.join(TOP, "schemas", "*.avsc")))
TEXT = 'a,b "quoted"\nline two; caf\u00e9 \u2713 '
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def gen(t, names, ns, v):
    """a value of Avro type t (as kasir-produce takes it: bytes base64, timestamps as
    microseconds); v (0, 1, 2) picks union branches, array and map sizes, extremes"""
    if isinstance(t, list):  # ["null", T]: the only unions the catalogue has
        return None if v == 0 else gen(t[1], names, ns, v)
    if isinstance(t, str):
        if t in names:
            return gen(names[t], names, ns, v)
        return {"string": TEXT + str(v), "long": [0, -(2 ** 62), 2 ** 53 + 1][v],
                "int": [0, -(2 ** 31), 2 ** 31 - 1][v], "boolean": v == 1,
                "bytes": base64.b64encode(bytes([0, 255, v, 10, 44])).decode(),
                "null": None}[t]
    kind = t["type"]
    if kind in ("record", "enum"):
        nns = t.get("namespace", ns)
        full = t["name"] if "." in t["name"] else (nns + "." + t["name"] if nns else t["name"])
        names[full] = names[t["name"]] = t
        if kind == "enum":
            return t["symbols"][v % len(t["symbols"])]
        return {f["name"]: gen(f["type"], names, nns, v) for f in t["fields"]}
    if kind == "array":
        return [gen(t["items"], names, ns, (v + k) % 3) for k in range(v)]
    if kind == "map":
        return {"k%d,\"" % k: gen(t["values"], names, ns, (v + k) % 3) for k in range(v)}
    if t.get("logicalType") == "timestamp-micros":
        return 1700000000000000 + v * 123456789
    return gen(kind, names, ns, v)


def from_avro(t, names, ns, x):
    """python3-avro's value -> the JSON mapping kasir-produce took"""
    if isinstance(t, list):
        return None if x is None else from_avro(t[1], names, ns, x)
    if isinstance(t, str):
        if t in names:
            return from_avro(names[t], names, ns, x)
        if t == "bytes":
            return base64.b64encode(x).decode()
        return x
    kind = t["type"]
    if kind == "record":
        nns = t.get("namespace", ns)
        names[t["name"]] = t
        if nns:
            names[nns + "." + t["name"]] = t
        return {f["name"]: from_avro(f["type"], names, nns, x[f["name"]]) for f in t["fields"]}
    if kind == "enum":
        names[t["name"]] = t
        return x
    if kind == "array":
        return [from_avro(t["items"], names, ns, e) for e in x]
    if kind == "map":
        return {k: from_avro(t["values"], names, ns, e) for k, e in x.items()}
    if t.get("logicalType") == "timestamp-micros" and isinstance(x, datetime.datetime):
        return (x - EPOCH) // datetime.timedelta(microseconds=1)
    return from_avro(kind, names, ns, x)


def catalogue():
    out = []
    for path in SCHEMAS:
        with open(path) as f:
            s = json.load(f)
        full = s.get("namespace", "") + "." + s["name"]
        values = [gen(s, {}, s.get("namespace", ""), v) for v in range(3)]
        out.append((full, s, values))
    return out


def test_tap_every_schema_json_avro_csv(tmp_path):
    cat = catalogue()
    assert len(cat) >= 11
    base = unique("t504")
    topics = {full: "%s.%s" % (base, full) for full, _, _ in cat}
    create_topics(*[t + ":1" for t in topics.values()])
    produce([{"topic": topics[full], "key": "key-%d" % i, "schema": full, "value": v}
             for full, _, values in cat for i, v in enumerate(values)])

    # JSON lines, all topics in one run: every value comes back exactly
    p = tap(*topics.values())
    assert p.returncode == 0, p.stderr
    lines = [json.loads(l) for l in p.stdout.splitlines()]
    assert len(lines) == 3 * len(cat)
    for full, _, values in cat:
        got = sorted((l for l in lines if l["topic"] == topics[full]), key=lambda l: l["offset"])
        assert [l["value"] for l in got] == values, full
        assert [l["key"] for l in got] == ["key-0", "key-1", "key-2"]
        assert all(l["schema"] == full and l["partition"] == 0 and l["timestamp"] > 0 for l in got)

    for full, s, values in cat:
        # Avro object container file, read back by python3-avro
        f = tmp_path / ("%s.avro" % full)
        p = tap("--format", "avro", "--output", str(f), topics[full])
        assert p.returncode == 0, p.stderr
        with open(f, "rb") as fh:
            r = avro.datafile.DataFileReader(fh, avro.io.DatumReader())
            assert json.loads(r.get_meta("avro.schema"))["name"] == s["name"]
            recs = list(r)
        assert [from_avro(s, {}, s.get("namespace", ""), x) for x in recs] == values, full

        # CSV: a header from the schema, one column per field, nested values as JSON
        p = tap("--format", "csv", topics[full])
        assert p.returncode == 0, p.stderr
        rows = list(csv.reader(io.StringIO(p.stdout, newline="")))
        fields = [fd["name"] for fd in s["fields"]]
        assert rows[0] == fields
        assert len(rows) == 4
        for row, v in zip(rows[1:], values):
            for name, cell in zip(fields, row):
                x = v[name]
                if x is None:
                    assert cell == ""
                elif isinstance(x, bool):
                    assert cell == ("true" if x else "false")
                elif isinstance(x, (dict, list)):
                    assert json.loads(cell) == x
                else:
                    assert cell == str(x), (full, name)

    # CSV with --meta: the Kafka coordinates first
    p = tap("--format", "csv", "--meta", topics["kasir.demo.DemoEvent"])
    rows = list(csv.reader(io.StringIO(p.stdout, newline="")))
    assert rows[0][:5] == ["_topic", "_partition", "_offset", "_timestamp", "_key"]
    assert rows[2][:3] == [topics["kasir.demo.DemoEvent"], "0", "1"] and rows[2][4] == "key-1"


def demo_line(topic, i, key=None):
    return {"topic": topic, "key": key or "acct-%d" % (i % 3), "schema": "kasir.demo.DemoEvent",
            "value": {"message_id": "m%d" % i, "occurred_at": 1700000000000000 + i,
                      "event_id": "e%d" % i, "seq": i, "account": "acct-%d" % (i % 3),
                      "amount_minor": 100 + i, "currency": "IDR", "note": None if i % 2 else "n"}}


def seqs(p):
    assert p.returncode in (0, 3), p.stderr
    return [json.loads(l)["value"]["seq"] for l in p.stdout.splitlines()]


def test_tap_undecodable_positions_filters_group(tmp_path):
    topic = unique("t504b")
    create_topics(topic + ":1")
    produce([demo_line(topic, 0), {"topic": topic, "key": "x", "raw_base64": "AAECAw=="},
             demo_line(topic, 2)])
    p = tap(topic)
    assert p.returncode == 3
    assert seqs(p) == [0, 2]
    assert "%s:0:1: not written: undecodable" % topic in p.stderr
    # CSV/Avro files hold one schema: a message of another is reported, not dropped silently
    produce([{"topic": topic, "key": "y", "schema": "kasir.demo.DemoApplied",
              "value": {"message_id": "a", "occurred_at": 1, "event_id": "e", "account": "a",
                        "amount_minor": 1, "currency": "IDR", "applied_seq": 1}}])
    p = tap("--format", "csv", topic)
    assert p.returncode == 3 and len(p.stdout.splitlines()) == 3
    assert "%s:0:3: not written: writer schema kasir.demo.DemoApplied is not the file's " \
           "kasir.demo.DemoEvent" % topic in p.stderr

    # start positions: end (nothing), a time (only what came after)
    topic = unique("t504c")
    create_topics(topic + ":3")
    produce([demo_line(topic, i) for i in range(10)])
    time.sleep(1.2)
    t_mid = int(time.time() * 1000)
    produce([demo_line(topic, i) for i in range(10, 16)])
    assert sorted(seqs(tap(topic))) == list(range(16))
    assert seqs(tap("--from", "end", topic)) == []
    assert sorted(seqs(tap("--from", str(t_mid), topic))) == list(range(10, 16))
    assert sorted(seqs(tap("--from", "1h", topic))) == list(range(16))

    # filters: key, fields (a string's text, else the JSON of the value)
    assert sorted(seqs(tap("--key", "acct-1", topic))) == [1, 4, 7, 10, 13]
    assert sorted(seqs(tap("--field", "amount_minor=105", topic))) == [5]
    assert sorted(seqs(tap("--field", "note=null", "--field", "account=acct-0", topic))) == [3, 9, 15]
    assert len(seqs(tap("--limit", "4", topic))) == 4

    # no offsets unless --group: two plain runs both read everything; a group run resumes
    assert len(seqs(tap(topic))) == 16 and len(seqs(tap(topic))) == 16
    group = unique("t504g")
    assert len(seqs(tap("--group", group, topic))) == 16
    produce([demo_line(topic, i) for i in range(16, 19)])
    assert sorted(seqs(tap("--group", group, topic))) == [16, 17, 18]
    assert seqs(tap("--group", group, topic)) == []

    # --follow: new messages arrive in the output; SIGTERM ends it cleanly
    # (from a time, not the end: the messages count whether they land before or after the
    # tap's start-up, which a busy machine makes slow)
    out = tmp_path / "follow.jsonl"
    t_follow = int(time.time() * 1000)
    f = subprocess.Popen([bin_path("tap"), "--follow", "--from", str(t_follow), "--output",
                          str(out), topic], stderr=subprocess.PIPE)
    time.sleep(0.5)
    produce([demo_line(topic, i) for i in range(100, 105)])
    wait_until(lambda: out.exists() and len(out.read_text().splitlines()) == 5, timeout=20,
               what="followed messages written")
    f.send_signal(signal.SIGTERM)
    assert f.wait(10) == 0
    assert sorted(json.loads(l)["value"]["seq"] for l in out.read_text().splitlines()) == \
        list(range(100, 105))


def test_tap_bad_arguments():
    for args, msg in [([], "name at least one topic"), (["--format", "xml", "t"], "--format xml"),
                      (["--from", "tomorrow", "t"], "--from tomorrow"),
                      (["--bogus", "t"], "unknown option"), (["--limit", "x", "t"], "--limit"),
                      (["--group", "g", "--from", "1h", "t"], "cannot be used with --group"),
                      (["--format", "avro", "--schema", "no.such.Schema", "t"], "not in the catalogue"),
                      (["--field", "novalue", "t"], "path=value"),
                      ([unique("t504nosuch")], "does not exist")]:
        p = tap(*args)
        assert p.returncode == 2, (args, p.returncode, p.stderr)
        assert msg in p.stderr, (args, p.stderr)
    p = tap("--help")
    assert p.returncode == 0 and p.stdout.startswith("usage: kasir-tap")
    p = subprocess.run([bin_path("tap"), "t"], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, KASIR_KAFKA_SECURITY_PROTOCOL="bogus"))
    assert p.returncode == 2 and "security.protocol" in p.stderr
