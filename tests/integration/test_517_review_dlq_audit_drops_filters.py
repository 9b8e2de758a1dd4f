"""517 (review): the audit record silently loses a filter that is not UTF-8.

dlq_filters_json (dlq-tools/dlq/msg.c:454-460) builds the audit's filters with
json_string(o->key) / json_string(value); for bytes that are not UTF-8 (Kafka keys and
header values are bytes, and an operator copies them from `list`) jansson returns NULL and
json_object_set_new drops the member without a word. The record then reads as if the
command had no key (or header) filter, i.e. as "everything in the topic": the audit
misstates what an operator did. Expected: every filter given is in the record (escaped),
or the command refuses the filter (exit 2).

The contract: the command runs (a key or header value is bytes), and the record keeps every
filter: its text with U+FFFD, and exactly in <name>_base64 (header_base64 for headers)."""
import base64
import json
import os
import subprocess

from conftest import bin_path
from runtime_util import Run, produce
from tools_util import dead_letter, dlq_json


def test_audit_keeps_non_utf8_filters():
    run = Run("t517", partitions=1)
    produce([dead_letter(run, i) for i in range(2)])
    p = subprocess.run([os.fsencode(bin_path("dlq")), b"resolve", b"--dlq", run.dlq.encode(),
                        b"--key", b"acct\xff", b"--header", b"x-tenant=\xfe\xff",
                        b"--topic", b"%s,x\xff" % run.topic.encode(), b"--output", b"json"],
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    out = [json.loads(l) for l in p.stdout.decode().splitlines() if l.strip()]
    assert out[-1]["resolved"] == 0  # no message has that key
    rid = out[-1]["resolve_id"]
    f = dlq_json("audit", "--id", rid)[0]["filters"]
    print(f)
    assert f["key"] == "acct\ufffd", f
    assert base64.b64decode(f["key_base64"]) == b"acct\xff", f
    assert f["header"] == {"x-tenant": "\ufffd\ufffd"}, f
    assert base64.b64decode(f["header_base64"]["x-tenant"]) == b"\xfe\xff", f
    assert f["topic"] == [run.topic, "x\ufffd"], f
    assert [base64.b64decode(x) for x in f["topic_base64"]] == [run.topic.encode(), b"x\xff"], f
    assert f["dlq"] == [run.dlq] and "dlq_base64" not in f, f
