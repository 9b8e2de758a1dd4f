"""510 (review): a dead letter whose kasir.message_id header is not UTF-8 poisons every replay.

dlq_msg_parse (dlq-tools/dlq/msg.c:60) copies the header's bytes as they are; the replay
produces the copy (Kafka confirms it) and then sends the id in the text[] of the marks
(store.c SQL_MARK_REPLAYED). PostgreSQL refuses the batch (invalid byte sequence for UTF8),
so nothing of that batch is recorded: every message in it, the good ones too, stays open and
is copied AGAIN by each rerun. The contract ("a rerun skips what was recorded", "replaying
the same selection again selects nothing") breaks for the whole batch, forever, because of
one hostile header. Expected: the bad message is refused (or its id stored safely) and the
good ones are recorded once."""
import base64

from runtime_util import Run, produce
from tools_util import dead_letter, dlq, topic_records


def test_non_utf8_message_id_does_not_poison_replay():
    run = Run("t510", partitions=1)
    good = [dead_letter(run, i, cls="failed") for i in range(5)]
    bad = dead_letter(run, 5, cls="failed")
    del bad["headers"]["kasir.message_id"]
    bad["headers_base64"] = {"kasir.message_id": base64.b64encode(b"msg_\xff\xfe\xc3(").decode()}
    produce(good + [bad])

    p1 = dlq("replay", "--dlq", run.dlq, "--quiet", check=False)
    p2 = dlq("replay", "--dlq", run.dlq, "--quiet", check=False)
    copies = topic_records(run.topic)
    print(p1.returncode, p1.stderr, p1.stdout)
    print(p2.returncode, p2.stderr, p2.stdout)
    # each dead letter reaches its origin at most once over the two runs
    assert len(copies) <= 6, "%d copies of 6 dead letters after two replays: %s / %s" % (
        len(copies), p1.stderr.strip(), p2.stderr.strip())
    # and the good ones are recorded as replayed
    lst = dlq("list", "--dlq", run.dlq, "--status", "open", check=False).stdout
    for i in range(5):
        assert ("%s:0:%d " % (run.dlq, i)) not in lst, lst
