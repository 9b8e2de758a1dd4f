"""409: manual adjustments under the two-person rule (POST /v1/admin/adjustments, then
/approve or /reject): requested by one API key of the partner, posted only when a
different key of the same partner approves it. The requesting key cannot approve its own
request (403, nothing posted), another partner's admin cannot see or approve it (404); a
rejected or expired request posts nothing; a debit the wallet cannot cover is refused; the
approved entry is balanced, on the hash chain, and moves the seller's balance; who and why
are recorded. The database refuses a same-key approval whoever writes it.
Kasir's global accounts (fee_revenue/<CUR>, psp_clearing/<psp>/<CUR>) are Kasir's money, not
the partner's: an adjustment against them is asked for and approved only by keys holding the
operator scope ledger:global (403 forbidden_scope naming counter_account, nothing recorded or
posted); the SQL function refuses the approval without it, its six-argument form too.
Two approvals of one seller at once queue on the adjustments' chain instead of deadlocking."""
import base64
import json
import secrets
import subprocess

import pytest

from conftest import PG_DSN, psql, psql_one
from ingress_util import Partner, cli, ingress  # noqa: F401
from ledger_util import verify
from risk_util import fund_suspense, fund_wallets
from runtime_util import wait_until


def admin_key(partner_id, scopes="admin"):
    out = cli("key", "add", partner_id, "--scopes", scopes)
    return out["key_id"], "Basic " + base64.b64encode((out["api_key"] + ":").encode()).decode()


def wallet(partner, seller):
    return int(psql_one("SELECT coalesce(sum(balance_minor), 0) FROM ledger_account_balances "
                        "WHERE account = 'seller_wallet/%s/%s/IDR'" % (partner, seller)))


def posted(adj_id):
    return psql("SELECT e.kind, p.account, p.amount_minor FROM ledger_entries e "
                "JOIN ledger_postings p ON p.entry_id = e.entry_id "
                "WHERE e.source_key = 'adjustment:%s' ORDER BY p.line" % adj_id)


