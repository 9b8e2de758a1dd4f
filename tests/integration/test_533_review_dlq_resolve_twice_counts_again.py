"""533 (review): resolving replayed dead letters a second time claimed to resolve them again.

`resolve` selects open and replayed messages; a message that was replayed and then resolved
still carries the replayed mark, so a second `resolve` of the same selection selected it
again: "3 messages marked resolved" (and `--dry-run` "3 would be resolved", JSON
"resolved": 3, audit selected 3) though nothing was marked. The README says resolve marks
the selected messages not already resolved, and resolving twice marks nothing twice: an
operator reading "3 marked" believes there were 3 more to handle. Expected: the second
resolve selects nothing and says 0, in text, JSON, dry run and the audit."""
from runtime_util import Run, produce
from tools_util import dead_letter, dlq, dlq_json


def test_resolve_skips_replayed_then_resolved():
    run = Run("t533", partitions=1)
    produce([dead_letter(run, i) for i in range(4)])
    dlq("replay", "--dlq", run.dlq, "%s:0:0" % run.dlq, "%s:0:1" % run.dlq,
        "%s:0:2" % run.dlq, "--quiet")
    first = dlq_json("resolve", "--dlq", run.dlq, "--all")[-1]
    assert first["resolved"] == 4, first
    assert dlq_json("resolve", "--dlq", run.dlq, "--all", "--dry-run")[-1]["resolved"] == 0
    again = dlq_json("resolve", "--dlq", run.dlq, "--all")[-1]
    assert again["resolved"] == 0, again
    aud = dlq_json("audit", "--id", again["resolve_id"])[0]
    assert (aud["selected"], aud["done"]) == (0, 0), aud
    p = dlq("resolve", "--dlq", run.dlq, "--all")
    assert ": 0 messages marked resolved" in p.stdout, p.stdout
    st = dlq_json("stats", "--dlq", run.dlq)[-1]["by_status"]
    assert st == {"resolved": 4}, st
