"""514 (review): `--output json` silently leaves out a dead letter with a non-UTF-8 header.

Every JSON line is built with json_pack(); jansson refuses a string that is not UTF-8 and
returns NULL, and dlq_json_line (dlq-tools/dlq/msg.c:357) then prints nothing, with no word
on stderr and exit 0. A dead letter whose kasir.error.message (or key, code, message id)
holds a byte like 0xff, e.g. an error quoting the poison bytes that caused it, is missing
from `list`, `show` and `replay --dry-run` for scripts, while `stats` counts it and the human
table shows it. Expected: every selected message gets a line (bytes escaped/replaced) or the
command says it could not and does not exit 0.

The contract: every message gets its line, exit 0; a string that is not UTF-8 is written
with U+FFFD for each bad byte and, exactly, in a sibling <name>_base64 (headers: in
headers_base64); stats counts it under its U+FFFD text."""
import base64
import json
import subprocess

from conftest import bin_path

from runtime_util import Run, produce
from tools_util import dead_letter, dlq, dlq_json


def test_json_output_lists_non_utf8_dead_letter():
    run = Run("t514", partitions=1)
    lines = [dead_letter(run, i, cls="poison") for i in range(3)]
    bad = b"bad byte \xff here"
    del lines[1]["headers"]["kasir.error.message"]
    lines[1]["headers_base64"] = {"kasir.error.message": base64.b64encode(bad).decode()}
    del lines[2]["headers"]["kasir.error.class"]
    lines[2]["headers_base64"] = {"kasir.error.class": base64.b64encode(b"fail\xfe").decode()}
    produce(lines)
    stats = dlq_json("stats", "--dlq", run.dlq)[-1]
    assert stats["total"] == 3
    assert stats["by_class"] == {"poison": 2, "fail\ufffd": 1}, stats["by_class"]
    human = subprocess.run([bin_path("dlq"), "list", "--dlq", run.dlq], capture_output=True).stdout
    assert ("%s:0:1 " % run.dlq).encode() in human

    p = dlq("list", "--dlq", run.dlq, "--output", "json", check=False)
    assert p.returncode == 0, p.stderr
    rows = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
    assert [r["offset"] for r in rows] == [0, 1, 2], p.stdout
    e = rows[1]["error"]
    assert e["message"] == "bad byte \ufffd here", e
    assert base64.b64decode(e["message_base64"]) == bad, e
    assert "message_base64" not in rows[0]["error"]
    assert rows[2]["error"]["class"] == "fail\ufffd"
    assert base64.b64decode(rows[2]["error"]["class_base64"]) == b"fail\xfe"

    p = dlq("show", "%s:0:1" % run.dlq, "--output", "json", check=False)
    assert p.returncode == 0, p.stderr
    shown = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
    assert len(shown) == 1, p.stdout
    assert shown[0]["headers"]["kasir.error.message"] == "bad byte \ufffd here"
    assert base64.b64decode(shown[0]["headers_base64"]["kasir.error.message"]) == bad
    assert shown[0]["value"]["event_id"] == "%s-1" % run.name

    p = dlq("replay", "--dlq", run.dlq, "--dry-run", "--output", "json", check=False)
    assert p.returncode == 0, p.stderr
    dry = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
    assert [d.get("offset") for d in dry[:-1]] == [0, 1, 2], p.stdout
    assert dry[2]["class"] == "fail\ufffd" and dry[-1]["selected"] == 3