def test_two_person_rule(ingress):
    a, b = Partner("t409-a-" + secrets.token_hex(3)), Partner("t409-b-" + secrets.token_hex(3))
    (k1, admin1), (k2, admin2) = admin_key(a.partner_id), admin_key(a.partner_id)
    _, admin_b = admin_key(b.partner_id)
    fund_wallets(a.partner_id, ["s1"], 10000)
    fund_suspense(a.partner_id, 10000 + 25000)  # fund_wallets took 10,000 from suspense
    base = {"seller_id": "s1", "currency": "IDR", "counter_account": "suspense"}

    def ask(direction, amount, auth=admin1, **extra):
        body = dict(base, direction=direction, amount=amount, reason="ticket " + secrets.token_hex(2),
                    **extra)
        r = ingress.request("POST", "/v1/admin/adjustments", body, auth=auth)
        assert r.status == 201, r
        adj = r.json()["adjustment"]
        assert adj["status"] == "REQUESTED" and adj["requested_by"] == "%s/%s" % (a.partner_id, k1)
        return adj["adjustment_id"]

    def decide(adj, verb, auth, reason="checked"):
        return ingress.request("POST", "/v1/admin/adjustments/%s/%s" % (adj, verb),
                               {"reason": reason}, auth=auth)

    credit = ask("credit", "250.00")
    assert posted(credit) == [] and wallet(a.partner_id, "s1") == 10000
    # the key that asked cannot approve: 403, nothing posted, still REQUESTED
    r = decide(credit, "approve", admin1)
    assert r.status == 403 and r.code == "approver_is_requester", r
    assert r.json()["adjustment"]["status"] == "REQUESTED" and posted(credit) == []
    # another partner's admin: the adjustment does not exist for it
    r = decide(credit, "approve", admin_b)
    assert r.status == 404 and r.code == "not_found", r
    assert ingress.request("GET", "/v1/admin/adjustments", auth=admin_b).json()["adjustments"] == []
    assert posted(credit) == []
    # a partner key without the admin scope: 403 on the scope
    assert decide(credit, "approve", a).code == "forbidden_scope"
    # another key of the partner approves: posted now, balanced, recorded
    r = decide(credit, "approve", admin2, reason="matches the PSP report")
    assert r.status == 200 and r.json()["changed"] is True, r
    adj = r.json()["adjustment"]
    assert (adj["status"], adj["decided_by"], adj["decision_note"]) == (
        "APPROVED", "%s/%s" % (a.partner_id, k2), "matches the PSP report")
    assert adj["amount"] == "250.00" and adj["direction"] == "credit" and adj["entry_id"]
    lines = posted(credit)
    assert lines == [["adjustment", "suspense/%s/IDR" % a.partner_id, "25000"],
                     ["adjustment", "seller_wallet/%s/s1/IDR" % a.partner_id, "-25000"]], lines
    assert wallet(a.partner_id, "s1") == 35000
    # suspense is the partner's: a credit from it needs its balance, now 0 (session 20's
    # review: before, two admin keys of any partner could credit a seller without limit,
    # and the payout was paid from Kasir's float)
    over = ask("credit", "0.01")
    r = decide(over, "approve", admin2)
    assert r.status == 409 and r.code == "insufficient_funds" and r.json()["field"] == "amount", r
    assert "suspense account holds 0 minor units" in r.json()["detail"], r
    assert r.json()["adjustment"]["status"] == "REQUESTED" and posted(over) == []
    fund_suspense(a.partner_id, 1)
    assert decide(over, "approve", admin2).status == 200 and wallet(a.partner_id, "s1") == 35001
    # approving again changes nothing; rejecting it now is a conflict
    r = decide(credit, "approve", admin2)
    assert r.status == 200 and r.json()["changed"] is False
    assert decide(credit, "reject", admin2).code == "adjustment_decided"
    assert len(posted(credit)) == 2

    # rejected: nothing posted, ever
    rej = ask("credit", "10.00")
    r = decide(rej, "reject", admin2, reason="duplicate")
    assert r.status == 200 and r.json()["adjustment"]["status"] == "REJECTED"
    assert decide(rej, "approve", admin2).code == "adjustment_decided"
    assert posted(rej) == []
    # expired (24 h; moved back here): nothing posted, shown EXPIRED
    exp = ask("credit", "10.00")
    psql("UPDATE ledger_adjustments SET requested_at = now() - interval '25 hours', "
         "expires_at = now() - interval '1 hour' WHERE adjustment_id = '%s'" % exp)
    r = decide(exp, "approve", admin2)
    assert r.status == 409 and r.code == "adjustment_expired", r
    assert posted(exp) == []
    listed = ingress.request("GET", "/v1/admin/adjustments?status=EXPIRED", auth=admin1).json()
    assert [x["adjustment_id"] for x in listed["adjustments"]] == [exp]

    # a debit the wallet cannot cover: refused at approval, still REQUESTED; covered: posted
    debit = ask("debit", "400.00")  # the wallet holds 350.01
    r = decide(debit, "approve", admin2)
    assert r.status == 409 and r.code == "insufficient_funds", r
    assert posted(debit) == []
    fund_wallets(a.partner_id, ["s1"], 4999)
    assert decide(debit, "approve", admin2).status == 200
    assert wallet(a.partner_id, "s1") == 35001 + 4999 - 40000

    # a PSP counter account needs its PSP (the body is checked before the scope); an
    # idempotent request
    r = ingress.request("POST", "/v1/admin/adjustments",
                        dict(base, direction="credit", amount="1.00", counter_account="psp_clearing",
                             reason="x"), auth=admin1)
    assert r.status == 400 and r.code == "field_required" and r.json()["field"] == "psp", r
    body = dict(base, direction="credit", amount="5.00", reason="late capture",
                idempotency_key="idem-" + secrets.token_hex(4))
    first = ingress.request("POST", "/v1/admin/adjustments", body, auth=admin1)
    again = ingress.request("POST", "/v1/admin/adjustments", body, auth=admin1)
    assert first.status == 201 and again.status == 200
    assert first.json()["adjustment"]["adjustment_id"] == again.json()["adjustment"]["adjustment_id"]
    other = ingress.request("POST", "/v1/admin/adjustments", dict(body, amount="6.00"), auth=admin1)
    assert other.status == 422 and other.code == "idempotency_key_reused"
    for bad, field in (({"direction": "sideways"}, "direction"), ({"amount": "-5.00"}, "amount"),
                       ({"currency": "XXX"}, "currency"), ({"seller_id": "a b"}, "seller_id"),
                       ({"reason": ""}, "reason"), ({"extra": 1}, "extra")):
        r = ingress.request("POST", "/v1/admin/adjustments",
                            {**base, "direction": "credit", "amount": "1.00", "reason": "x", **bad},
                            auth=admin1)
        assert r.status == 400 and r.json()["field"] == field, (bad, r)

    # the database keeps the rule whatever writes: an approval by the requesting key fails
    with pytest.raises(subprocess.CalledProcessError) as e:
        subprocess.run(["psql", PG_DSN, "-v", "ON_ERROR_STOP=1", "-qtAX", "-c",
                        "UPDATE ledger_adjustments SET status = 'REJECTED', decided_by = 'x', "
                        "decided_key = requested_key WHERE adjustment_id = '%s'; "
                        "UPDATE ledger_adjustments SET status = 'APPROVED', entry_id = 1 "
                        "WHERE adjustment_id = '%s'" % (rej, rej)],
                       check=True, capture_output=True, text=True)
    assert "ledger_adjustments_check" in e.value.stderr, e.value.stderr
    rc, text = verify()
    assert rc == 0, text



