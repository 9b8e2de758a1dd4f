"""334: bytes that are not UTF-8, where a client can put them (an idempotency key header, a
form-encoded value), are refused with a 400 that names them, at every PSP, and leave the
sandbox's ledger as it was. jansson keeps only UTF-8: before, such a key made the ledger
entry fail to build, so a refund was answered 201 but never entered, and its refund_of
was written onto the ledger's previous entry (review of 50cd7bc)."""
import json
import time
import uuid

from ingress_util import raw_request
from sandbox_util import basic, sandbox  # noqa: F401

NOT_UTF8 = "k-\xff\xfe-" + uuid.uuid4().hex[:8]  # http.client sends str headers as latin-1


def ledger_count(sb):
    return sb.ledger()["count"]


def test_native_refund_with_a_key_not_utf8(sandbox):
    body = {"reference": "ord_" + uuid.uuid4().hex[:16], "amount": "150000.00",
            "currency": "IDR", "method": "card", "payment_token": "tok_visa"}
    ch = sandbox.native("POST", "/sandbox/v1/charges", body, idem="k-" + uuid.uuid4().hex)
    assert ch.status == 201, ch
    before = ledger_count(sandbox)
    r = sandbox.native("POST", "/sandbox/v1/refunds",
                       {"charge": ch.json()["id"], "amount": "50000.00",
                        "reference": "rf-" + body["reference"]}, idem=NOT_UTF8)
    assert r.status == 400, r
    err = r.json()["error"]
    assert err["code"] == "idempotency_key_invalid" and err["field"] == "Idempotency-Key", err
    assert ledger_count(sandbox) == before
    entries = sandbox.ledger("sandbox")["entries"]
    assert not [e for e in entries if e.get("refund_of") == ch.json()["id"]]
    assert not [e for e in entries if "refund_of" in e and e["kind"] != "refund"]
    # the same refund with a UTF-8 key ("é" as its two bytes) goes through, entered once
    r = sandbox.native("POST", "/sandbox/v1/refunds",
                       {"charge": ch.json()["id"], "amount": "50000.00",
                        "reference": "rf-" + body["reference"]},
                       idem="k-\xc3\xa9-" + uuid.uuid4().hex)
    assert r.status == 201, r
    assert ledger_count(sandbox) == before + 1


def test_stripe_key_and_form_value_not_utf8(sandbox):
    before = ledger_count(sandbox)
    r = sandbox.stripe("POST", "/v1/payment_intents",
                       {"amount": 2000, "currency": "usd", "payment_method": "pm_card_visa",
                        "confirm": True}, idem=NOT_UTF8)
    assert r.status == 400, r
    assert "UTF-8" in r.json()["error"]["message"]
    # a form value percent-encoded from bytes that are not UTF-8
    h = {"Authorization": "Bearer " + sandbox.keys["stripe"],
         "Content-Type": "application/x-www-form-urlencoded"}
    r = sandbox.request("POST", "/v1/payment_intents",
                        b"amount=2000&currency=usd&metadata[order_id]=%FF%FE", h)
    assert r.status == 400, r
    assert "metadata[order_id]" in r.json()["error"]["message"]
    assert ledger_count(sandbox) == before


def test_xendit_and_iris_keys_not_utf8(sandbox):
    before = ledger_count(sandbox)
    body = {"external_id": "ext-" + uuid.uuid4().hex[:12], "amount": 17000, "bank_code": "BCA",
            "account_holder_name": "Bob Jones", "account_number": "1231241231",
            "description": "Reimbursement"}
    r = sandbox.xendit("POST", "/disbursements", body, idem=NOT_UTF8)
    assert r.status == 400 and r.json()["error_code"] == "API_VALIDATION_ERROR", r
    assert "X-IDEMPOTENCY-KEY" in r.json()["message"]
    payout = {"payouts": [{"beneficiary_name": "Jon Snow", "beneficiary_account": "1172993826",
                           "beneficiary_bank": "bni", "amount": "100000.00",
                           "notes": "n-" + uuid.uuid4().hex[:8]}]}
    r = sandbox.iris("POST", "/api/v1/payouts", payout, idem=NOT_UTF8)
    assert r.status == 400 and "X-Idempotency-Key" in r.json()["error_message"], r
    assert ledger_count(sandbox) == before


# --- text the sandbox shortens to fit must not be cut inside a character (review of 026b535)

