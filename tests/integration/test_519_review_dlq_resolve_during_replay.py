"""519 (review): a message resolved while a replay runs is replayed anyway.

`resolve` takes no lock (replay.c dlq_cmd_resolve; msg.c dlq_scan_open locks only for
replay) and a replay reads the marks once at its start (dlq_marks_load), so a dead letter
the operator resolves during a long (rate-limited) replay, e.g. `resolve --key ord_123
--note "refunded by hand"` because it was handled by hand, is still copied to its origin
when the replay reaches it. The original never applied (it was dead-lettered), so the
worker's dedup does not stop the copy: the hand-handled payment is applied a second time.
`resolve` succeeds (exit 0, "1 marked resolved") and the message ends up both resolved and
replayed. Expected: resolve refused while a replay holds the topic (like a second replay),
or the replay re-checks resolved marks before producing."""
import subprocess
import time

from conftest import bin_path, psql_one
from runtime_util import Run, produce
from tools_util import dead_letter, dlq, dlq_json, topic_records
import pytest

# An open finding of the hostile review of issue 15, not fixed yet: the test shows the
# wrong behaviour and is expected to fail until it is (then drop this mark).
pytestmark = pytest.mark.xfail(strict=False, reason="open finding: 519 (review): a message resolved while a replay runs is replayed anyway.")


def test_resolved_during_replay_is_not_replayed():
    run = Run("t519", partitions=1)
    produce([dead_letter(run, i, cls="failed") for i in range(60)])
    rp = subprocess.Popen([bin_path("dlq"), "replay", "--dlq", run.dlq, "--rate", "20", "--quiet"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        r = dlq("resolve", "%s:0:59" % run.dlq, "--note", "handled by hand", check=False)
        rp.wait(timeout=60)
    finally:
        if rp.poll() is None:
            rp.kill()
    print(r.returncode, r.stdout, r.stderr)
    if r.returncode != 0:
        return  # refused while the replay held the topic: fine
    assert "1 messages marked resolved" in r.stdout
    ids = [c["headers"].get("kasir.message_id") for c in topic_records(run.topic)]
    assert "%s-m59" % run.name not in ids, \
        "dead letter resolved during the replay was replayed anyway"