def adjustments(partner_id):
    return psql("SELECT counter, status, entry_id FROM ledger_adjustments WHERE partner_id = '%s' "
                "ORDER BY requested_at" % partner_id)


GLOBAL = ({"counter_account": "fee_revenue"}, {"counter_account": "psp_clearing", "psp": "sandbox"})


def test_global_accounts_refused_to_plain_admins(ingress):
    p = Partner("t409-g-" + secrets.token_hex(3))
    (_, admin1), (_, admin2) = admin_key(p.partner_id), admin_key(p.partner_id)
    fund_wallets(p.partner_id, ["s1"], 10000)
    for counter in GLOBAL:
        for direction in ("credit", "debit"):
            for idem in ({}, {"idempotency_key": "idem-" + secrets.token_hex(4)}):
                body = dict(counter, seller_id="s1", currency="IDR", direction=direction,
                            amount="5.00", reason="paid from Kasir's money", **idem)
                r = ingress.request("POST", "/v1/admin/adjustments", body, auth=admin1)
                assert r.status == 403 and r.code == "forbidden_scope", (body, r)
                assert r.json()["field"] == "scope", r
                assert "ledger:global" in r.json()["detail"], r
    assert adjustments(p.partner_id) == []
    # the partner's own suspense account: asked and approved by plain admins, within its
    # balance
    fund_suspense(p.partner_id, 10000 + 500)
    r = ingress.request("POST", "/v1/admin/adjustments",
                        {"seller_id": "s1", "currency": "IDR", "direction": "credit", "amount": "5.00",
                         "counter_account": "suspense", "reason": "late capture"}, auth=admin1)
    assert r.status == 201, r
    adj = r.json()["adjustment"]["adjustment_id"]
    r = ingress.request("POST", "/v1/admin/adjustments/%s/approve" % adj, {"reason": "ok"}, auth=admin2)
    assert r.status == 200 and r.json()["adjustment"]["status"] == "APPROVED", r
    assert posted(adj) == [["adjustment", "suspense/%s/IDR" % p.partner_id, "500"],
                           ["adjustment", "seller_wallet/%s/s1/IDR" % p.partner_id, "-500"]]


