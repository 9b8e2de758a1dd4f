"""408: GET /v1/balances/{seller_id}: the seller's wallet per currency as the ledger holds
it (available, held for payouts), readable by its own partner only: another partner asking
for the same seller id gets the same 404 as for a seller that does not exist (nothing
tells them apart); a key without payouts:read gets 403."""
import json
import secrets

from conftest import psql, psql_one
from ingress_util import Partner, cli, ingress  # noqa: F401
from risk_util import fund_wallets


def payout_row(partner, pid, seller, amount, cur="IDR"):
    psql("INSERT INTO payouts (payout_id, partner_id, seller_id, amount_minor, currency, "
         "channel, bank_code, destination_account, status) VALUES ('%s', '%s', '%s', %d, '%s', "
         "'BANK_ACCOUNT', 'BCA', '1234567890', 'REQUESTED')" % (pid, partner, seller, amount, cur))


def test_balance_isolated_per_partner(ingress):
    a = Partner("t408-a-" + secrets.token_hex(3))
    b = Partner("t408-b-" + secrets.token_hex(3))
    fund_wallets(a.partner_id, ["s1"], 1500000)            # 15,000.00 IDR
    fund_wallets(a.partner_id, ["s1"], 250, currency="USD")  # 2.50 USD
    fund_wallets(b.partner_id, ["s1"], 7)                  # b's own seller s1: another wallet
    pid = "pyo_t408_" + secrets.token_hex(4)
    payout_row(a.partner_id, pid, "s1", 400000)
    assert psql_one("SELECT result FROM ledger_payout_holds(ARRAY['%s'])" % pid) == "held"

    r = ingress.request("GET", "/v1/balances/s1", auth=a)
    assert r.status == 200, r
    assert r.json() == {"seller_id": "s1", "balances": [
        {"currency": "IDR", "available": {"amount": "11000.00", "currency": "IDR"},
         "held_for_payouts": {"amount": "4000.00", "currency": "IDR"}},
        {"currency": "USD", "available": {"amount": "2.50", "currency": "USD"},
         "held_for_payouts": {"amount": "0.00", "currency": "USD"}}]}
    # the same id at partner b is b's seller, with b's money only
    r = ingress.request("GET", "/v1/balances/s1", auth=b)
    assert r.status == 200 and r.json()["balances"][0]["available"]["amount"] == "0.07", r

    # a seller of a only, asked by b: the 404 of a seller that does not exist
    fund_wallets(a.partner_id, ["only-a"], 100)
    assert ingress.request("GET", "/v1/balances/only-a", auth=a).status == 200
    theirs = ingress.request("GET", "/v1/balances/only-a", auth=b)
    nobody = ingress.request("GET", "/v1/balances/nobody-" + secrets.token_hex(3), auth=b)
    assert theirs.status == nobody.status == 404
    strip = lambda r: {k: v for k, v in r.json().items() if k != "trace_id"}  # noqa: E731
    assert strip(theirs) == strip(nobody) and theirs.code == "not_found"
    assert ingress.request("GET", "/v1/balances/bad%20id", auth=a).status == 404
    # scope and authentication
    key = cli("key", "add", a.partner_id, "--scopes", "payments:write")["api_key"]
    import base64
    r = ingress.request("GET", "/v1/balances/s1",
                        auth="Basic " + base64.b64encode((key + ":").encode()).decode())
    assert r.status == 403 and r.code == "forbidden_scope"
    assert ingress.request("GET", "/v1/balances/s1").status == 401
