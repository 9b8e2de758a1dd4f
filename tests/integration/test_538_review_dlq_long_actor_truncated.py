"""538 (review): a long --by was cut: the audit recorded another name, or PostgreSQL refused it.

The actor is copied into a 256-byte buffer: `--by` (or dlq.actor / KASIR_DLQ_ACTOR) longer
than 255 bytes was cut silently, so the audit names someone other than the one given,
and a cut inside a multi-byte character made PostgreSQL refuse the audit record half way
("invalid byte sequence", exit 1). Who did it is the point of the audit. Expected: a too
long actor is refused at once (exit 2, naming --by or dlq.actor), nothing is recorded; 255
bytes still work."""
import os

from runtime_util import Run, produce
from tools_util import dead_letter, dlq, dlq_json


def test_long_actor_refused():
    run = Run("t538", partitions=1)
    produce([dead_letter(run, 0)])
    ref = "%s:0:0" % run.dlq
    for by in ("a" * 300, "\u00e9" * 200):
        for cmd in (["resolve", ref], ["replay", ref]):
            p = dlq(*cmd, "--by", by, check=False)
            assert p.returncode == 2 and "--by" in p.stderr, (cmd, p.returncode, p.stderr)
    env = dict(os.environ, KASIR_DLQ_ACTOR="b" * 300)
    p = dlq("resolve", ref, check=False, env=env)
    assert p.returncode == 2 and "dlq.actor" in p.stderr, (p.returncode, p.stderr)
    assert dlq_json("list", "--dlq", run.dlq)[0]["status"] == "open"
    out = dlq_json("resolve", ref, "--by", "c" * 255)[-1]
    assert dlq_json("audit", "--id", out["resolve_id"])[0]["actor"] == "c" * 255
