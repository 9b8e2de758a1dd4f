"""537 (review): a dead letter's headers wrote terminal control sequences to the operator.

`list`, `show` and `stats` print the error class, code, message, field, group, instance,
message id, key (show) and every header as their raw bytes. The error message often quotes
the input (a merchant's text), and anyone who can write to a topic can make a message that
ends in a DLQ: ESC sequences in it clear the on-call operator's screen, retitle the window,
rewrite the lines above (a carriage return hides the real error), or on some terminals
write the clipboard. The table already masked the key; nothing else was. Expected: the
human output carries no control character but the line ends (C0, DEL, C1), each shown
visibly instead; JSON output is unchanged (it escapes them)."""
import re

from runtime_util import Run, produce
from tools_util import dead_letter, dlq, dlq_json

EVIL = "\x1b[2J\x1b]0;owned\x07\rOK\x9b31m\x7f"
CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def test_human_output_has_no_control_characters():
    run = Run("t537", partitions=1)
    d = dead_letter(run, 0, cls="failed")
    d["key"] = "k" + EVIL
    for h in ("kasir.error.message", "kasir.error.code", "kasir.error.field",
              "kasir.error.group", "kasir.error.instance", "x-note"):
        d["headers"][h] = "v" + EVIL
    d["headers"]["kasir.error.class"] = "failed" + EVIL
    produce([d])
    for cmd in (["list"], ["show"], ["stats"]):
        out = dlq(*cmd, "--dlq", run.dlq).stdout
        bad = sorted(set(CONTROL.findall(out)))
        assert not bad, (cmd, bad, out)
        if cmd != ["stats"]:
            assert "\\x1b" in out, (cmd, out)  # shown, not dropped
    # JSON keeps the exact text (escaped by the JSON writer)
    j = dlq_json("show", "--dlq", run.dlq)[0]
    assert j["error"]["message"] == "v" + EVIL and j["headers"]["x-note"] == "v" + EVIL