E_ACUTE = "\xc3\xa9"  # "é" as its two UTF-8 bytes, for a header (http.client sends latin-1)


def test_iris_notes_cut_at_a_character(sandbox):
    before = ledger_count(sandbox)
    notes = "n" * 59 + "\u00e9"  # the ledger keeps 60 bytes of it: é would be cut in two
    payout = {"payouts": [{"beneficiary_name": "Jon Snow", "beneficiary_account": "1172993826",
                           "beneficiary_bank": "bni", "amount": "100000.00", "notes": notes}]}
    r = sandbox.iris("POST", "/api/v1/payouts", payout, idem="iris-" + uuid.uuid4().hex)
    assert r.status == 201, r
    assert ledger_count(sandbox) == before + 1
    ref = r.json()["payouts"][0]["reference_no"]
    e = [e for e in sandbox.ledger("midtrans", "payout")["entries"] if e["object_id"] == ref]
    assert len(e) == 1 and e[0]["reference"] == "n" * 59, e


def test_xendit_key_over_255_bytes_and_one_of_255(sandbox):
    body = {"external_id": "ext-" + uuid.uuid4().hex[:12], "amount": 17000, "bank_code": "BCA",
            "account_holder_name": "Bob Jones", "account_number": "1231241231",
            "description": "Reimbursement"}
    before = ledger_count(sandbox)
    r = sandbox.xendit("POST", "/disbursements", body, idem="k" * 297 + E_ACUTE)
    assert r.status == 400 and "255" in r.json()["message"], r
    assert ledger_count(sandbox) == before
    key = "k" * 253 + E_ACUTE  # 255 bytes
    assert sandbox.xendit("POST", "/disbursements", body, idem=key).status == 200
    again = sandbox.xendit("POST", "/disbursements", body, idem=key)
    assert again.status == 409 and again.json()["error_code"] == "DUPLICATE_TRANSACTION_ERROR"
    assert ledger_count(sandbox) == before + 1


def test_midtrans_refund_key_of_100_bytes(sandbox):
    o = "ord-" + uuid.uuid4().hex[:12]
    r = sandbox.midtrans("POST", "/v2/charge", {
        "payment_type": "qris", "qris": {"acquirer": "gopay"},
        "transaction_details": {"order_id": o, "gross_amount": 50000}})
    assert r.status == 200 or r.json()["status_code"] == "201", r
    assert sandbox.event("midtrans", "paid", o).status == 202
    before = ledger_count(sandbox)
    key = "r" * 98 + "\u00e9"  # 100 bytes, all of which name the refund (a longer key: 400)
    for _ in range(2):  # the same refund_key is the same refund
        r = sandbox.midtrans("POST", "/v2/%s/refund" % o, {"refund_key": key, "amount": 5000})
        assert r.status == 200 and r.json()["refund_amount"] == "5000.00", r
    assert ledger_count(sandbox) == before + 1


def test_path_and_va_number(sandbox):
    r = sandbox.stripe("GET", "/v1/payment_intents/pi_%FF")
    assert r.status == 400 and "UTF-8" in r.json()["error"], r
    r = sandbox.xendit("POST", "/callback_virtual_accounts",
                       {"external_id": "va-" + uuid.uuid4().hex[:8], "bank_code": "BNI",
                        "name": "A", "virtual_account_number": "9" * 40})
    assert r.status == 400 and "virtual_account_number" in r.json()["message"], r


def test_xendit_form_value_not_utf8_named(sandbox):
    before = ledger_count(sandbox)
    r = sandbox.xendit("POST", "/qr_codes", {"external_id": b"qr-\xff", "type": "DYNAMIC",
                                             "callback_url": "https://example.com/cb",
                                             "amount": 1500}, form=True)
    assert r.status == 400 and r.json()["error_code"] == "API_VALIDATION_ERROR", r
    assert "external_id" in r.json()["message"], r
    assert ledger_count(sandbox) == before


