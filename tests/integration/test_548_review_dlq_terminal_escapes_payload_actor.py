"""548 (review of 537): two more ways to the on-call operator's terminal. `show` printed the
decoded payload as jansson's JSON, which escapes C0 but writes DEL and C1 (U+009B is CSI)
as they are: a merchant's note in the payload drove the terminal. And an actor (`--by`,
`dlq.actor`) with control characters was stored and then shown raw by `kasir-dlq audit` to
every other operator. Now show's value goes through the same escaping as the headers, and
an actor with a control character is refused (exit 2)."""
import os
import re

from runtime_util import Run, produce
from tools_util import dead_letter, dlq, dlq_json

EVIL = "\x1b[2J\x9b31m\x7f\x85"
CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def test_payload_and_actor_reach_no_terminal():
    run = Run("t548", partitions=1)
    d = dead_letter(run, 0, cls="failed")
    d["value"]["note"] = "n" + EVIL
    produce([d])
    out = dlq("show", "--dlq", run.dlq).stdout
    assert not CONTROL.findall(out), (sorted(set(CONTROL.findall(out))), out)
    assert "\\xc2\\x9b" in out and '"note": "n' in out
    assert dlq_json("show", "--dlq", run.dlq)[0]["value"]["note"] == "n" + EVIL

    for by in ("ops\x1b]0;owned\x07", "ops\u009b2J", "ops\nroot"):
        p = dlq("resolve", "--dlq", run.dlq, "--all", "--by", by, check=False)
        assert p.returncode == 2 and "--by" in p.stderr, (by, p.returncode, p.stderr)
        p = dlq("resolve", "--dlq", run.dlq, "--all", check=False,
                env=dict(os.environ, KASIR_DLQ_ACTOR=by))
        assert p.returncode == 2 and "dlq.actor" in p.stderr, (by, p.returncode, p.stderr)
    assert dlq_json("list", "--dlq", run.dlq)[0]["status"] == "open"
    dlq("resolve", "--dlq", run.dlq, "--all", "--by", "ops caf\u00e9")  # text is fine


def test_audit_table_escapes_the_filters():
    """audit's table printed the filters as PostgreSQL's jsonb text, which escapes C0 but
    not DEL or C1: a --key copied from a hostile message reached the next operator's screen"""
    run = Run("t548a", partitions=1)
    produce([dead_letter(run, 0, cls="failed")])
    dlq("resolve", "--dlq", run.dlq, "--key", "k" + EVIL, "--note", "548")
    out = dlq("audit", "--limit", "5").stdout
    assert run.dlq in out
    assert not CONTROL.findall(out), (sorted(set(CONTROL.findall(out))), out)
