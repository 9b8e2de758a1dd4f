"""303: a REVIEW is held until an admin decides, with `kasir-risk holds` (the ingress's
endpoints are test 304): approving releases the held PspCommands exactly once (approving
again changes nothing and sends nothing), another partner's admin cannot release the hold,
rejecting fails the payment; who and why are recorded; payouts are held the same way."""
import json
import time

from risk_util import (Risk, consume, holds_cli, produce, psql_one, risk_daemons,  # noqa: F401
                       status, wait_until)

RULES = [
    {"id": "review-big", "type": "amount_limit", "currency": "IDR", "max": "1000.00",
     "action": "REVIEW"},
    {"id": "review-payout", "type": "amount_limit", "flow": "payout", "currency": "IDR",
     "max": "1000.00", "action": "REVIEW"},
]


def held(r, pid):
    return psql_one("SELECT status FROM risk_holds WHERE hold_id = '%s'" % pid)


def test_hold_released_once_by_its_partner_only(risk_daemons):
    r = Risk("t303", RULES)
    two = [("s1", 150000, "IDR", "VIRTUAL_ACCOUNT"), ("s2", 20000, "IDR", "QRIS")]
    big, other, small = (r.payment(buyer="b1", orders=two), r.payment(buyer="b2", orders=two),
                         r.payment(buyer="b3", orders=[("s1", 100, "IDR", "QRIS")]))
    po = r.payout(amount=200000)
    produce([big, other, small, po])
    d = r.start(risk_daemons)
    got = r.wait_decided(4)
    pid, oid, poid = (big["value"]["payment_id"], other["value"]["payment_id"],
                      po["value"]["payout_id"])
    assert got[pid][0] == got[oid][0] == got[poid][0] == "REVIEW"
    r.commands(1)  # the small payment's
    assert len(consume(r.out, idle_ms=500)) == 1  # nothing of the held ones

    rc, out, _ = holds_cli("list", "--partner", r.partner)
    assert rc == 0
    listed = {h["hold_id"]: h for h in map(json.loads, out.splitlines())}
    assert set(listed) == {pid, oid, poid}
    assert listed[pid]["reasons"] == ["AMOUNT_ABOVE_MAX"] and listed[pid]["rules"] == ["review-big"]
    assert listed[pid]["amounts"] == [{"currency": "IDR", "amount_minor": 170000}]
    assert listed[poid]["kind"] == "payout"
    # another partner's admin: not found, and nothing changes
    rc, _, err = holds_cli("approve", "--partner", r.other, "--by", "mallory", "--reason", "x", pid)
    assert rc == 1 and "not_found" in err
    rc, out, _ = holds_cli("list", "--partner", r.other, "--status", "all")
    assert rc == 0 and out == ""
    assert held(r, pid) == "HELD"

    # approved by its partner: the two orders' commands go out, once
    rc, out, _ = holds_cli("approve", "--partner", r.partner, "--by", "alice", "--reason",
                           "buyer verified", pid)
    assert rc == 0, out
    h = json.loads(out)
    assert (h["status"], h["decided_by"], h["decision_note"]) == ("APPROVED", "cli:alice",
                                                                  "buyer verified")
    cmds = r.commands(3)
    released = [m for m in cmds if m["value"]["payment_id"] == pid]
    assert sorted(m["value"]["order_id"] for m in released) == sorted(
        o["order_id"] for o in big["value"]["orders"])
    assert {m["value"]["kind"] for m in released} == {"CHARGE"}
    for m in released:  # the headers the worker would have written
        assert m["headers"]["kasir.cause"] == big["value"]["message_id"]
        assert m["headers"]["kasir.producer"] == "risk" and m["headers"]["traceparent"]
    # approving again: unchanged, nothing sent again
    rc, out, _ = holds_cli("approve", "--partner", r.partner, "--by", "bob", "--reason", "again", pid)
    assert rc == 0 and json.loads(out)["decided_by"] == "cli:alice"
    assert int(psql_one("SELECT count(*) FROM kasir_outbox WHERE message_id IN (SELECT "
                        "message_id FROM risk_hold_commands WHERE hold_id = '%s')" % pid)) <= 2
    time.sleep(3)
    assert len({m["headers"]["kasir.message_id"] for m in consume(r.out, idle_ms=500)}) == 3
    # the payment stays NOT_STARTED for the executor (risk wrote the row it did not find)
    assert status("payments", "payment_id", pid) == "NOT_STARTED"
    # and the approved hold cannot be rejected
    rc, _, err = holds_cli("reject", "--partner", r.partner, "--by", "bob", "--reason", "no", pid)
    assert rc == 1 and "conflict" in err

    # rejected: the payment and its orders fail, nothing is sent
    rc, out, _ = holds_cli("reject", "--partner", r.partner, "--by", "carol", "--reason",
                           "card reported stolen", oid)
    assert rc == 0
    assert json.loads(out)["status"] == "REJECTED"
    assert status("payments", "payment_id", oid) == "FAILED"
    assert {status("payment_orders", "order_id", o["order_id"])
            for o in other["value"]["orders"]} == {"FAILED"}

    # a held payout: HELD in the read model, back to REQUESTED and its command on approval
    assert status("payouts", "payout_id", poid) == "HELD"
    rc, out, _ = holds_cli("approve", "--partner", r.partner, "--by", "dave", "--reason", "ok", poid)
    assert rc == 0
    assert status("payouts", "payout_id", poid) == "REQUESTED"
    cmds = r.commands(4)
    assert [m["value"]["kind"] for m in cmds if m["value"]["payout_id"] == poid] == ["PAYOUT"]
    wait_until(lambda: psql_one("SELECT count(*) FROM kasir_outbox WHERE worker = 'risk/%s'"
                                % r.group) == "0", 20, what="outbox drained")
    assert d.term() == 0