def test_global_approval_needs_the_scope(ingress):
    p = Partner("t409-o-" + secrets.token_hex(3))
    _, plain = admin_key(p.partner_id)
    (_, global1), (_, global2) = (admin_key(p.partner_id, "admin,ledger:global"),
                                  admin_key(p.partner_id, "admin ledger:global"))
    fund_wallets(p.partner_id, ["s1"], 10000)

    def ask(counter, direction="credit", auth=global1):
        body = dict(counter, seller_id="s1", currency="IDR", direction=direction, amount="3.00",
                    reason="PSP fee refunded by Kasir")
        r = ingress.request("POST", "/v1/admin/adjustments", body, auth=auth)
        assert r.status == 201, r
        return r.json()["adjustment"]["adjustment_id"]

    def decide(adj, verb, auth):
        return ingress.request("POST", "/v1/admin/adjustments/%s/%s" % (adj, verb),
                               {"reason": "checked"}, auth=auth)

    for counter in GLOBAL:
        adj = ask(counter)
        r = decide(adj, "approve", plain)
        assert r.status == 403 and r.code == "forbidden_scope", r
        assert r.json()["field"] == "scope" and "ledger:global" in r.json()["detail"], r
        assert r.json()["adjustment"]["status"] == "REQUESTED" and posted(adj) == []
        # the other ledger:global key approves: posted as before
        r = decide(adj, "approve", global2)
        assert r.status == 200 and r.json()["adjustment"]["status"] == "APPROVED", r
        account = ("fee_revenue/IDR" if counter["counter_account"] == "fee_revenue"
                   else "psp_clearing/sandbox/IDR")
        assert posted(adj) == [["adjustment", account, "300"],
                               ["adjustment", "seller_wallet/%s/s1/IDR" % p.partner_id, "-300"]]
        # rejecting needs ledger:global too (a partner's admin has no veto over Kasir's
        # correction), but for the requesting key withdrawing its own request
        rej = ask(counter, "debit")
        r = decide(rej, "reject", plain)
        assert r.status == 403 and r.code == "forbidden_scope", r
        assert r.json()["adjustment"]["status"] == "REQUESTED", r
        r = decide(rej, "reject", global1)
        assert r.status == 200 and r.json()["adjustment"]["status"] == "REJECTED", r
        assert posted(rej) == []
    # the same key twice is still one person, whatever its scopes
    adj = ask(GLOBAL[0])
    assert decide(adj, "approve", global1).code == "approver_is_requester"
    # a Bearer token of a third ledger:global key, asked for scope admin only, has only admin
    out = cli("key", "add", p.partner_id, "--scopes", "admin,ledger:global")
    narrow = Partner.__new__(Partner)
    narrow.api_key, narrow.key_id, narrow.partner_id = out["api_key"], out["key_id"], p.partner_id
    tok = ingress.request("POST", "/v1/auth/token", narrow.sign_token_request(scope="admin"))
    assert tok.status == 200, tok
    r = decide(adj, "approve", "Bearer " + tok.json()["access_token"])
    assert r.status == 403 and r.code == "forbidden_scope" and r.json()["field"] == "scope", r
    assert posted(adj) == []
    tok = ingress.request("POST", "/v1/auth/token", narrow.sign_token_request(scope="admin ledger:global"))
    assert tok.status == 200, tok
    r = decide(adj, "approve", "Bearer " + tok.json()["access_token"])
    assert r.status == 200 and r.json()["adjustment"]["status"] == "APPROVED", r
    rc, text = verify()
    assert rc == 0, text