def test_more_text_cut_or_refused_whole(sandbox):
    # a Midtrans refund_key longer than the 100 bytes that name the refund is refused, not cut
    o = "ord-" + uuid.uuid4().hex[:12]
    sandbox.midtrans("POST", "/v2/charge", {
        "payment_type": "qris", "qris": {"acquirer": "gopay"},
        "transaction_details": {"order_id": o, "gross_amount": 50000}})
    assert sandbox.event("midtrans", "paid", o).status == 202
    r = sandbox.midtrans("POST", "/v2/%s/refund" % o, {"refund_key": "r" * 101, "amount": 1000})
    assert r.status == 400 and "refund_key" in r.json()["validation_messages"][0], r
    # a refund_key of 94 bytes + é lands in the settlement file whole, the file stays UTF-8
    key = "m" * 94 + "\u00e9"
    r = sandbox.midtrans("POST", "/v2/%s/refund" % o, {"refund_key": key, "amount": 1000})
    assert r.status == 200, r
    m = sandbox.control("GET", "/_sandbox/settlements/midtrans?date=%s&manifest=1"
                        % time.strftime("%Y-%m-%d", time.gmtime()))
    assert m.status == 200 and key in m.json()["csv"], m
    # a fault header that is not UTF-8, and a form name of raw bytes, answer JSON that names them
    r = sandbox.stripe("POST", "/v1/payment_intents", {"amount": 2000, "currency": "usd"},
                       fault="x" * 59 + E_ACUTE)
    assert r.status == 400 and "X-Sandbox-Fault" in r.json()["error"], r
    h = {"Authorization": basic(sandbox.keys["xendit"]),
         "Content-Type": "application/x-www-form-urlencoded"}
    r = sandbox.request("POST", "/qr_codes", b"\xff=1&external_id=q1", h)
    assert r.status == 400 and "%FF" in r.json()["message"], r


# --- a NUL escape, a Host and a control answer (leftovers of session 38's review)

def test_nul_escape_in_a_path_or_argument_names_no_object(sandbox):
    """libmicrohttpd decoded %00 to a NUL, which ended the id: GET .../pi_x%00y answered for
    pi_x. It decodes to C0 80 now (lib/httpd.h), in no UTF-8 id: the path is refused, and an
    argument finds nothing -- nor does it read as an id holding the text "%00"."""
    pi = sandbox.stripe("POST", "/v1/payment_intents",
                        {"amount": 2000, "currency": "usd", "payment_method": "pm_card_visa",
                         "confirm": True}, idem="k-" + uuid.uuid4().hex)
    assert pi.status == 200, pi
    pid = pi.json()["id"]
    assert sandbox.stripe("GET", "/v1/payment_intents/" + pid).status == 200
    r = sandbox.stripe("GET", "/v1/payment_intents/%s%%00y" % pid)
    assert r.status == 400 and "%00" in r.json()["error"], r
    ref = "ord_" + uuid.uuid4().hex[:16]
    ch = sandbox.native("POST", "/sandbox/v1/charges",
                        {"reference": ref, "amount": "150000.00", "currency": "IDR",
                         "method": "card", "payment_token": "tok_visa"},
                        idem="k-" + uuid.uuid4().hex)
    assert ch.status == 201, ch
    cid = ch.json()["id"]
    assert sandbox.native("GET", "/sandbox/v1/charges/" + cid).status == 200
    assert sandbox.native("GET", "/sandbox/v1/charges/%s%%00" % cid).status == 400
    r = sandbox.native("GET", "/sandbox/v1/charges?reference=" + ref)
    assert r.status == 200 and [c["id"] for c in r.json()["data"]] == [cid], r
    r = sandbox.native("GET", "/sandbox/v1/charges?reference=%s%%00" % ref)
    assert r.status == 200 and r.json()["data"] == [], r
    # an order id that holds the three characters "%00" is %2500 in a path, never %00
    o = "ord-" + uuid.uuid4().hex[:12] + "%00x"
    r = sandbox.midtrans("POST", "/v2/charge", {
        "payment_type": "qris", "qris": {"acquirer": "gopay"},
        "transaction_details": {"order_id": o, "gross_amount": 50000}})
    assert r.status == 200 and r.json()["status_code"] == "201", r
    r = sandbox.midtrans("GET", "/v2/%s/status" % o.replace("%", "%25"))
    assert r.status == 200 and r.json()["order_id"] == o, r
    r = sandbox.midtrans("GET", "/v2/%s/status" % o)
    assert r.status == 400, r


