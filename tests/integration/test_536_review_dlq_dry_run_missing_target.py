"""536 (review): a dry run promised copies to a topic that does not exist.

`replay --dry-run` prints what would go where, but it never asked whether the target
exists: `--to kasir.payments.requsted` (a typo) or an origin topic deleted since printed
"dry run: N messages would be replayed", and the real run then failed every one ("target
topic ... does not exist", exit 1). The dry run is how an operator checks a replay before
running it. Expected: the dry run says the target does not exist (stderr, as the real run
does), marks those lines, counts them as failing (JSON "failed"), exits 1 as the real run
would, and still changes nothing."""
from conftest import unique
from runtime_util import Run, produce
from tools_util import dead_letter, dlq, dlq_json


def test_dry_run_reports_a_missing_target():
    run = Run("t536", partitions=1)
    produce([dead_letter(run, i) for i in range(3)])
    missing = unique("t536missing")
    p = dlq("replay", "--dlq", run.dlq, "--to", missing, "--dry-run", check=False)
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert "target topic %s does not exist" % missing in p.stderr, p.stderr
    assert "0 would be replayed, 3 would fail" in p.stdout, p.stdout
    out = dlq_json("replay", "--dlq", run.dlq, "--to", missing, "--dry-run", check=False)
    assert out[-1]["selected"] == 3 and out[-1]["failed"] == 3, out
    assert all(l.get("target_missing") is True for l in out[:-1]), out
    # a target that exists: as before
    ok = dlq_json("replay", "--dlq", run.dlq, "--dry-run")
    assert ok[-1]["selected"] == 3 and ok[-1]["failed"] == 0, ok
    assert [l["target"] for l in ok[:-1]] == [run.topic] * 3
    assert {d["status"] for d in dlq_json("list", "--dlq", run.dlq)} == {"open"}
