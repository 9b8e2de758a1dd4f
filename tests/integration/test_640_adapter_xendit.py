"""640: the Xendit adapter (consumers/executor/adapter_xendit.c) against the real
kasir-psp-sandbox, through kasir-adaptercall: fixed virtual accounts, QR codes and
disbursements accepted and read right; one idempotency key sent twice makes one object and
one entry in the sandbox's ledger; an answer lost after the PSP acted (X-Sandbox-Fault:
timeout_after_charge) is resolved by the status sequence without a second charge; a 5xx
before the PSP ran resolves to "absent"; declines and refusals end FAILED with Kasir's
code."""
from adapter_util import adaptercall, details, entries, new_id, no_duplicates, wait_for
from sandbox_util import sandbox  # noqa: F401

VA = ["--op", "charge", "--method", "VIRTUAL_ACCOUNT"]
QR = ["--op", "charge", "--method", "QRIS", "--notify-url", "http://127.0.0.1:9/xendit/qr"]
DISB = ["--op", "payout", "--method", "BANK_TRANSFER"] + details(
    bank_code="BCA", account_holder="Bob Jones", destination_account="1231242311")


def va(sb, order, key, amount=15000000, fault=None, bank="BNI"):
    return adaptercall(sb, "xendit", *VA, "--amount-minor", amount, "--order-id", order,
                       "--idem-key", key, *details(bank_code=bank, customer_name="Rika Sutanto"),
                       fault=fault)[0]


def test_virtual_account(sandbox):
    order, key = new_id("ord"), new_id("key")
    out = va(sandbox, order, key)
    call = out["call"]
    assert call["verdict"] == "PENDING_CUSTOMER", out
    assert call["requests"] == [{"method": "POST", "url": sandbox.url + "/callback_virtual_accounts",
                                 "http": 200}]
    got = sandbox.xendit("GET", "/callback_virtual_accounts/" + call["psp_reference"]).json()
    assert got["external_id"] == order and got["expected_amount"] == 150000
    assert got["is_closed"] is True and got["is_single_use"] is True
    assert call["next_action"]["va_number"] == got["account_number"]
    assert call["next_action"]["bank_code"] == "BNI" and call["next_action"]["expires_at"]
    assert call["amount_minor"] == 15000000

    # the same key again: the same account (Xendit answers the first request again)
    again = va(sandbox, order, key)["call"]
    assert again["verdict"] == "PENDING_CUSTOMER"
    assert again["psp_reference"] == call["psp_reference"]
    assert again["next_action"]["va_number"] == call["next_action"]["va_number"]
    # the buyer pays it once: one charge
    assert sandbox.event("xendit", "va_paid", order).status == 202
    assert len(wait_for(lambda: entries(sandbox, "xendit", "charge", order))) == 1
    # paid and single use: the status says "pending" (the VA callback tells the payment)
    st = adaptercall(sandbox, "xendit", *VA, "--amount-minor", 15000000, "--order-id", order,
                     "--idem-key", key, *details(bank_code="BNI"), "--status-only",
                     "--psp-reference", call["psp_reference"])[0]["status"]
    assert st["verdict"] == "PENDING", st
    no_duplicates(sandbox)


def test_virtual_account_lost_answer(sandbox):
    # the VA is created, the answer never comes: the status sequence (the same key and body
    # again, since a VA is found only by its id) finds the one account
    order, key = new_id("ord"), new_id("key")
    out = va(sandbox, order, key, fault="timeout_after_charge")
    assert out["call"]["verdict"] == "UNKNOWN" and out["call"]["requests"][0]["http"] == 0, out
    st = out["status"]
    assert st["verdict"] == "PENDING_CUSTOMER", out
    first = sandbox.xendit("GET", "/callback_virtual_accounts/" + st["psp_reference"]).json()
    assert first["external_id"] == order and first["account_number"] == st["next_action"]["va_number"]
    # had a second VA been made, paying by external_id would pay the later one, not this
    assert sandbox.event("xendit", "va_paid", order).status == 202
    paid = wait_for(lambda: entries(sandbox, "xendit", "charge", order))
    assert len(paid) == 1 and paid[0]["object_id"] == st["psp_reference"]
    # a known id: the status is a GET
    st2 = adaptercall(sandbox, "xendit", *VA, "--amount-minor", 15000000, "--order-id", order,
                      "--idem-key", key, *details(bank_code="BNI"), "--status-only",
                      "--psp-reference", st["psp_reference"])[0]["status"]
    assert st2["requests"][0]["method"] == "GET" and st2["verdict"] == "PENDING"
    no_duplicates(sandbox)