def test_sql_approval_of_a_global_adjustment_needs_the_flag(ingress):
    """The function checks what the ingress does, so another client (an ingress not yet
    upgraded, psql) cannot go around it: deciding a global adjustment needs p_global; its
    approval also needs the requesting key to hold ledger:global now (a request an older
    ingress accepted from a plain admin key is only rejected: two operators, never one
    operator and a partner's admin); the six-argument form raises 42501 instead of an
    outcome an older ingress would answer as "unchanged" (200)."""
    p = Partner("t409-sql-" + secrets.token_hex(3))
    partner = p.partner_id
    kg, g = admin_key(partner, "admin,ledger:global")
    kp, _ = admin_key(partner)
    kb, _ = admin_key(partner, "admin,ledger:global")
    fund_wallets(partner, ["s1"], 10000)
    fund_suspense(partner, 10000 + 1400)

    def request(counter, psp="NULL", key=kg):
        out = json.loads(psql_one(
            "SELECT ledger_adjustment_request('%s', '%s', '%s/%s', NULL, 's1', 'IDR', 700, "
            "'%s', %s, 'test')" % (partner, key, partner, key, counter, psp)))
        return out["adjustment"]["adjustment_id"]

    def decide(adj, *flag, approve="true"):
        return json.loads(psql_one(
            "SELECT ledger_adjustment_decide('%s', '%s', %s, '%s', '%s/%s', 'ok'%s)"
            % (partner, adj, approve, kb, partner, kb, "".join(", " + f for f in flag))))

    def six(adj):
        return subprocess.run(
            ["psql", PG_DSN, "-v", "ON_ERROR_STOP=1", "-qtAX", "-c",
             "SELECT ledger_adjustment_decide('%s', '%s', true, '%s', '%s/%s', 'ok')"
             % (partner, adj, kb, partner, kb)], capture_output=True, text=True, timeout=30)

    for counter, psp in (("fee_revenue", "NULL"), ("psp_clearing", "'sandbox'")):
        adj = request(counter, psp)
        for flag in (("false",), ("NULL",)):
            out = decide(adj, *flag)
            assert out["outcome"] == "global_scope", (flag, out)
            assert out["adjustment"]["status"] == "REQUESTED" and posted(adj) == []
        out = decide(adj, "false", approve="false")  # another key's reject needs it too
        assert out["outcome"] == "global_scope", out
        got = six(adj)
        assert got.returncode != 0, got
        assert "global_scope" in got.stderr, got.stderr
        assert decide(adj, "NULL")["adjustment"]["status"] == "REQUESTED" and posted(adj) == []
        out = decide(adj, "true")
        assert out["outcome"] == "decided" and out["adjustment"]["status"] == "APPROVED", out
        # asked by a plain admin key (as an ingress before ledger:global let it): only a reject
        plain = request(counter, psp, key=kp)
        out = decide(plain, "true")
        assert out["outcome"] == "global_scope_requester", out
        assert posted(plain) == []
        r = ingress.request("POST", "/v1/admin/adjustments/%s/approve" % plain,
                            {"reason": "ok"}, auth=g)
        assert r.status == 403 and r.code == "forbidden_scope", r
        assert "only be rejected" in r.json()["detail"], r
        assert decide(plain, "true", approve="false")["outcome"] == "decided"
        assert posted(plain) == []
    # suspense: the flag does not matter, the balance does (700 each, 1,400 funded)
    for flag in ((), ("false",)):
        adj = request("suspense")
        out = decide(adj, *flag) if flag else json.loads(six(adj).stdout)
        assert out["outcome"] == "decided", out
    adj = request("suspense")
    assert decide(adj, "true")["outcome"] == "insufficient_suspense"
    got = six(adj)  # the outcome an older ingress knows (409), not an error (a 503 there)
    assert got.returncode == 0 and json.loads(got.stdout)["outcome"] == "insufficient_funds", got
    assert posted(adj) == []
    # two forms, neither with a DEFAULT (a defaulted seventh argument made calls ambiguous
    # after a rollback re-created the six-argument function)
    forms = psql("SELECT pronargs, pronargdefaults, l.lanname FROM pg_proc p "
                 "JOIN pg_language l ON l.oid = p.prolang "
                 "WHERE proname = 'ledger_adjustment_decide' ORDER BY pronargs")
    assert forms == [["6", "0", "plpgsql"], ["7", "0", "plpgsql"]], forms


