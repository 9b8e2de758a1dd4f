"""512 (review): a kasir.message_id longer than 255 bytes is cut, and the copy carries the cut id.

Fixed: kasir-dlq reads ids as the worker runtime does (ks_id_from_bytes: an id that is not
1-63 printable characters is replaced by a hash of its bytes); the copy carries that id.
Before: struct dlq_msg.message_id is char[256] (dlq.h:81) and copy_val (msg.c:24) truncated silently;
copy_headers (replay.c:170) drops the original header and writes the truncated one. The
replayed copy thus carries a message id the original never had: the worker's dedup (by
message id) no longer recognises a duplicate of the original, and two distinct dead letters
whose ids share the first 255 bytes are replayed under ONE id, so the worker applies the
first and drops the second as a duplicate (a lost message)."""
from runtime_util import Run, produce
from tools_util import dead_letter, dlq, topic_records


def test_long_message_id_survives_replay():
    run = Run("t512", partitions=1)
    base = run.name + "-" + "x" * 300
    lines = [dead_letter(run, i, cls="failed") for i in range(2)]
    lines[0]["headers"]["kasir.message_id"] = base + "-A"
    lines[1]["headers"]["kasir.message_id"] = base + "-B"
    produce(lines)
    p = dlq("replay", "--dlq", run.dlq, "--quiet", check=False)
    print(p.returncode, p.stdout, p.stderr)
    ids = sorted(c["headers"].get("kasir.message_id") for c in topic_records(run.topic))
    # no copy under a cut id: an id too long for one is replaced by the hash the worker
    # itself derives for it (ks_id_from_bytes), so dedup still matches the original
    assert len(ids) == 2
    for i in ids:
        assert not (base + "-A").startswith(i) and not (base + "-B").startswith(i), \
            "copy carries a cut id of %d bytes" % len(i)
        assert i.startswith("msg_") and len(i) < 64, i
    assert len(set(ids)) == len(ids), "two dead letters replayed under one message id"
