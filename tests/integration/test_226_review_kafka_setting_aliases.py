"""226: the ingress's producer settings given under librdkafka's other names are kept (a review
of producers/ingress/publish.c).

The ingress sets linger.ms, message.timeout.ms and reconnect.backoff.max.ms unless they are
configured (`kafka.*` passes through to librdkafka). It told "configured" by the exact names,
so an operator who set queue.buffering.max.ms (librdkafka's other name for linger.ms) or
delivery.timeout.ms (message.timeout.ms) had the value silently overwritten by the ingress's
own. Now the ingress's values are defaults applied before the configured settings, whatever
name those use. Observable through linger: a 202 leaves at Kafka's delivery report, so with
1.5 s of linger every payment's answer takes that long."""
import time

import pytest

from ingress_util import Partner, checkout_id, payment_body, new_key, start_ingress


@pytest.mark.parametrize("name", ["KASIR_KAFKA_LINGER_MS", "KASIR_KAFKA_QUEUE_BUFFERING_MAX_MS"])
def test_configured_linger_is_kept_under_either_name(name):
    ing = start_ingress({name: "1500"})
    try:
        p = Partner("p226-%s" % new_key()[:8])
        ing.pay(p, payment_body(), key=new_key())  # connections, metadata, credential cache
        took = []
        for _ in range(3):
            t = time.monotonic()
            r = ing.pay(p, payment_body(), key=new_key())
            took.append(time.monotonic() - t)
            assert r.status == 202, r
        # each answer waited for the producer's 1.5 s batch (not the ingress's 1 ms)
        assert min(took) >= 1.2, (name, took)
    finally:
        ing.daemon.term()


def test_default_linger_answers_at_once():
    ing = start_ingress()
    try:
        p = Partner("p226-default-%s" % new_key()[:8])
        ing.pay(p, payment_body(), key=new_key())
        t = time.monotonic()
        r = ing.pay(p, payment_body(), key=new_key())
        assert r.status == 202, r
        assert time.monotonic() - t < 1.0
    finally:
        ing.daemon.term()
