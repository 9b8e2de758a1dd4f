"""410: POST /v1/admin/payouts/{id}/retry (scope admin): a FAILED payout whose failure code
is retriable (ledger_payout_retriable: INSUFFICIENT_FUNDS, EXPIRED, psp_unavailable, ...)
gets a new attempt, a new payout <id>_r<n> published on kasir.payouts.requested, which risk
decides and the ledger funds like any payout; the failed one stays FAILED. A final failure
(an invalid account), a payout that did not fail and another partner's payout are refused;
asking twice gives the same attempt; who and why are recorded."""
import base64
import secrets
import time

from conftest import psql, psql_one
from ingress_util import Partner, cli, ingress  # noqa: F401
from risk_util import Risk, consume, fund_wallets, produce, risk_daemons, wait_until  # noqa: F401


def admin_key(partner_id):
    out = cli("key", "add", partner_id, "--scopes", "admin")
    return out["key_id"], "Basic " + base64.b64encode((out["api_key"] + ":").encode()).decode()


def payout_row(partner, pid, status, code, seller="s1", amount=70000):
    psql("INSERT INTO payouts (payout_id, partner_id, seller_id, amount_minor, currency, channel, "
         "bank_code, destination_account, account_holder, status, failure_code) VALUES "
         "('%s', '%s', '%s', %d, 'IDR', 'BANK_ACCOUNT', 'BCA', '1234567890', 'Budi', '%s', %s)"
         % (pid, partner, seller, amount, status, "'%s'" % code if code else "NULL"))


def retry(ingress, pid, auth, reason="bank was down"):
    return ingress.request("POST", "/v1/admin/payouts/%s/retry" % pid, {"reason": reason}, auth=auth)


def test_payout_retry(ingress, risk_daemons):
    a, b = Partner("t410-a-" + secrets.token_hex(3)), Partner("t410-b-" + secrets.token_hex(3))
    (ka, admin_a), (_, admin_b) = admin_key(a.partner_id), admin_key(b.partner_id)
    tag = secrets.token_hex(4)
    unfunded, final, paid = "pyo_t410_%s_1" % tag, "pyo_t410_%s_2" % tag, "pyo_t410_%s_3" % tag
    payout_row(a.partner_id, unfunded, "FAILED", "INSUFFICIENT_FUNDS", seller="rich" + tag)
    payout_row(a.partner_id, final, "FAILED", "invalid_account")
    payout_row(a.partner_id, paid, "PAID_OUT", None)

    g = ingress.request("GET", "/v1/payouts/" + unfunded, auth=a).json()
    assert (g["status"], g["failure_code"]) == ("FAILED", "INSUFFICIENT_FUNDS"), g
    r = retry(ingress, final, admin_a)
    assert r.status == 409 and r.code == "payout_not_retriable" and "invalid_account" in r.json()["detail"], r
    r = retry(ingress, paid, admin_a)
    assert r.status == 409 and r.code == "payout_not_retriable", r
    r = retry(ingress, unfunded, admin_b)
    assert r.status == 404 and r.code == "not_found", r
    assert retry(ingress, unfunded, a).code == "forbidden_scope"
    assert retry(ingress, unfunded, admin_a, reason="").json()["field"] == "reason"
    assert psql_one("SELECT count(*) FROM ledger_payout_retries WHERE retry_of IN ('%s', '%s', '%s')"
                    % (unfunded, final, paid)) == "0"

    since = int(time.time() * 1000) - 1000
    r = retry(ingress, unfunded, admin_a, reason="seller topped up")
    assert r.status == 202, r
    attempt = unfunded + "_r1"
    assert r.json() == {"payout_id": attempt, "retry_of": unfunded,
                        "retried_failure_code": "INSUFFICIENT_FUNDS", "status": "REQUESTED",
                        "trace_id": r.json()["trace_id"]}
    again = retry(ingress, unfunded, admin_a)
    assert again.status in (200, 202) and again.json()["payout_id"] == attempt
    assert psql("SELECT status, failure_code FROM payouts WHERE payout_id = '%s'" % unfunded) == \
        [["FAILED", "INSUFFICIENT_FUNDS"]]
    assert psql("SELECT retry_of, requested_by, reason FROM ledger_payout_retries WHERE payout_id = '%s'"
                % attempt) == [[unfunded, "%s/%s" % (a.partner_id, ka), "seller topped up"]]

    # the attempt's event, as risk reads it
    events = [m for m in consume("kasir.payouts.requested", idle_ms=1000)
              if m["value"]["payout_id"] == attempt]
    assert events, "no PayoutRequested for the attempt"
    ev = events[0]["value"]
    assert (ev["partner_id"], ev["seller_id"], ev["amount_minor"], ev["currency"],
            ev["destination_account"], ev["account_holder"]) == (
        a.partner_id, "rich" + tag, 70000, "IDR", "1234567890", "Budi")
    assert ev["occurred_at"] >= since * 1000

    # risk decides it like any payout: funded now, it is held and its command goes out
    rk = Risk("t410", [])
    rk.partner = a.partner_id
    fund_wallets(a.partner_id, ["rich" + tag], 100000)
    produce([{"topic": rk.payouts, "key": "rich" + tag, "schema": "kasir.payouts.PayoutRequested",
              "value": ev}])
    rk.start(risk_daemons)
    cmds = rk.commands(1)
    assert [c["value"]["payout_id"] for c in cmds] == [attempt]
    assert psql_one("SELECT status FROM payouts WHERE payout_id = '%s'" % attempt) == "REQUESTED"
    assert psql_one("SELECT count(*) FROM ledger_entries WHERE source_key = 'payout_hold:%s'"
                    % attempt) == "1"
    r = ingress.request("GET", "/v1/payouts/" + attempt, auth=a)
    assert r.status == 200 and r.json()["status"] == "REQUESTED", r
    assert ingress.request("GET", "/v1/payouts/" + attempt, auth=b).status == 404

    # the attempt fails at the PSP for a retriable reason: the next attempt is _r2
    psql("UPDATE payouts SET status = 'EXECUTING' WHERE payout_id = '%s'; "
         "UPDATE payouts SET status = 'FAILED', failure_code = 'psp_unavailable' "
         "WHERE payout_id = '%s'" % (attempt, attempt))
    r = retry(ingress, attempt, admin_a)
    assert r.status == 202 and r.json()["payout_id"] == unfunded + "_r2", r
