"""511 (review): a dead letter's kasir.origin.topic header steers the replay into a DLQ topic.

replay.c:316 takes the target from the header unchecked (target = d.origin) and target_get
only checks that the topic exists. A hostile or corrupt header naming a *.dlq topic (here
another pipeline's DLQ, or the DLQ being read) makes `kasir-dlq replay` append forged dead
letters to that DLQ, which the README declares evidence the tool never rewrites; its
runtime-owned headers are stripped, so the forged record then shows up as a fresh dead letter
of the other pipeline (origin derived from the name) and a later `replay --dlq other` sends it
to the other pipeline's main topic. Expected: a *.dlq target (from the header) is refused and
the message left open with a message, unless the operator names it with --to."""
from conftest import create_topics, unique
from runtime_util import Run, produce
from tools_util import dead_letter, dlq, topic_records


def test_origin_header_cannot_target_a_dlq_topic():
    run = Run("t511", partitions=1)
    victim = unique("t511v") + ".in.dlq"
    create_topics(victim + ":1")
    lines = [dead_letter(run, i, cls="failed") for i in range(2)]
    lines[0]["headers"]["kasir.origin.topic"] = victim    # another pipeline's DLQ
    lines[1]["headers"]["kasir.origin.topic"] = run.dlq   # the DLQ being read
    produce(lines)
    p = dlq("replay", "--dlq", run.dlq, "--quiet", check=False)
    print(p.returncode, p.stdout, p.stderr)
    assert topic_records(victim) == [], "replay appended to another DLQ topic"
    assert len(topic_records(run.dlq)) == 2, "replay appended to the DLQ it read"
