"""641: the Midtrans adapter (consumers/executor/adapter_midtrans.c) against the real
kasir-psp-sandbox, through kasir-adaptercall: Core API charges (bank_transfer VA for each
bank, qris, gopay), status, refunds with refund_key, and Iris payouts with
X-Idempotency-Key; the order_id (406 on a second charge) and the keys make one charge, one
refund, one payout each in the sandbox's ledger; lost answers (X-Sandbox-Fault:
timeout_after_charge) are resolved by the status sequence; declines end FAILED with
Kasir's code."""
import pytest

from adapter_util import adaptercall, details, entries, new_id, no_duplicates, wait_for
from sandbox_util import sandbox  # noqa: F401


def charge(sb, method, order, amount=4400000, fault=None, extra=()):
    return adaptercall(sb, "midtrans", "--op", "charge", "--method", method, "--amount-minor",
                       amount, "--order-id", order, "--idem-key", "k-" + order, *extra,
                       fault=fault)[0]


def status(sb, method, order, amount=4400000, op="charge", key="unused"):
    return adaptercall(sb, "midtrans", "--op", op, "--method", method, "--amount-minor", amount,
                       "--order-id", order, "--idem-key", key, "--status-only")[0]["status"]


@pytest.mark.parametrize("bank", ["BCA", "BNI", "BRI", "PERMATA", "CIMB"])
def test_bank_transfer_va(sandbox, bank):
    order = new_id("ord")
    call = charge(sandbox, "VIRTUAL_ACCOUNT", order, extra=details(bank_code=bank))["call"]
    assert call["verdict"] == "PENDING_CUSTOMER", call
    got = sandbox.midtrans("GET", "/v2/%s/status" % order).json()
    assert got["transaction_id"] == call["psp_reference"] and got["gross_amount"] == "44000.00"
    number = got["permata_va_number"] if bank == "PERMATA" else got["va_numbers"][0]["va_number"]
    assert call["next_action"]["va_number"] == number
    assert call["next_action"]["bank_code"] == bank
    assert call["next_action"]["expires_at"].endswith("Z")


def test_charge_once_per_order(sandbox):
    order = new_id("ord")
    first = charge(sandbox, "QRIS", order)["call"]
    assert first["verdict"] == "PENDING_CUSTOMER" and first["next_action"]["qr_string"], first
    # the same order again: 406, then the status of the first charge
    again = charge(sandbox, "QRIS", order)["call"]
    assert [r["http"] for r in again["requests"]] == [406, 200], again
    assert again["verdict"] == "PENDING_CUSTOMER"
    assert again["psp_reference"] == first["psp_reference"]
    assert sandbox.event("midtrans", "paid", order).status == 202
    assert len(wait_for(lambda: entries(sandbox, "midtrans", "charge", order))) == 1
    st = status(sandbox, "QRIS", order)
    assert st["verdict"] == "SUCCEEDED" and st["psp_reference"] == first["psp_reference"], st
    no_duplicates(sandbox)


def test_gopay_and_decline(sandbox):
    order = new_id("ord")
    call = charge(sandbox, "EWALLET", order, extra=details(ewallet_channel="GOPAY"))["call"]
    assert call["verdict"] == "PENDING_CUSTOMER", call
    assert "gopay/partner/app/payment-pin" in call["next_action"]["redirect_url"]
    out = charge(sandbox, "EWALLET", new_id("ord"), extra=details(ewallet_channel="GOPAY"),
                 fault="decline")["call"]
    assert out["verdict"] == "FAILED" and out["failure_code"] == "declined", out
    assert "Deny" in out["failure_message"]
    # other e-wallets are not run by this adapter: never sent
    out = charge(sandbox, "EWALLET", new_id("ord"), extra=details(ewallet_channel="OVO"))
    assert out["build_error"]["field"] == "details.ewallet_channel", out
    # a customer who never pays: expired
    order = new_id("ord")
    charge(sandbox, "QRIS", order)
    assert sandbox.event("midtrans", "expire", order).status == 202
    st = status(sandbox, "QRIS", order)
    assert st["verdict"] == "FAILED" and st["failure_code"] == "expired", st


def test_lost_answer_and_5xx(sandbox):
    order = new_id("ord")
    out = charge(sandbox, "VIRTUAL_ACCOUNT", order, extra=details(bank_code="BNI"),
                 fault="timeout_after_charge")
    assert out["call"]["verdict"] == "UNKNOWN", out
    st = out["status"]
    assert st["verdict"] == "PENDING_CUSTOMER" and st["next_action"]["va_number"], out
    assert st["requests"][0]["url"] == "%s/v2/%s/status" % (sandbox.url, order)
    assert sandbox.event("midtrans", "paid", order).status == 202
    assert len(wait_for(lambda: entries(sandbox, "midtrans", "charge", order))) == 1
    # a 5xx before the API ran: the status says no such order, so a resend is safe
    o2 = new_id("ord")
    out = charge(sandbox, "QRIS", o2, fault="5xx")
    assert out["call"]["verdict"] == "UNKNOWN" and out["status"]["verdict"] == "ABSENT", out
    assert charge(sandbox, "QRIS", o2)["call"]["verdict"] == "PENDING_CUSTOMER"
    # a wrong server key: retry later, never the buyer's failure
    sb2 = type(sandbox)(sandbox.daemon, dict(sandbox.keys, midtrans="SB-Mid-server-wrong"))
    out = charge(sb2, "QRIS", new_id("ord"))["call"]
    assert out["verdict"] == "RETRY" and out["failure_code"] == "psp_auth", out
    no_duplicates(sandbox)


