"""513 (review): kasir-tap's JSON lines cut a string at an embedded NUL, silently.

lib/serde.c decodes an Avro string whole (json_stringn; U+0000 is valid in Avro and JSON),
but consumers/tap/main.c:183 writes it with ks_jw_str(w, name, json_string_value(v)), a C
string, so "E\\0second" is written as "E": the analyst's export differs from the topic with
no report on stderr and exit 0 (the CSV writer uses json_string_length and keeps it). The
key goes the same way (main.c:212 strndup). Expected: the value written whole ("\\u0000"),
or the message reported as not written (exit 3).

The contract: the string whole, exit 0. lib/jsonw's ks_jw_quoten/ks_jw_strn write len bytes (NUL as \\u0000) and kasir-tap
writes every string and the key with their lengths; --field compares a string whole."""
import json

from conftest import kcat_messages
from runtime_util import Run, produce
from tools_util import tap
from test_125_review_nul_in_payload_strings import demo_event


def test_tap_json_keeps_nul_in_string():
    run = Run("t513", partitions=1)
    name = run.name.encode()
    produce([run.event(1)])
    prefix = kcat_messages(run.topic)[0][1][:10]
    ev = demo_event(prefix, name + b"-m2", name + b"-2\x00second", name + b"-acct", 5)
    produce([run.raw(ev, key="k2")])
    p = tap(run.topic)
    print(p.returncode, p.stderr)
    rows = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
    assert p.returncode == 0, p.stderr
    assert len(rows) == 2
    assert rows[1]["value"]["event_id"] == run.name + "-2\x00second", rows[1]["value"]
    assert '"%s-2\\u0000second"' % run.name in p.stdout
    # a --field filter compares the whole string: the part before the NUL is not a match
    p = tap("--field", "event_id=%s-2" % run.name, run.topic)
    assert p.returncode == 0, p.stderr
    assert [l for l in p.stdout.splitlines() if l.strip()] == [], p.stdout
