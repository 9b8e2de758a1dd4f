"""236: a payment claim resumed after its lock passed (its first ingress answered, then died
before the event reached kasir-risk) answers with the first attempt's stored 202, byte for
byte, and its event must carry the order ids that answer told the client. Session 35 changed
how order ids are derived (time-led, lib/ids.h ks_id_derive_after): an ingress of the new
release resuming a claim of the old one derived the new ids for the event while the client
held the old ones, so a refund of an order the client was told of found no such order."""
import uuid

from conftest import psql
from ingress_util import (ingress, kafka_since, new_key, now_ms, partners,  # noqa: F401
                          payment_body, rows_written)


def first_attempt(ingress, partner, edit):
    """A payment answered, then left as a crashed first attempt would leave it: its event
    never reached kasir-risk (no rows), its ingress died holding the lock, and its stored
    answer as edit(answer bytes, order ids) makes it. Returns (body, key, payment id, order
    ids, the stored answer)."""
    key, body = new_key(), payment_body(n=2)
    r1 = ingress.pay(partner, body, key=key)
    assert r1.status == 202, r1
    pid = r1.json()["payment_id"]
    ours = [o["payment_order_id"] for o in r1.json()["payment_orders"]]
    stored = edit(r1.body, ours)
    rows_written(pid)
    psql("DELETE FROM payment_orders WHERE payment_id = '%s'; DELETE FROM payments WHERE "
         "payment_id = '%s'; UPDATE idempotency_keys SET response_body = '\\x%s', locked_at = "
         "now() - interval '1 hour' WHERE resource_id = '%s'" % (pid, pid, stored.hex(), pid))
    return body, key, pid, ours, stored


def events_of(pid, since_ms):
    return [v for _, v in kafka_since("kasir.payments.requested", since_ms) if pid.encode() in v]


def test_resumed_claim_publishes_the_order_ids_it_answered(ingress, partners):
    a, _ = partners
    t0 = now_ms()
    told = []

    def older_release(answer, ours):  # other order ids for the same payment, as it derived them
        told.extend("ord_" + str(uuid.uuid4()) for _ in ours)
        for o, t in zip(ours, told):
            answer = answer.replace(o.encode(), t.encode())
        return answer
    body, key, pid, ours, stored = first_attempt(ingress, a, older_release)

    r2 = ingress.pay(a, body, key=key)
    assert r2.status == 202 and r2.body == stored, r2
    events = events_of(pid, t0)
    assert len(events) == 2, "the resumed claim published no event again: %d" % len(events)
    again = events[-1]
    assert all(t.encode() in again for t in told), "the event lacks the order ids answered"
    assert not any(o.encode() in again for o in ours), "the event names orders never answered"


def test_resumed_claim_with_an_unreadable_answer_publishes_nothing(ingress, partners):
    """A stored answer that names no valid order id per order (corrupt, or hand-edited): the
    retry is refused, nothing goes to Kafka, and the log names the payment for an operator."""
    a, _ = partners
    t0 = now_ms()
    body, key, pid, _, _ = first_attempt(
        ingress, a, lambda answer, ours: answer.replace(ours[0].encode(), b"ord_not-a-uuid"))

    r2 = ingress.pay(a, body, key=key)
    assert r2.status == 500, r2
    events = events_of(pid, t0)
    assert len(events) == 1, "a resumed claim with an unreadable answer published: %d" % len(events)
    log = open(ingress.daemon.log_path, errors="replace").read()
    assert any("ingress.stored_answer_unreadable" in line and pid in line
               for line in log.splitlines()), "no error names the payment"