def raw_host_request(sandbox, hosts, version="HTTP/1.1"):
    """A Midtrans QRIS charge with the Host lines given (none, one or several)."""
    body = json.dumps({"payment_type": "qris", "qris": {"acquirer": "gopay"},
                       "transaction_details": {"order_id": "ord-" + uuid.uuid4().hex[:12],
                                               "gross_amount": 50000}}).encode()
    head = "POST /v2/charge %s\r\n" % version
    for h in hosts:
        head += "Host: %s\r\n" % h
    head += ("Authorization: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
             "Connection: close\r\n\r\n" % (basic(sandbox.keys["midtrans"]), len(body)))
    s, status, _, rbody = raw_request(sandbox.port, head.encode("latin-1"), body, timeout=10)
    s.close()
    return status, json.loads(rbody or b"null")


def test_host_that_is_not_one_host_is_refused(sandbox):
    """Midtrans's action URLs are built from Host: one of 300 bytes was cut inside the URL
    buffer and one not UTF-8 could not go into JSON, and either way the actions were left
    out of a 201. A request whose Host is not exactly one host[:port] (RFC 9112 3.2) is a
    400 now, no charge created."""
    def qris(host):
        o = "ord-" + uuid.uuid4().hex[:12]
        return o, sandbox.midtrans("POST", "/v2/charge", {
            "payment_type": "qris", "qris": {"acquirer": "gopay"},
            "transaction_details": {"order_id": o, "gross_amount": 50000}},
            headers={"Host": host})

    for host in ("h" * 300, "sandbox-\xff.local", "a b", "x" * 59 + E_ACUTE, "a:b:c", ":",
                 "[::1", "[]", "h:99999", "h:123456", "h:80x", "[::1]x", "%", "a%zz", "a%4",
                 "[zz]", "[.]x", "[::1%25]", "h:80 ", "[.]", "[1]", "[::::::]", "[1.2.3.4]"):
        o, r = qris(host)
        assert r.status == 400 and "Host" in r.json()["error"], (host, r)
        assert sandbox.midtrans("GET", "/v2/%s/status" % o).json()["status_code"] == "404"
    for host in ("h" * 250 + ":8080", "[::1]:8080", "[fe80::1%25eth0]", "EXAMPLE.com.",
                 "h:65535", "127.0.0.1", "h:", "a%41b", "xn--bcher-kva.example_1:0",
                 "[fe80::1%eth0]:8090",  # a bare % before the zone: Python's http.client
                 "[::ffff:192.0.2.1]"):
        o, r = qris(host)
        assert r.status == 200 and r.json()["status_code"] == "201", (host, r)
        urls = [a["url"] for a in r.json()["actions"]]
        assert urls == ["http://%s/v2/qris/%s/qr-code" % (host, r.json()["transaction_id"])]
    # none in HTTP/1.1, or two: 400; none in HTTP/1.0 is fine
    assert raw_host_request(sandbox, [])[0] == 400
    st, j = raw_host_request(sandbox, ["127.0.0.1", "other.example"])
    assert st == 400 and "Host" in j["error"], j
    st, j = raw_host_request(sandbox, [], "HTTP/1.0")
    assert st == 200 and j["status_code"] == "201", j


def test_control_event_error_of_a_long_id_is_whole_json(sandbox):
    """The 409 of /_sandbox/events quotes the id in a 300-byte message: an id of 2-byte
    characters was cut inside one, and the answer was empty. The message's 47 bytes before
    the id leave 252: the "x" puts the cut inside a character."""
    r = sandbox.control("POST", "/_sandbox/events",
                        {"psp": "sandbox", "event": "paid", "id": "x" + "\u00e9" * 200})
    assert r.status == 409, r
    assert r.json()["error"].startswith("no pending sandbox charge with id or reference x\u00e9")


