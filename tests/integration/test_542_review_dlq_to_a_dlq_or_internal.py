"""542 (review): `replay --to` took any topic: a careless operator's `--to` naming a DLQ (the
one being read, or another pipeline's) forged dead letters there, stripped of their error
headers, and a later replay of that DLQ sent them on; `--to __consumer_offsets` was
produced and failed only at the broker. --to names a topic a replay may write, the rule
the origin headers follow: legal, not *.dlq, not internal (exit 2, nothing sent, no audit)."""
from conftest import psql_one
from runtime_util import Run, produce
from tools_util import dead_letter, dlq, topic_records


def test_to_a_dlq_or_internal_topic_is_refused():
    run = Run("t542", partitions=1)
    other = Run("t542o", partitions=1)
    produce([dead_letter(run, i) for i in range(3)])
    for to in (run.dlq, other.dlq, "__consumer_offsets", "bad name"):
        for extra in ([], ["--dry-run"]):
            p = dlq("replay", "--dlq", run.dlq, "--to", to, *extra, check=False)
            assert p.returncode == 2 and "--to" in p.stderr, (to, p.returncode, p.stderr)
    assert len(topic_records(run.dlq)) == 3 and topic_records(other.dlq) == []
    assert psql_one("SELECT count(*) FROM kasir_dlq_audit WHERE filters->'dlq' ? '%s'"
                    % run.dlq) == "0"
    # the origin still works, and so does --to an ordinary topic
    dlq("replay", "%s:0:0" % run.dlq, "--to", other.topic, "--quiet")
    assert len(topic_records(other.topic)) == 1