def test_concurrent_approvals_wait_for_the_chain_not_for_each_other(ingress):
    """Two approvals of one seller at once, one crediting the seller from suspense (it locks
    suspense's balance stripes) and one debiting the seller (it locks the wallet's): each
    takes the chain row 'sql:adjustments' before any stripe, so they queue on it one after
    the other. Before, each locked the account its money leaves first and the chain in
    ledger_post: the first to get the chain then waited for the other's wallet stripe while
    the other waited for the chain, and PostgreSQL ended one as a deadlock (40P01). The
    interleaving is forced: a third session holds the chain row until both wait."""
    p = Partner("t409-dl-" + secrets.token_hex(3))
    partner = p.partner_id
    k1, _ = admin_key(partner)
    k2, _ = admin_key(partner)
    fund_wallets(partner, ["s1"], 10000)
    fund_suspense(partner, 10000 + 5000)

    def request(amount):
        out = json.loads(psql_one(
            "SELECT ledger_adjustment_request('%s', '%s', '%s/%s', NULL, 's1', 'IDR', %d, "
            "'suspense', NULL, 'test')" % (partner, k1, partner, k1, amount)))
        return out["adjustment"]["adjustment_id"]

    def decide_sql(adj):
        return ("SELECT ledger_adjustment_decide('%s', '%s', true, '%s', '%s/%s', 'ok', false)"
                % (partner, adj, k2, partner, k2))

    # a first approval, so that both accounts have a stripe on the adjustments' chain (the
    # one each approval's entry moves, and the other one holds)
    first = request(100)
    assert json.loads(psql_one(decide_sql(first)))["outcome"] == "decided"
    credit, debit = request(700), request(-300)

    def waiting(adj):
        return psql_one("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND query LIKE '%%ledger_adjustment_decide(%%%s%%'" % adj) == "1"

    holder = subprocess.Popen(["psql", PG_DSN, "-v", "ON_ERROR_STOP=1", "-qtAX"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    runs = []
    try:
        # (a lock held by someone else ends the test instead of hanging it)
        holder.stdin.write("SET lock_timeout = '20s';\nBEGIN;\n"
                           "SELECT 1 FROM ledger_chains WHERE chain = 'sql:adjustments' "
                           "FOR UPDATE;\n\\echo held\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "1"
        assert holder.stdout.readline().strip() == "held"
        for adj in (credit, debit):
            runs.append(subprocess.Popen(["psql", PG_DSN, "-v", "ON_ERROR_STOP=1", "-qtAX",
                                          "-c", decide_sql(adj)],
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         text=True))
            proc = runs[-1]
            wait_until(lambda: (proc.poll() is None or pytest.fail(str(proc.communicate())))
                       and waiting(adj), timeout=20, step=0.05,
                       what="the approval of %s waiting for the chain" % adj)
        holder.stdin.write("COMMIT;\n")
        holder.stdin.close()
        assert holder.wait(timeout=30) == 0, holder.stderr.read()
        for run in runs:
            out, err = run.communicate(timeout=60)
            assert run.returncode == 0, err  # before: ERROR: deadlock detected (one of them)
            assert json.loads(out)["outcome"] == "decided", out
    finally:
        for proc in [holder] + runs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert wallet(partner, "s1") == 10000 + 100 + 700 - 300
    for adj in (credit, debit):
        assert len(posted(adj)) == 2, posted(adj)
    rc, text = verify()
    assert rc == 0, text