def test_paths_are_matched_whole(sandbox):
    """An id in a path was read with sscanf's %127[^/] (%199 at Xendit): a longer one was
    cut, and any text after it was accepted. A request for A + "ZZZ" paid the QR code A, and
    GET /v2/<order>/anything/status answered for the order. Paths match whole now."""
    a = "qr-" + uuid.uuid4().hex[:12] + "a" * 184  # 199 bytes: what %199[^/] kept
    r = sandbox.xendit("POST", "/qr_codes", {"external_id": a, "type": "DYNAMIC",
                                             "callback_url": "http://127.0.0.1:9/cb",
                                             "amount": 1500})
    assert r.status == 201, r
    r = sandbox.xendit("POST", "/qr_codes/%sZZZ/payments/simulate" % a, {})
    assert r.status == 404, r
    assert sandbox.xendit("GET", "/qr_codes/" + a).json()["status"] == "ACTIVE"
    r = sandbox.xendit("POST", "/qr_codes/%s/junk/payments/simulate" % a, {})
    assert r.status == 404, r
    long_ext = a + "b" * 101  # 300 bytes, created and paid by its whole id
    assert sandbox.xendit("POST", "/qr_codes", {"external_id": long_ext, "type": "DYNAMIC",
                                                "callback_url": "http://127.0.0.1:9/cb",
                                                "amount": 1500}).status == 201
    r = sandbox.xendit("POST", "/qr_codes/%s/payments/simulate" % long_ext, {})
    assert r.status == 200 and r.json()["qr_code"]["external_id"] == long_ext, r
    assert sandbox.xendit("GET", "/qr_codes/" + a).json()["status"] == "ACTIVE"
    e = "va-" + uuid.uuid4().hex[:12]
    assert sandbox.xendit("POST", "/callback_virtual_accounts",
                          {"external_id": e, "bank_code": "BNI", "name": "A",
                           "expected_amount": 150000, "is_closed": True}).status == 200
    r = sandbox.xendit("POST", "/callback_virtual_accounts/external_id=%s/junk/simulate_payment"
                       % e, {"amount": 150000})
    assert r.status == 404, r
    assert not [x for x in sandbox.ledger("xendit", "charge")["entries"] if x["reference"] == e]
    # Midtrans: /v2/<order>/<anything>/status is no transaction's status, nor a refund's path
    o = "ord-" + uuid.uuid4().hex[:12]
    assert sandbox.midtrans("POST", "/v2/charge", {
        "payment_type": "qris", "qris": {"acquirer": "gopay"},
        "transaction_details": {"order_id": o, "gross_amount": 50000}}).status == 200
    assert sandbox.midtrans("GET", "/v2/%s/status" % o).json()["status_code"] == "201"
    assert sandbox.midtrans("GET", "/v2/%s/x/status" % o).json()["status_code"] == "404"
    assert sandbox.midtrans("GET", "/v2/%s/statusx" % o).json()["status_code"] == "404"
    # Stripe: a refund's path with text after its id
    pi = sandbox.stripe("POST", "/v1/payment_intents",
                        {"amount": 10000, "currency": "usd", "payment_method": "pm_card_visa",
                         "confirm": True}).json()
    re1 = sandbox.stripe("POST", "/v1/refunds", {"payment_intent": pi["id"], "amount": 3000},
                         idem="rf-" + uuid.uuid4().hex).json()
    assert sandbox.stripe("GET", "/v1/refunds/" + re1["id"]).status == 200
    assert sandbox.stripe("GET", "/v1/refunds/%s/anything" % re1["id"]).status == 404
    r = sandbox.stripe("POST", "/v1/payment_intents/%s/x/cancel" % pi["id"], {})
    assert r.status == 404, r


def test_iris_and_charge_calls_known_by_their_paths(sandbox):
    """Whether a Midtrans path was Iris's (its own key, payouts) was a search for "/payouts"
    anywhere in it: an order id holding it made /v2/<order>/status take the Iris key and
    refuse the server key. Iris is its path's prefix now."""
    o = "payouts-" + uuid.uuid4().hex[:8]
    r = sandbox.midtrans("POST", "/v2/charge", {
        "payment_type": "qris", "qris": {"acquirer": "gopay"},
        "transaction_details": {"order_id": o, "gross_amount": 50000}})
    assert r.status == 200 and r.json()["status_code"] == "201", r
    r = sandbox.midtrans("GET", "/v2/%s/status" % o)
    assert r.status == 200 and r.json()["order_id"] == o, r
    r = sandbox.midtrans("GET", "/v2/%s/status" % o, key=sandbox.keys["iris"])
    assert r.status == 401, r


def test_settlement_date_is_digits(sandbox):
    """The settlement file's date was checked for its length and dashes only: "2026-01-%00"
    (C0 80 in it) or "2026-01-\u00e9" answered an empty file."""
    for d in ("2026-01-%00", "2026-01-%C3%A9", "abcd-ef-gh", "2026-1-011"):
        r = sandbox.control("GET", "/_sandbox/settlements/stripe?date=%s&manifest=1" % d)
        assert r.status == 400 and "YYYY-MM-DD" in r.json()["error"], (d, r)
    d = time.strftime("%Y-%m-%d", time.gmtime())
    assert sandbox.control("GET", "/_sandbox/settlements/stripe?date=%s" % d).status == 200