def refund(sb, order, key, amount, fault=None, method="QRIS"):
    return adaptercall(sb, "midtrans", "--op", "refund", "--method", method, "--amount-minor",
                       amount, "--order-id", order, "--refund-id", key, "--idem-key", key,
                       *details(reason="customer asked"), fault=fault)[0]


def test_refunds(sandbox):
    order = new_id("ord")
    assert charge(sandbox, "QRIS", order, amount=5000000)["call"]["verdict"] == "PENDING_CUSTOMER"
    assert sandbox.event("midtrans", "paid", order).status == 202
    wait_for(lambda: entries(sandbox, "midtrans", "charge", order))
    k1 = new_id("rfd")
    r1 = refund(sandbox, order, k1, 1000000)["call"]
    assert r1["verdict"] == "SUCCEEDED" and r1["amount_minor"] == 1000000, r1
    # the same refund_key again: the first refund, not a second one
    again = refund(sandbox, order, k1, 1000000)["call"]
    assert again["verdict"] == "SUCCEEDED" and again["psp_reference"] == r1["psp_reference"]
    # a lost answer: the status cannot name refunds here, so the refund is sent again with
    # its refund_key, which answers the first one
    k2 = new_id("rfd")
    out = refund(sandbox, order, k2, 1500000, fault="timeout_after_charge")
    assert out["call"]["verdict"] == "UNKNOWN", out
    assert out["status"]["verdict"] == "SUCCEEDED", out
    assert [r["method"] for r in out["status"]["requests"]] == ["GET", "POST"]
    refunds = [e for e in sandbox.ledger("midtrans", "refund")["entries"] if e.get("refund_of") == order]
    assert sorted((e["reference"], e["amount"]) for e in refunds) == sorted([(k1, 1000000), (k2, 1500000)])
    # more than is left: refused
    out = refund(sandbox, order, new_id("rfd"), 4000000)["call"]
    assert out["verdict"] == "FAILED", out
    # bank transfers cannot be refunded through Midtrans' API: not supported, never sent
    out = refund(sandbox, order, new_id("rfd"), 100, method="VIRTUAL_ACCOUNT")
    assert out["build_error"]["field"] == "method", out
    no_duplicates(sandbox)


def payout(sb, payout_id, key, amount=10000000, fault=None):
    return adaptercall(sb, "midtrans", "--op", "payout", "--method", "BANK_TRANSFER",
                       "--amount-minor", amount, "--payout-id", payout_id, "--idem-key", key,
                       *details(bank_code="BNI", account_holder="Jon Snow",
                                destination_account="1172993826"),
                       fault=fault, payout_base=sb.url + "/iris")[0]


def payout_status(sb, payout_id, ref):
    return adaptercall(sb, "midtrans", "--op", "payout", "--method", "BANK_TRANSFER",
                       "--amount-minor", 10000000, "--payout-id", payout_id, "--idem-key", "k",
                       "--status-only", "--psp-reference", ref, payout_base=sb.url + "/iris")[0]["status"]


def test_iris_payouts(sandbox):
    pid, key = new_id("po"), new_id("key")
    call = payout(sandbox, pid, key)["call"]
    assert call["verdict"] == "PENDING" and call["psp_reference"], call
    assert call["requests"][0]["url"] == sandbox.url + "/iris/api/v1/payouts"
    again = payout(sandbox, pid, key)["call"]
    assert again["psp_reference"] == call["psp_reference"], again
    assert len(entries(sandbox, "midtrans", "payout", pid)) == 1
    done = wait_for(lambda: payout_status(sandbox, pid, call["psp_reference"])["verdict"] == "SUCCEEDED")
    assert done
    # a lost answer: the create again under the same key answers the first payout
    p2, k2 = new_id("po"), new_id("key")
    out = payout(sandbox, p2, k2, fault="timeout_after_charge")
    assert out["call"]["verdict"] == "UNKNOWN" and out["status"]["verdict"] in ("PENDING", "SUCCEEDED"), out
    paid = entries(sandbox, "midtrans", "payout", p2)
    assert len(paid) == 1 and paid[0]["object_id"] == out["status"]["psp_reference"]
    # declined by the bank: queued, then failed
    p3 = new_id("po")
    ref = payout(sandbox, p3, new_id("key"), fault="decline")["call"]["psp_reference"]
    failed = wait_for(lambda: (lambda s: s if s["verdict"] == "FAILED" else None)(
        payout_status(sandbox, p3, ref)))
    assert failed and failed["failure_code"] == "transfer_error", failed
    assert not entries(sandbox, "midtrans", "payout", p3)
    assert payout_status(sandbox, p3, "nosuchref")["verdict"] == "ABSENT"
    no_duplicates(sandbox)
