"""332: settlement files for a day from what the sandbox accepted, in each PSP's layout,
with injected discrepancies (missing, extra, amount, fee, currency, duplicate, status)
reported in a manifest; the same rows in the ingress's generic layout are accepted by
POST /v1/settlements/{psp}."""
import csv
import io
import time
import uuid

from ingress_util import ingress, operator, partners  # noqa: F401
from sandbox_util import sandbox  # noqa: F401

ALL = "missing:1,extra:1,amount:1,fee:1,currency:1,duplicate:1,status:1"


def today():
    return time.strftime("%Y-%m-%d", time.gmtime())


def settle(sb, psp, spec="", fmt="native", seed=7):
    r = sb.control("GET", "/_sandbox/settlements/%s?date=%s&discrepancies=%s&format=%s&seed=%d&manifest=1"
                   % (psp, today(), spec, fmt, seed))
    assert r.status == 200, r
    m = r.json()
    return list(csv.DictReader(io.StringIO(m["csv"]))), m["injected"], m["csv"]


def make_activity(sb):
    for i in range(8):
        sb.stripe("POST", "/v1/payment_intents",
                  {"amount": 10000 + i, "currency": "idr", "payment_method": "pm_card_visa",
                   "confirm": True, "metadata": {"order_id": "st-%d-%s" % (i, uuid.uuid4().hex[:6])}})
    for i in range(8):
        e = "xva-%d-%s" % (i, uuid.uuid4().hex[:6])
        sb.xendit("POST", "/callback_virtual_accounts", {"external_id": e, "bank_code": "BNI", "name": "A"})
        assert sb.event("xendit", "va_paid", e, amount=20000 + i).status == 202
    for i in range(8):
        o = "mt-%d-%s" % (i, uuid.uuid4().hex[:6])
        sb.midtrans("POST", "/v2/charge", {"payment_type": "qris",
                                           "transaction_details": {"order_id": o, "gross_amount": 30000 + i}})
        assert sb.event("midtrans", "paid", o).status == 202


def test_native_layouts_with_every_discrepancy(sandbox):
    make_activity(sandbox)
    led = sandbox.ledger()["entries"]
    cols = {"stripe": ("source_id", "gross", "currency", "reporting_category", "fee"),
            "xendit": ("Transaction ID", "Amount", "Currency", "Status", "Fee"),
            "midtrans": ("Order ID", "Gross Amount", "Currency", "Transaction Status", "Fee")}
    for psp, (ref_c, gross_c, cur_c, st_c, fee_c) in cols.items():
        clean, inj0, _ = settle(sandbox, psp)
        mine = {e["object_id"]: e for e in led if e["psp"] == psp}
        assert inj0 == [] and {r[ref_c] for r in clean} == set(mine)
        rows, inj, text = settle(sandbox, psp, ALL)
        by = {}
        for r in rows:
            by.setdefault(r[ref_c], []).append(r)
        kinds = {i["class"]: i["reference"] for i in inj}
        assert set(kinds) == {"missing", "extra", "amount", "fee", "currency", "duplicate", "status"}
        assert len(set(kinds.values())) == 7  # distinct rows
        assert kinds["missing"] not in by
        assert kinds["extra"] in by and kinds["extra"] not in mine
        assert len(by[kinds["duplicate"]]) == 2
        base = {r[ref_c]: r for r in clean}
        a, c0 = by[kinds["amount"]][0], base[kinds["amount"]]
        assert float(a[gross_c]) - float(c0[gross_c]) == 1.0  # one major unit more
        assert by[kinds["currency"]][0][cur_c].upper() != base[kinds["currency"]][cur_c].upper()
        assert by[kinds["status"]][0][st_c] != base[kinds["status"]][st_c]
        assert by[kinds["fee"]][0][fee_c] != base[kinds["fee"]][fee_c]
        # untouched rows are as accepted
        for ref, r in base.items():
            if ref not in kinds.values():
                assert by[ref] == [r]
        # the same seed gives the same file
        assert settle(sandbox, psp, ALL)[2] == text


def test_bad_requests(sandbox):
    r = sandbox.control("GET", "/_sandbox/settlements/stripe?date=2020-01-01&discrepancies=missing:1")
    assert r.status == 400 and "too few" in r.json()["error"]
    r = sandbox.control("GET", "/_sandbox/settlements/stripe?date=yesterday")
    assert r.status == 400
    r = sandbox.control("GET", "/_sandbox/settlements/stripe?date=%s&discrepancies=oops:1" % today())
    assert r.status == 400
    r = sandbox.control("GET", "/_sandbox/settlements/paypal?date=%s" % today())
    assert r.status == 400


def test_kasir_layout_is_accepted_by_the_ingress(sandbox, ingress, partners):
    if not sandbox.ledger("xendit")["entries"]:
        make_activity(sandbox)
    rows, inj, text = settle(sandbox, "xendit", "missing:1,amount:1,extra:1", fmt="kasir")
    assert list(rows[0]) == ["reference", "gross_amount", "fee_amount", "currency",
                             "transaction_status", "settlement_time"]
    # settlement files are PSP data: an operator key uploads them (issue 12)
    r = ingress.request("POST", "/v1/settlements/xendit?format=generic", raw=text.encode(),
                        auth=operator(), ctype="text/csv")
    assert r.status == 202, r
    assert str(len(rows)) in r.body.decode()
