"""515 (review): kasir-tap --group commits past messages it did not write.

The README promises "what was written is committed"; ks_scan_commit (lib/scan.c:365) commits
each partition's next read position, which includes a message reported as "not written"
(undecodable, or another schema in CSV/Avro). The run exits 3, the analyst fixes the cause
(a newer build with the schema, or --schema) and reruns with the same group: the message is
never seen again, skipped silently by every later run. Expected: the group's offset stops at
the first message not written (or the rerun reports it again).

The contract: with --group a partition stops at the first message not written (the group's
offset stays there, nothing after it is written), so every rerun reports it again until the
cause is fixed; --skip-unwritten commits past it (still reported)."""
import json

from runtime_util import Run, produce
from tools_util import tap
from conftest import unique


def offsets(p):
    return [json.loads(l)["offset"] for l in p.stdout.splitlines() if l.strip()]


def test_tap_group_does_not_commit_unwritten():
    run = Run("t515", partitions=1)
    produce([run.event(0), run.raw(b"\x00\x01garbage", key="k"), run.event(2)])
    g = unique("t515g")
    p1 = tap("--group", g, run.topic)
    assert p1.returncode == 3 and ":1: not written" in p1.stderr, (p1.returncode, p1.stderr)
    assert "stopped at offset 1" in p1.stderr, p1.stderr
    assert offsets(p1) == [0], p1.stdout  # nothing after the hole: it comes on the rerun
    p2 = tap("--group", g, run.topic)
    print(p2.returncode, p2.stderr)
    assert "not written" in p2.stderr and p2.returncode == 3, \
        "rerun with the group: the unwritten message is gone (exit %d, %r)" % (p2.returncode, p2.stderr)
    assert offsets(p2) == [], p2.stdout
    # the analyst decides the message is garbage: commit past it, the rest comes once
    p3 = tap("--group", g, "--skip-unwritten", run.topic)
    assert p3.returncode == 3 and ":1: not written" in p3.stderr, (p3.returncode, p3.stderr)
    assert offsets(p3) == [2], p3.stdout
    p4 = tap("--group", g, run.topic)
    assert p4.returncode == 0 and offsets(p4) == [], (p4.returncode, p4.stderr, p4.stdout)
    # without a group nothing changes: every message is read, the bad one reported
    p5 = tap(run.topic)
    assert p5.returncode == 3 and offsets(p5) == [0, 2], (p5.returncode, p5.stdout)
    p6 = tap("--skip-unwritten", run.topic)
    assert p6.returncode == 2 and "--group" in p6.stderr, (p6.returncode, p6.stderr)
