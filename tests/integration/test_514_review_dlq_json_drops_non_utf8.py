"""514 (review): `--output json` silently leaves out a dead letter with a non-UTF-8 header.

Every JSON line is built with json_pack(); jansson refuses a string that is not UTF-8 and
returns NULL, and dlq_json_line (dlq-tools/dlq/msg.c:357) then prints nothing, with no word
on stderr and exit 0. A dead letter whose kasir.error.message (or key, code, message id)
holds a byte like 0xff, e.g. an error quoting the poison bytes that caused it, is missing
from `list`, `show` and `replay --dry-run` for scripts, while `stats` counts it and the human
table shows it. Expected: every selected message gets a line (bytes escaped/replaced) or the
command says it could not and does not exit 0."""
import base64
import subprocess

from conftest import bin_path

from runtime_util import Run, produce
from tools_util import dead_letter, dlq, dlq_json
import pytest

# An open finding of the hostile review of issue 15, not fixed yet: the test shows the
# wrong behaviour and is expected to fail until it is (then drop this mark).
pytestmark = pytest.mark.xfail(strict=False, reason="open finding: 514 (review): `--output json` silently leaves out a dead letter with a non-UTF-8 header.")


def test_json_output_lists_non_utf8_dead_letter():
    run = Run("t514", partitions=1)
    lines = [dead_letter(run, i, cls="poison") for i in range(3)]
    del lines[1]["headers"]["kasir.error.message"]
    lines[1]["headers_base64"] = {"kasir.error.message": base64.b64encode(b"bad byte \xff here").decode()}
    produce(lines)
    stats = dlq_json("stats", "--dlq", run.dlq)[-1]
    assert stats["total"] == 3
    human = subprocess.run([bin_path("dlq"), "list", "--dlq", run.dlq], capture_output=True).stdout
    assert ("%s:0:1 " % run.dlq).encode() in human
    p = dlq("list", "--dlq", run.dlq, "--output", "json", check=False)
    refs = [l for l in p.stdout.splitlines() if l.strip()]
    assert len(refs) == 3 or p.returncode != 0, \
        "list --output json printed %d of 3 dead letters, exit %d, stderr %r" % (
            len(refs), p.returncode, p.stderr)
    p = dlq("show", "%s:0:1" % run.dlq, "--output", "json", check=False)
    assert p.stdout.strip() or p.returncode != 0, "show --output json printed nothing, exit 0"
