"""516 (review): --rate bursts after a slow scan: the schedule starts before the first match.

replay.c:301 sets t0 before scanning (due time at replay.c:327) and makes copy k due at t0 + k/N. When the first
matching dead letter comes after a long stretch of non-matching ones (a filter on a big DLQ,
the usual case: `--error failed` over a topic full of poison), every copy "due" during the
scan goes out at once: the rate limit, there to spare the downstream worker and its PSP,
turns into a burst of N x (scan seconds). Here 60 copies at --rate 10 behind ~1 s of
scanning: ~20 copies leave in the first second. Expected: no 1-second window with more
than ~N copies (the schedule anchored at the first copy)."""
import base64

from runtime_util import Run, produce
from tools_util import dlq_json, topic_records


def test_rate_holds_after_long_scan():
    run = Run("t516", partitions=1)
    pad = base64.b64encode(b"x" * 4000).decode()
    lines = [{"topic": run.dlq, "key": "n%d" % i, "raw_base64": pad,
              "headers": {"kasir.error.class": "poison", "kasir.message_id": "n%d" % i,
                          "kasir.origin.topic": run.topic}} for i in range(40000)]
    lines += [{"topic": run.dlq, "key": "f%d" % i, "raw_base64": "AAEC",
               "headers": {"kasir.error.class": "failed", "kasir.message_id": "f%d" % i,
                           "kasir.origin.topic": run.topic}} for i in range(40)]
    produce(lines, timeout=300)
    r = dlq_json("replay", "--dlq", run.dlq, "--error", "failed", "--rate", "10", "--quiet",
                 timeout=300)[-1]
    assert r["replayed"] == 40
    ts = sorted(c["timestamp"] for c in topic_records(run.topic))
    assert len(ts) == 40
    worst = max(sum(1 for u in ts if t <= u < t + 1000) for t in ts)
    print("offsets from first copy (ms):", [t - ts[0] for t in ts][:20])
    assert worst <= 12, "%d copies within one second at --rate 10" % worst
