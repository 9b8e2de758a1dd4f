"""140: a main topic whose name holds ".retry." (legal in Kafka, e.g. "billing.retry.requests"
or an operator's "orders.retry.in"). The runtime recognises a retry topic by the FIRST
".retry." in its name (lib/worker_part.c is_retry_topic, lib/worker_msg.c
runtime_headers_trusted and item_prepare), so "<main>.retry.2s" is not seen as a retry topic
at all: it is read as a main topic, without waiting for the copy's due time, its headers are
ignored (attempt 1 again, origin = the retry topic itself), and the next failure writes the
copy to "<main>.retry.2s.retry.2s", a topic nobody subscribes to. A message that keeps
failing transiently therefore never reaches <main>.dlq: it is lost from the pipeline (the
operator's DLQ tool never sees it). Same input as test 102 with only the topic name changed:
the "fail-always" event must be dead-lettered as exhausted after attempt 3, and nothing may
be written to a retry topic of a retry topic.

Proposed fix: find the retry suffix from the END of the name and require the prefix to be a
subscribed topic (a retry topic is exactly "<t>.retry.<d>" for a configured t and d); cut
the origin at that same position in item_prepare; better, mark each subscribed retry topic
when the subscription is built (ks_worker_new knows every (t, d) pair) instead of parsing."""
import pytest

from conftest import create_topics
from runtime_util import Run, consume, produce, wait_until


def test_main_topic_with_retry_in_its_name(daemons):
    run = Run("t140.retry.x", partitions=1, delays=("2s",))
    assert ".retry." in run.topic
    # where today's code sends the second copy: created so that it is not parked as
    # undeliverable but sits, unread, on a topic the worker does not subscribe to
    stray = run.retry[0] + ".retry.2s"
    create_topics(stray + ":1")
    produce([run.event(0), run.event(1, note="fail-always"), run.event(2)])
    d = daemons("demo", env=run.env())
    run.wait_applied(2, timeout=20)
    try:
        wait_until(lambda: len(consume(run.dlq, idle_ms=500)) == 1, 30,
                   what="the fail-always event exhausted in the DLQ")
    finally:
        strays = consume(stray, idle_ms=500)
        assert strays == [], "a retry copy was written to %s, which nobody reads" % stray
    dlq = consume(run.dlq, idle_ms=500)[0]
    assert dlq["value"]["event_id"] == "%s-1" % run.name
    assert dlq["headers"]["kasir.error.class"] == "exhausted"
    assert dlq["headers"]["kasir.attempt"] == "3"
    assert dlq["headers"]["kasir.origin.topic"] == run.topic
    assert run.applied() == 2
    assert d.term() == 0