def test_virtual_account_refusals(sandbox):
    out = va(sandbox, new_id("ord"), new_id("key"), bank="NOPE")["call"]
    assert out["verdict"] == "FAILED" and out["failure_code"] == "bank_not_supported", out
    assert out["failure_message"].startswith("BANK_NOT_SUPPORTED_ERROR")
    # not whole rupiah: never sent
    order = new_id("ord")
    out = va(sandbox, order, new_id("key"), amount=15000050)
    assert out["build_error"]["field"] == "amount_minor" and "call" not in out, out
    # a wrong key: the PSP did not act, retry later (never the buyer's failure)
    wrong = dict(sandbox.keys, xendit="xnd_development_wrong")
    sb2 = type(sandbox)(sandbox.daemon, wrong)
    out = va(sb2, new_id("ord"), new_id("key"))["call"]
    assert out["verdict"] == "RETRY" and out["failure_code"] == "psp_auth", out
    # a 5xx before the API ran: unknown, and the status (a resend under the same key) makes
    # the one account
    order, key = new_id("ord"), new_id("key")
    out = va(sandbox, order, key, fault="5xx")
    assert out["call"]["verdict"] == "UNKNOWN" and out["call"]["requests"][0]["http"] == 500
    assert out["status"]["verdict"] == "PENDING_CUSTOMER"


def qr(sb, order, key, amount=2500000, fault=None):
    return adaptercall(sb, "xendit", *QR, "--amount-minor", amount, "--order-id", order,
                       "--idem-key", key, fault=fault)[0]


def test_qr_code(sandbox):
    order, key = new_id("ord"), new_id("key")
    call = qr(sandbox, order, key)["call"]
    assert call["verdict"] == "PENDING_CUSTOMER", call
    got = sandbox.xendit("GET", "/qr_codes/" + order).json()
    assert got["id"] == call["psp_reference"] and got["type"] == "DYNAMIC"
    assert got["amount"] == 25000 and got["callback_url"] == "http://127.0.0.1:9/xendit/qr"
    assert call["next_action"]["qr_string"] == got["qr_string"]
    # the same key again: the first code
    again = qr(sandbox, order, key)["call"]
    assert again["psp_reference"] == call["psp_reference"], again
    # another key for the same order: 409 DUPLICATE_ERROR, found by external_id
    dup = qr(sandbox, order, new_id("key"))["call"]
    assert [r["http"] for r in dup["requests"]] == [409, 200], dup
    assert dup["verdict"] == "PENDING_CUSTOMER" and dup["psp_reference"] == call["psp_reference"]
    # a code of another amount under this order is not reported as ours
    other = qr(sandbox, order, new_id("key"), amount=3000000)["call"]
    assert other["verdict"] == "UNKNOWN" and other["failure_code"] == "reference_conflict", other
    assert sandbox.event("xendit", "qr_paid", order).status == 202
    assert len(wait_for(lambda: entries(sandbox, "xendit", "charge", order))) == 1
    # paid: the dynamic code is inactive, the status waits for the callback's word
    st = adaptercall(sandbox, "xendit", *QR, "--amount-minor", 2500000, "--order-id", order,
                     "--idem-key", key, "--status-only")[0]["status"]
    assert st["verdict"] == "PENDING", st
    # below Xendit's minimum of 1,500
    low = qr(sandbox, new_id("ord"), new_id("key"), amount=100000)["call"]
    assert low["verdict"] == "FAILED" and low["failure_code"] == "invalid_request", low


def test_qr_code_lost_answer_and_5xx(sandbox):
    order, key = new_id("ord"), new_id("key")
    out = qr(sandbox, order, key, fault="timeout_after_charge")
    assert out["call"]["verdict"] == "UNKNOWN", out
    st = out["status"]
    assert st["verdict"] == "PENDING_CUSTOMER" and st["requests"][0]["method"] == "GET", out
    assert st["psp_reference"] == sandbox.xendit("GET", "/qr_codes/" + order).json()["id"]
    # 5xx before the API ran: the status finds nothing, so a resend is safe
    order2 = new_id("ord")
    out = qr(sandbox, order2, new_id("key"), fault="5xx")
    assert out["call"]["verdict"] == "UNKNOWN" and out["status"]["verdict"] == "ABSENT", out
    assert sandbox.xendit("GET", "/qr_codes/" + order2).status == 404


