"""549 (review): `--dlq` (and a ref) took any topic. A careless `replay --dlq
<topic>.retry.5s` read the runtime's retry copies as dead letters: each names its main
topic in kasir.origin.topic, so the replay sent them all to the main topic while the
runtime was about to process them from the retry topic; `resolve --dlq <main topic> --all`
marked a main topic's messages. The runtime dead-letters a message of T to T.dlq, always:
a topic not so named is refused (exit 2), nothing sent, nothing recorded."""
from conftest import psql_one
from runtime_util import Run, produce
from tools_util import dead_letter, dlq, topic_records


def test_a_topic_that_is_not_a_dlq_is_refused():
    run = Run("t549", partitions=1)
    retry = dead_letter(run, 0, cls="retry")
    retry["topic"] = run.retry[0]  # a retry copy: origin headers naming the main topic
    produce([retry, run.event(1)])
    for args in (["replay", "--dlq", run.retry[0]], ["replay", "--dlq", run.topic, "--to",
                                                      run.out],
                 ["resolve", "--dlq", run.topic, "--all"], ["list", "--dlq", run.retry[0]],
                 ["replay", "%s:0:0" % run.retry[0]], ["stats", "--dlq", run.dlq + "," + run.topic]):
        p = dlq(*args, check=False)
        assert p.returncode == 2 and "not a dead-letter topic" in p.stderr, \
            (args, p.returncode, p.stderr)
    assert len(topic_records(run.topic)) == 1 and topic_records(run.out) == []
    assert psql_one("SELECT count(*) FROM kasir_dlq_audit WHERE filters::text LIKE '%%%s%%'"
                    % run.name) == "0"
