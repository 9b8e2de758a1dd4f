"""143: a NUL inside an Avro MAP KEY passes the runtime's NUL check. Test 125 made the
runtime refuse a message with U+0000 in any string (lib/worker_msg.c has_nul/nul_field),
because C code reads strings up to the NUL. has_nul walks the values of an object but never
its keys, and lib/serde.c decodes a map key whole (json_object_setn_new with its length),
so a key "destination_account\\0x" survives decoding. Every daemon that walks a map with
json_object_foreach gets that key as a C string, i.e. "destination_account": the executor
(consumers/executor/main.c fill_cmd) copies the details map that way and ex_cmd_detail
returns the FIRST entry of that name. A PSP command whose details hold
"destination_account\\0x": <attacker> before the real "destination_account" is sent to
the PSP with the attacker's account, while everything that reads the map by key
(json_object_get compares whole keys) sees the real one.

Measured today: the command is journaled and resolved (executor_attempts: attempt 1,
resolved), nothing is dead-lettered.

Scenario: a payout command (its payouts row REQUESTED, as risk leaves it) with such a
details map, written straight to the commands topic as Avro. The runtime's rule says it is
invalid: dead-lettered (naming the field), never journaled, never sent to the PSP.

Proposed fix: in has_nul (and nul_field, for the path) check each object key's length too:
jansson 2.14 gives it with json_object_iter_key_len(json_object_key_to_iter(k)); or refuse
a map key holding a NUL in lib/serde.c decode_blocks (a key that C cannot read whole)."""
import base64
import time

import pytest

from conftest import create_topics, kcat_messages, psql
from executor_util import Exec, produce
from sandbox_util import sandbox  # noqa: F401 (fixture)
from test_125_review_nul_in_payload_strings import s, zz  # Avro long and string encoders


def payout_command(prefix, ex, payout, amount, details):
    """A kasir.psp.PspCommand PAYOUT, field by field (schemas/psp_command.v1.avsc)."""
    cid, key = ("cmd_PAYOUT_" + payout).encode(), ("idk_PAYOUT_" + payout).encode()
    body = (s(b"msg_" + cid) + zz(1767225600000000) + s(ex.partner.encode()) + s(cid) +
            zz(2) +                                   # kind PAYOUT
            zz(0) + zz(0) + zz(0) +                   # payment_id, order_id, refund_id: null
            zz(1) + s(payout.encode()) +              # payout_id
            s(b"sandbox") + s(key) + zz(amount) + s(b"IDR") +
            zz(4) +                                   # method BANK_TRANSFER
            zz(1) +                                   # attempt
            zz(len(details)) + b"".join(s(k) + s(v) for k, v in details) + zz(0))
    return prefix + body


    po = "po_" + ex.tag
    good = ex.payout(po, 2500000)          # the payouts row, and a command to learn the prefix
    scratch = ex.name + ".scratch"
    create_topics(scratch + ":1")
    good["topic"] = scratch
    produce([good])
    prefix = kcat_messages(scratch)[0][1][:10]  # single-object magic + fingerprint
    assert prefix[:2] == b"\xc3\x01"
    raw = payout_command(prefix, ex, po, 2500000, [
        (b"destination_account\x00x", b"9999999999"),
        (b"bank_code", b"BCA"), (b"channel", b"BANK_ACCOUNT"),
        (b"destination_account", b"1234567890"), (b"account_holder", b"Siti")])
    produce([{"topic": ex.commands, "key": po,
              "raw_base64": base64.b64encode(raw).decode()}])
    daemons("executor", env=ex.env(sandbox))
    deadline = time.time() + 20
    while time.time() < deadline and not ex.dlq(idle_ms=500) and not psql(
            "SELECT 1 FROM executor_attempts WHERE object_id = '%s'" % po):
        time.sleep(0.5)
    time.sleep(2)
    sent = psql("SELECT attempt, state FROM executor_attempts WHERE object_id = '%s'" % po)
    assert sent == [], "journaled and sent to the PSP: %s" % sent
    dlq = ex.dlq(idle_ms=500)
    assert len(dlq) == 1, dlq
    h = dlq[0]["headers"]
    # invalid (the runtime's NUL check, naming the field) or poison (refused by the decoder)
    assert h["kasir.error.class"] in ("invalid", "poison"), h
    if h["kasir.error.class"] == "invalid":
        assert "details" in h.get("kasir.error.message", ""), h
