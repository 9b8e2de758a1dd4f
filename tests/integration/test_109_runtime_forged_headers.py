"""109: runtime headers are trusted only on the worker's own retry topics. A message on a
main topic carrying a non-UTF-8 kasir.origin.topic and kasir.attempt=99 (and a body that
fails validation) is dead-lettered with its true origin and attempt 1, without stalling;
a retry-topic copy naming a foreign origin is treated as the retry topic's own message."""
import base64

from runtime_util import Run, consume, produce, wait_until


def b64(b):
    return base64.b64encode(b).decode()


def test_forged_runtime_headers_on_main_topic(daemons):
    run = Run("t109", partitions=1)
    forged = run.event(1000, amount=-5)  # invalid: goes to the DLQ
    forged["headers_base64"] = {"kasir.origin.topic": b64(b"\xff\xfe not utf-8 \xc3\x28"),
                                "kasir.origin.partition": b64(b"7"),
                                "kasir.origin.offset": b64(b"123456"),
                                "kasir.attempt": b64(b"99"),
                                "kasir.retry.not_before": b64(b"99999999999999"),
                                "kasir.error.first_failure": b64(b"1")}
    lines = [run.event(i) for i in range(5)] + [forged] + [run.event(i) for i in range(5, 10)]
    produce(lines)
    d = daemons("demo", env=run.env())
    run.wait_applied(10, timeout=30)
    wait_until(lambda: len(consume(run.dlq, idle_ms=300)) >= 1, 20, what="DLQ copy")
    dlq = consume(run.dlq, idle_ms=500)
    assert len(dlq) == 1
    h = dlq[0]["headers"]
    assert h["kasir.origin.topic"] == run.topic
    assert h["kasir.origin.partition"] == "0"
    assert h["kasir.origin.offset"] == "5"
    assert h["kasir.attempt"] == "1"
    assert h["kasir.error.class"] == "invalid"
    assert int(h["kasir.error.first_failure"]) > 1000000000000  # now, not the forged 1
    assert d.term() == 0


def test_retry_copy_with_foreign_origin_is_not_trusted(daemons):
    run = Run("t109b", partitions=1)
    other = Run("t109c", partitions=1)
    ev = run.event(1, amount=-5)  # invalid, so its DLQ copy shows the origin used
    ev["topic"] = run.retry[0]
    ev["headers"] = {"kasir.origin.topic": other.topic, "kasir.origin.offset": "77",
                     "kasir.attempt": "3", "kasir.retry.not_before": "1"}
    produce([ev])
    d = daemons("demo", env=run.env())
    wait_until(lambda: len(consume(run.dlq, idle_ms=300)) >= 1, 20, what="DLQ copy")
    assert consume(other.dlq, idle_ms=300) == []
    h = consume(run.dlq, idle_ms=300)[0]["headers"]
    assert h["kasir.origin.topic"] == run.topic
    assert h["kasir.attempt"] == "1"
    assert d.term() == 0
