"""519 (review): a message resolved while a replay runs is replayed anyway.

`resolve` takes no lock (replay.c dlq_cmd_resolve; msg.c dlq_scan_open locks only for
replay) and a replay reads the marks once at its start (dlq_marks_load), so a dead letter
the operator resolves during a long (rate-limited) replay, e.g. `resolve --key ord_123
--note "refunded by hand"` because it was handled by hand, is still copied to its origin
when the replay reaches it. The original never applied (it was dead-lettered), so the
worker's dedup does not stop the copy: the hand-handled payment is applied a second time.
`resolve` succeeds (exit 0, "1 marked resolved") and the message ends up both resolved and
replayed. Expected: resolve refused while a replay holds the topic (like a second replay),
or the replay re-checks resolved marks before producing.

The contract: resolve works during a replay (exit 0, with a warning that a replay is
running), and the replay, which re-reads the resolve marks before each chunk of copies
under a lock the resolve takes to commit, does not send the message; its summary counts it
as resolved meanwhile."""
import json
import subprocess
import time

from conftest import bin_path, psql_one
from runtime_util import Run, produce
from tools_util import dead_letter, dlq, dlq_json, topic_records


def test_resolved_during_replay_is_not_replayed():
    run = Run("t519", partitions=1)
    produce([dead_letter(run, i, cls="failed") for i in range(60)])
    # 60 messages at 10/s: 6 s, room for the resolve to start and commit on a loaded machine
    rp = subprocess.Popen([bin_path("dlq"), "replay", "--dlq", run.dlq, "--rate", "10", "--quiet",
                           "--output", "json"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        t0 = time.monotonic()
        r = dlq("resolve", "%s:0:59" % run.dlq, "--note", "handled by hand", check=False)
        took = time.monotonic() - t0
        out, err = rp.communicate(timeout=60)
    finally:
        if rp.poll() is None:
            rp.kill()
    print(r.returncode, r.stdout, r.stderr, took, out, err)
    assert r.returncode == 0, r.stderr
    assert "1 messages marked resolved" in r.stdout
    assert "a replay is reading %s" % run.dlq in r.stderr, r.stderr
    assert took < 4.5, "the resolve took %.1f s: the replay reached the message first" % took
    assert rp.returncode == 0, err
    summary = json.loads(out.splitlines()[-1])
    assert summary["replayed"] == 59 and summary["resolved_meanwhile"] == 1, summary
    ids = [c["headers"].get("kasir.message_id") for c in topic_records(run.topic)]
    assert "%s-m59" % run.name not in ids, \
        "dead letter resolved during the replay was replayed anyway"
    assert len(ids) == 59
    st = {d["offset"]: d["status"] for d in dlq_json("list", "--dlq", run.dlq)}
    assert st[59] == "resolved" and all(st[i] == "replayed" for i in range(59)), st