def disb(sb, payout, key, amount=1700000, fault=None, extra=()):
    return adaptercall(sb, "xendit", *DISB, "--amount-minor", amount, "--payout-id", payout,
                       "--idem-key", key, *extra, fault=fault)[0]


def payout_status(sb, payout, amount=1700000):
    return adaptercall(sb, "xendit", *DISB, "--amount-minor", amount, "--payout-id", payout,
                       "--idem-key", "unused", "--status-only")[0]["status"]


def test_disbursement(sandbox):
    payout, key = new_id("po"), new_id("key")
    call = disb(sandbox, payout, key)["call"]
    # the result comes by callback: accepted is pending
    assert call["verdict"] == "PENDING" and call["amount_minor"] == 1700000, call
    got = sandbox.xendit("GET", "/disbursements/" + call["psp_reference"]).json()
    assert got["external_id"] == payout and got["amount"] == 17000
    assert got["disbursement_description"] == "Payout " + payout
    # the same key again: 409 DUPLICATE_TRANSACTION_ERROR is "already done", found by
    # external_id, never a failure and never a second transfer
    again = disb(sandbox, payout, key)["call"]
    assert [r["http"] for r in again["requests"]] == [409, 200], again
    assert again["verdict"] in ("PENDING", "SUCCEEDED")
    assert again["psp_reference"] == call["psp_reference"]
    assert len(entries(sandbox, "xendit", "payout", payout)) == 1
    # completed after payout.delay, as the status shows
    done = wait_for(lambda: payout_status(sandbox, payout)["verdict"] == "SUCCEEDED")
    assert done
    no_duplicates(sandbox)


def test_disbursement_lost_answer(sandbox):
    payout, key = new_id("po"), new_id("key")
    out = disb(sandbox, payout, key, fault="timeout_after_charge")
    assert out["call"]["verdict"] == "UNKNOWN", out
    st = out["status"]
    assert st["verdict"] in ("PENDING", "SUCCEEDED") and st["requests"] == [
        {"method": "GET", "url": sandbox.url + "/disbursements?external_id=" + payout, "http": 200}]
    paid = entries(sandbox, "xendit", "payout", payout)
    assert len(paid) == 1 and paid[0]["object_id"] == st["psp_reference"]
    # a resend after the resolution (as a retry would) changes nothing
    again = disb(sandbox, payout, key)["call"]
    assert again["psp_reference"] == st["psp_reference"]
    assert len(entries(sandbox, "xendit", "payout", payout)) == 1
    # a 5xx before the API ran: absent, and the resend under the same key pays once
    p2, k2 = new_id("po"), new_id("key")
    out = disb(sandbox, p2, k2, fault="5xx")
    assert out["status"]["verdict"] == "ABSENT", out
    assert disb(sandbox, p2, k2)["call"]["verdict"] == "PENDING"
    assert len(entries(sandbox, "xendit", "payout", p2)) == 1
    no_duplicates(sandbox)


def test_disbursement_declines(sandbox):
    # the bank refuses the transfer: accepted, then FAILED with Xendit's failure_code
    payout = new_id("po")
    call = disb(sandbox, payout, new_id("key"), fault="decline")["call"]
    assert call["verdict"] == "PENDING", call
    failed = wait_for(lambda: (lambda s: s if s["verdict"] == "FAILED" else None)(
        payout_status(sandbox, payout)))
    assert failed and failed["failure_code"] == "invalid_destination", failed
    assert failed["failure_message"].startswith("INVALID_DESTINATION")
    assert not entries(sandbox, "xendit", "payout", payout)
    # refused at once: below the minimum transfer
    low = disb(sandbox, new_id("po"), new_id("key"), amount=500000)["call"]
    assert low["verdict"] == "FAILED" and low["failure_code"] == "amount_out_of_range", low
    # a payout without an account holder is never sent
    out = adaptercall(sandbox, "xendit", "--op", "payout", "--method", "BANK_TRANSFER",
                      "--amount-minor", 1700000, "--payout-id", new_id("po"), "--idem-key", "k",
                      *details(bank_code="BCA", destination_account="1"))[0]
    assert out["build_error"]["field"] == "details.account_holder", out
