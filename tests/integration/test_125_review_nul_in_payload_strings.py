"""125 (review): a NUL inside a payload string is cut, silently. Avro strings may hold
U+0000 and lib/serde.c decodes them whole (json_stringn), but PostgreSQL text cannot hold
NUL, and a worker written like the example (consumers/demo/main.c: str_field() and
add_text() go by strlen) passes the string cut at the NUL: event "E\\0x" is taken as "E"
(already applied: silently skipped, nothing dead-lettered, its money gone), and account
"victim\\0x" as "victim" (the amount posted to somebody else's account). The runtime fixed
this for message ids only (id_of_bytes). A string with NUL can never be stored faithfully:
it must be refused (poison/invalid, dead-lettered) by the runtime or the example's validate.

Fails today: the NUL event is neither applied nor dead-lettered, and the NUL account's
amount lands on the victim's balance."""
import time

from conftest import kcat_messages, psql_one
from runtime_util import Run, consume, produce, wait_until


def zz(n):
    n = (n << 1) ^ (n >> 63)
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def s(b):
    return zz(len(b)) + b


def demo_event(prefix, message_id, event_id, account, amount):
    return prefix + s(message_id) + zz(1700000000000000) + s(event_id) + zz(1) + \
        s(account) + zz(amount) + s(b"IDR") + zz(0)


def test_nul_in_payload_string_is_not_cut(daemons):
    run = Run("t125", partitions=1)
    name = run.name.encode()
    victim = name + b"-victim"
    produce([run.event(1, account=victim.decode(), amount=100)])
    prefix = kcat_messages(run.topic)[0][1][:10]  # single-object magic + fingerprint
    assert prefix[:2] == b"\xc3\x01"
    dup = demo_event(prefix, name + b"-m2", name + b"-1\x00second", name + b"-other", 5000)
    acct = demo_event(prefix, name + b"-m3", name + b"-3", victim + b"\x00attacker", 7000)
    produce([run.raw(dup, key="k2"), run.raw(acct, key="k3")])
    d = daemons("demo", env=run.env())
    wait_until(lambda: run.applied() >= 1, 30, what="the first event")
    time.sleep(6)  # both NUL events were read (one batch, one partition)
    dlq = consume(run.dlq, idle_ms=500)
    balance = psql_one("SELECT coalesce(sum(balance_minor), 0) FROM demo_accounts "
                       "WHERE account = '%s'" % victim.decode())
    assert balance == "100", "victim's balance is %s: another account's amount landed on it" % balance
    # three events in: each applied (under its whole id) or dead-lettered, none vanished
    assert run.applied() + len(dlq) == 3, "applied %d, dead-lettered %d of 3" % (run.applied(), len(dlq))
    # each one dead-lettered names the field that holds the NUL
    said = sorted(m["headers"].get("kasir.error.message", "") for m in dlq)
    assert said == ["account contains a NUL character", "event_id contains a NUL character"], said
    d.term()
