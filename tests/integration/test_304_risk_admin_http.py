"""304: the ingress's admin endpoints for held payments (scope admin): list, approve and
reject with who and why recorded; a REVIEW released by its partner's admin goes out as
PspCommands once; another partner's admin cannot see or release it (404); a key without
the admin scope gets 403; deciding again the same way is a 200 that changes nothing, the
other way a 409."""
import base64
import secrets

import pytest

from conftest import Daemon
from ingress_util import Partner, cli, start_ingress
from risk_util import Risk, consume, low_port, produce, psql_one, risk_daemons, status  # noqa: F401

RULES = [{"id": "review-all-idr", "type": "amount_limit", "currency": "IDR", "max": "1.00",
          "action": "REVIEW"}]


@pytest.fixture(scope="module")
def ingress():
    ing = start_ingress()  # probes on its admin listener, as every ingress test starts it
    yield ing
    ing.daemon.term()


def admin_of(partner_id):
    key = cli("key", "add", partner_id, "--scopes", "admin")["api_key"]
    return "Basic " + base64.b64encode((key + ":").encode()).decode()


def test_admin_endpoints(ingress, risk_daemons):
    a, b = Partner("t304-a-" + secrets.token_hex(3)), Partner("t304-b-" + secrets.token_hex(3))
    r = Risk("t304", RULES)
    r.partner, r.other = a.partner_id, b.partner_id  # real partners of the ingress
    pays = [r.payment(buyer="b%d" % i, orders=[("s1", 150000 + i, "IDR", "QRIS")]) for i in range(3)]
    produce(pays)
    d = r.start(risk_daemons)
    got = r.wait_decided(3)
    ids = [p["value"]["payment_id"] for p in pays]
    assert {got[i][0] for i in ids} == {"REVIEW"}
    admin_a, admin_b = admin_of(a.partner_id), admin_of(b.partner_id)

    # list: the partner's holds only, oldest first, amounts as decimal strings, paged
    resp = ingress.request("GET", "/v1/admin/holds", auth=admin_a)
    assert resp.status == 200, resp
    holds = resp.json()["holds"]
    assert [h["hold_id"] for h in holds] == sorted(ids, key=ids.index)
    assert holds[0]["amounts"] == [{"currency": "IDR", "amount": "1500.00"}]
    assert holds[0]["reasons"] == ["AMOUNT_ABOVE_MAX"] and holds[0]["status"] == "HELD"
    page = ingress.request("GET", "/v1/admin/holds?limit=2", auth=admin_a).json()
    assert len(page["holds"]) == 2 and page["next_after"] == ids[1]
    rest = ingress.request("GET", "/v1/admin/holds?limit=2&after=" + ids[1], auth=admin_a).json()
    assert [h["hold_id"] for h in rest["holds"]] == [ids[2]] and rest["next_after"] is None
    assert ingress.request("GET", "/v1/admin/holds", auth=admin_b).json()["holds"] == []
    assert ingress.request("GET", "/v1/admin/holds?status=nope", auth=admin_a).code == "query_invalid"
    # scope: the partner's ordinary key may not
    resp = ingress.request("GET", "/v1/admin/holds", auth=a)
    assert resp.status == 403 and resp.code == "forbidden_scope"

    # another partner's admin cannot release it: 404, and the hold stays HELD
    path = "/v1/admin/holds/%s/approve" % ids[0]
    resp = ingress.request("POST", path, {"reason": "mine now"}, auth=admin_b)
    assert resp.status == 404 and resp.code == "not_found", resp
    assert psql_one("SELECT status FROM risk_holds WHERE hold_id = '%s'" % ids[0]) == "HELD"
    # bad bodies name the field
    assert ingress.request("POST", path, {}, auth=admin_a).code == "field_required"
    assert ingress.request("POST", path, {"reason": ""}, auth=admin_a).code == "field_empty"
    assert ingress.request("POST", path, {"reason": "x", "y": 1}, auth=admin_a).code == "field_unknown"
    assert ingress.request("POST", path, raw=b"{", auth=admin_a).code == "malformed_json"
    assert ingress.request("POST", "/v1/admin/holds/%s/frobnicate" % ids[0], {"reason": "x"},
                           auth=admin_a).status == 404
    assert ingress.request("GET", path, auth=admin_a).status == 405

    # its own admin releases it: who and why recorded, the command goes out once
    resp = ingress.request("POST", path, {"reason": "buyer verified by phone"}, auth=admin_a)
    assert resp.status == 200, resp
    h = resp.json()
    assert h["changed"] is True and h["hold"]["status"] == "APPROVED"
    assert h["hold"]["decided_by"].startswith(a.partner_id + "/key_")
    assert h["hold"]["decision_note"] == "buyer verified by phone"
    resp = ingress.request("POST", path, {"reason": "again"}, auth=admin_a)
    assert resp.status == 200 and resp.json()["changed"] is False
    assert resp.json()["hold"]["decision_note"] == "buyer verified by phone"
    cmds = r.commands(1)
    assert [m["value"]["payment_id"] for m in cmds] == [ids[0]]
    # rejecting the approved one is a conflict; rejecting another fails its payment
    resp = ingress.request("POST", "/v1/admin/holds/%s/reject" % ids[0], {"reason": "no"},
                           auth=admin_a)
    assert resp.status == 409 and resp.code == "hold_decided"
    assert resp.json()["hold"]["status"] == "APPROVED"
    resp = ingress.request("POST", "/v1/admin/holds/%s/reject" % ids[1], {"reason": "fraud ring"},
                           auth=admin_a)
    assert resp.status == 200 and resp.json()["hold"]["status"] == "REJECTED"
    assert status("payments", "payment_id", ids[1]) == "FAILED"
    listed = ingress.request("GET", "/v1/admin/holds?status=all", auth=admin_a).json()["holds"]
    assert [h["status"] for h in listed] == ["APPROVED", "REJECTED", "HELD"]
    assert len({m["headers"]["kasir.message_id"] for m in consume(r.out, idle_ms=2000)}) == 1
    assert d.term() == 0
