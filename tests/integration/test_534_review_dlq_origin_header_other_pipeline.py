"""534 (review): a dead letter's kasir.origin.topic header steers the replay into any topic.

Test 511 stopped a header from naming a *.dlq topic, but any other topic is still taken
from the header as it is. The runtime dead-letters a message of topic T to T.dlq, always
(lib/worker_fail.c), so in a DLQ named T.dlq a header naming another topic is corrupt or
forged: following it makes `kasir-dlq replay` write one pipeline's payload (with a fresh
replay header and an original message id) into another pipeline's topic, here a stand-in
for kasir.ledger.entries, the system of record's output. Expected: in T.dlq a header naming
another topic is shown and filtered on (evidence) but not followed: the dry run says so,
the replay leaves the message open with a message naming it (exit 1) and the other topic
gets nothing; `--to` still sends it where the operator says."""
from conftest import create_topics, unique
from runtime_util import Run, produce
from tools_util import dead_letter, dlq, dlq_json, topic_records


def test_origin_header_cannot_name_another_pipelines_topic():
    run = Run("t534", partitions=1)
    victim = unique("t534v") + ".ledger.entries"
    create_topics(victim + ":1")
    lines = [dead_letter(run, i, cls="failed") for i in range(2)]
    lines[0]["headers"]["kasir.origin.topic"] = victim
    produce(lines)
    dry = dlq_json("replay", "--dlq", run.dlq, "--dry-run", check=False)
    assert dry[0]["target"] == "(origin header is not the DLQ's topic)", dry
    assert dry[1]["target"] == run.topic, dry
    p = dlq("replay", "--dlq", run.dlq, "--quiet", check=False)
    assert p.returncode == 1 and ("%s:0:0: its origin header names %s" % (run.dlq, victim)) \
        in p.stderr, (p.returncode, p.stderr)
    assert topic_records(victim) == [], "replay wrote into another pipeline's topic"
    assert [c["headers"]["kasir.message_id"] for c in topic_records(run.topic)] == \
        ["%s-m1" % run.name]
    st = {d["offset"]: d["status"] for d in dlq_json("list", "--dlq", run.dlq)}
    assert st == {0: "open", 1: "replayed"}, st
    assert [d["offset"] for d in dlq_json("list", "--dlq", run.dlq, "--topic", victim)] == [0]
    # the operator decides: --to sends it where they say
    dlq("replay", "%s:0:0" % run.dlq, "--to", run.topic, "--quiet")
    assert len(topic_records(run.topic)) == 2
