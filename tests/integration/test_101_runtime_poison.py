"""101: poison messages of each kind go to <topic>.dlq at once, with the error headers of
SPEC 5, and the messages behind them in the same partition are processed."""
from runtime_util import Run, consume, metrics, produce, unknown_fingerprint_bytes, wait_until

HEADERS = ["kasir.origin.topic", "kasir.origin.partition", "kasir.origin.offset",
           "kasir.origin.timestamp", "kasir.error.group", "kasir.error.class", "kasir.error.code",
           "kasir.error.message", "kasir.attempt", "kasir.error.first_failure",
           "kasir.error.instance", "kasir.message_id", "traceparent"]


def test_poison_to_dlq_without_stalling(daemons):
    run = Run("t101", partitions=1)
    lines, good = [], 0
    bad = [run.raw(b"this is not avro at all"), run.raw(unknown_fingerprint_bytes()),
           run.event(1000, amount=-5), run.event(1001, currency="XXX")]
    for b in bad:                       # each poison message sits between good ones
        for _ in range(5):
            lines.append(run.event(good))
            good += 1
        lines.append(b)
    lines.append(run.event(good))
    good += 1
    produce(lines)
    d = daemons("demo", env=run.env())
    run.wait_applied(good, timeout=30)
    wait_until(lambda: len(consume(run.dlq, idle_ms=500)) >= 4, 10, what="4 messages in the DLQ")
    dlq = consume(run.dlq, idle_ms=500)
    assert len(dlq) == 4, dlq
    classes = sorted(m["headers"]["kasir.error.class"] for m in dlq)
    assert classes == ["invalid", "invalid", "poison", "poison"]
    for m in dlq:
        h = m["headers"]
        for name in HEADERS:
            assert h.get(name), (name, h)
        assert h["kasir.origin.topic"] == run.topic
        assert h["kasir.error.group"] == run.group
        assert h["kasir.attempt"] == "1"
        # the original bytes, for replay
        assert m.get("raw_base64") or m.get("schema") == "kasir.demo.DemoEvent"
    offsets = sorted(int(m["headers"]["kasir.origin.offset"]) for m in dlq)
    assert offsets == [5, 11, 17, 23]
    invalid = [m for m in dlq if m["headers"]["kasir.error.class"] == "invalid"]
    assert {m["headers"]["kasir.error.field"] for m in invalid} == {"amount_minor", "currency"}
    wait_until(lambda: metrics(d.port).get("kasir_worker_dlq_total") == "4", 10, what="dlq metric")
    m = metrics(d.port)
    assert int(m["kasir_worker_messages_total"]) == good + 4
    assert d.term() == 0
