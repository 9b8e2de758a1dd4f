"""213: money and records (issue 12).

- refunds only of captured orders, up to captured minus refunded (pending refunds reserved,
  failed ones give their reservation back); an amount without a currency is in the order's;
- the idempotency purge keeps up with 5,000 new keys/s and only purges resolved records;
- a settlement file is validated whole, UTF-8 included, and keeps every column;
- card numbers are refused in every id and free-text field, in any of their usual forms;
- webhooks: Midtrans event ids from signed fields only, the rest marked untrusted; Iris
  callbacks verified; a Xendit event id is the callback's, not the object's;
- refund claims lock their orders in order-id order (no deadlock between writers); the
  retry of a request whose event was published but not recorded is not a 409 for 30 s;
- "150000", "150000.0" and "150000.00" are the same money for the fingerprint; QRIS, VA and
  e-wallets in rupiah only; one payment, one currency."""
import concurrent.futures
import hashlib
import hmac
import json
import subprocess
import time
import uuid

import pytest

from conftest import PG_DSN, daemon_dsn, psql, psql_one
from ingress_util import (Partner, capture, count_in_kafka, ingress, kafka_since,  # noqa: F401
                          new_key, now_ms, operator, partners, payment_body, rows_written,
                          start_ingress)
from test_203_ingress_webhooks import midtrans_body, post
from test_004_migrations import db, dsn, migrate, q  # noqa: F401 (fixture)


def completed_records(table, n, expires, key="", partner="p"):
    """SQL: n completed payout records in table, expiring at the SQL expression expires
    (i, 1..n, in it), keyed by key || i."""
    return ("INSERT INTO %s (partner_id, key_hash, route, fingerprint, resource_id, state, "
            "expires_at) SELECT '%s', decode(md5('%s' || i) || md5('%s' || i), 'hex'), "
            "'payouts', '\\x00', 'pyo_%s' || i, 'completed', %s FROM generate_series(1, %d) i"
            % (table, partner, key, key, key, expires, n))


def refund(ing, p, oid, amount=None, currency="IDR", key=None):
    body = {"payment_order_id": oid}
    if amount:
        body["amount"] = amount
        if currency:
            body["currency"] = currency
    return ing.request("POST", "/v1/refunds", body, auth=p,
                       headers={"Idempotency-Key": key or new_key()})


def order_of(ing, p, **kw):
    r = ing.pay(p, payment_body(**kw), key=new_key())
    assert r.status == 202, r
    return r.json()["payment_orders"][0]["payment_order_id"]


# --- refunds -----------------------------------------------------------------------------

def test_refund_needs_a_captured_order(ingress, partners):
    a, _ = partners
    oid = order_of(ingress, a)
    r = refund(ingress, a, oid, "1000.00")
    assert r.status == 409 and r.code == "refund_not_captured", r
    assert "NOT_STARTED" in r.json()["detail"]
    for status in ("EXECUTING", "PENDING_CUSTOMER", "FAILED", "EXPIRED"):
        # each state as such, not reached by its moves (FAILED -> EXPIRED is none): past the
        # status machine's trigger (kasir_transition_guard) on purpose
        psql("SET session_replication_role = replica; "
             "UPDATE payment_orders SET status = '%s' WHERE order_id = '%s'" % (status, oid))
        r = refund(ingress, a, oid)
        assert r.status == 409 and r.code == "refund_not_captured", (status, r)
    assert psql_one("SELECT count(*) FROM refunds WHERE order_id = '%s'" % oid) == "0"


def test_refund_up_to_captured_pending_reserved_failed_given_back(ingress, partners):
    a, _ = partners
    oid = order_of(ingress, a, amount="100000.00")
    capture(oid, 6000000)  # 60,000.00 of 100,000.00 captured
    r = refund(ingress, a, oid, "60000.01")
    assert r.status == 422 and r.code == "refund_exceeds_amount", r
    r1 = refund(ingress, a, oid, "40000.00")
    assert r1.status == 202, r1
    r = refund(ingress, a, oid, "20000.01")  # 40,000 pending is reserved
    assert r.status == 422 and "2000000 minor units" in r.json()["detail"], r
    # the executor reports the refund failed: its reservation comes back
    psql("UPDATE refunds SET status = 'FAILED' WHERE refund_id = '%s'" % r1.json()["refund_id"])
    r = refund(ingress, a, oid)  # all that is left: 60,000.00
    assert r.status == 202 and r.json()["amount"] == "60000.00", r


def test_amount_without_currency_takes_the_orders(ingress, partners):
    a, _ = partners
    oid = order_of(ingress, a)
    capture(oid)
    r = refund(ingress, a, oid, "10000", currency=None)
    assert r.status == 202, r
    assert r.json()["amount"] == "10000.00" and r.json()["currency"] == "IDR"
    card = payment_body(method="card", currency="JPY", amount="5000")
    r = ingress.pay(a, card, key=new_key())
    assert r.status == 202, r
    joid = r.json()["payment_orders"][0]["payment_order_id"]
    capture(joid)
    r = refund(ingress, a, joid, "5.5", currency=None)  # JPY has no minor unit
    assert r.status == 400 and r.code == "amount_invalid" and "JPY" in r.json()["detail"], r
    r = refund(ingress, a, joid, "120", currency=None)
    assert r.status == 202 and r.json()["amount"] == "120" and r.json()["currency"] == "JPY", r


def test_concurrent_refunds_do_not_deadlock():
    # small batches, four writers: several claim batches run at once, each refunding the
    # same orders in the random order of its keys
    ing = start_ingress({"KASIR_STORE_WRITERS": "4", "KASIR_STORE_GATHER_US": "2000",
                         "KASIR_STORE_BATCH_MAX": "8"})
    p = Partner("dl-" + uuid.uuid4().hex[:6])
    try:
        oids = []
        for _ in range(4):
            oid = order_of(ing, p, amount="1000000.00")
            capture(oid)
            oids.append(oid)
        pool = concurrent.futures.ThreadPoolExecutor(48)
        for _ in range(4):
            futs = [pool.submit(refund, ing, p, oids[i % 4], "1.00") for i in range(96)]
            rs = [f.result(timeout=60) for f in futs]
            assert all(r.status == 202 for r in rs), [r for r in rs if r.status != 202][:3]
        log = open(ing.daemon.log_path).read()
        assert "40P01" not in log and "deadlock" not in log
    finally:
        ing.daemon.term()


# --- the fingerprint, currencies ---------------------------------------------------------------

def test_equal_amounts_are_the_same_request(ingress, partners):
    a, _ = partners
    body = payment_body(amount="150000")
    key = new_key()
    first = ingress.pay(a, body, key=key)
    assert first.status == 202, first
    for amt in ("150000.0", "150000.00", "0150000.00"):
        body["payment_orders"][0]["amount"] = amt
        r = ingress.pay(a, body, key=key)
        assert r.status == 202 and r.body == first.body, (amt, r)
        assert r.headers.get("idempotent-replayed") == "true"
    body["payment_orders"][0]["amount"] = "150000.01"
    r = ingress.pay(a, body, key=key)
    assert r.status == 422 and r.code == "idempotency_key_reused", r


@pytest.mark.parametrize("method,currency,ok", [
    ("qris", "USD", False), ("virtual_account", "SGD", False), ("bank_transfer", "USD", False),
    ("ewallet", "USD", False), ("card", "USD", True), ("qris", "IDR", True)])
def test_rails_take_their_currencies(ingress, partners, method, currency, ok):
    a, _ = partners
    r = ingress.pay(a, payment_body(method=method, currency=currency, amount="100.00"), key=new_key())
    if ok:
        assert r.status == 202, r
    else:
        assert r.status == 400 and r.code == "currency_method_unsupported", r
        assert r.json()["field"] == "payment_orders[0].currency"


def test_one_payment_one_currency(ingress, partners):
    a, _ = partners
    body = payment_body(method="card", n=2, currency="USD", amount="10.00")
    body["payment_orders"][1]["currency"] = "SGD"
    r = ingress.pay(a, body, key=new_key())
    assert r.status == 400 and r.code == "currency_mixed", r
    assert r.json()["field"] == "payment_orders[1].currency"
    r = ingress.request("POST", "/v1/payouts", {
        "seller_id": "s-1", "amount": "10.00", "currency": "USD", "channel": "ewallet",
        "ewallet_channel": "OVO", "destination_account": "+6281234567890"}, auth=a,
        headers={"Idempotency-Key": new_key()})
    assert r.status == 400 and r.code == "currency_method_unsupported", r


# --- card numbers ------------------------------------------------------------------------------

PANS = ["4111111111111111", "4111 1111 1111 1111", "4111-1111-1111-1111", "4111.1111.1111.1111",
        "4111/1111/1111/1111", "ref004111111111111111999", "5500000000000004", "378282246310005"]


def _with(path, value):
    b = payment_body()
    if path == "buyer.id":
        b["buyer"]["id"] = value
    elif path == "checkout_id":
        b["checkout_id"] = value
    elif path == "payment_orders[0].seller_id":
        b["payment_orders"][0]["seller_id"] = value
    elif path == "metadata.note":
        b["metadata"] = {"note": "card " + value}
    elif path == "metadata":
        b["metadata"] = {value.replace(" ", "").replace("/", "."): "x"}
    return b


@pytest.mark.parametrize("field", ["buyer.id", "checkout_id", "payment_orders[0].seller_id",
                                   "metadata.note", "metadata"])
def test_card_numbers_refused_everywhere(ingress, partners, field):
    a, _ = partners
    for pan in PANS:
        if field != "metadata.note" and (" " in pan or "/" in pan):
            continue  # ids do not take spaces or slashes at all (field_format)
        r = ingress.pay(a, _with(field, pan), key=new_key())
        assert r.status == 400 and r.code == "card_data_forbidden", (field, pan, r)
        assert r.json()["field"] == field, (pan, r.json())


def test_card_numbers_in_refunds_and_payouts(ingress, partners):
    a, _ = partners
    r = ingress.request("POST", "/v1/refunds", {"payment_order_id": "ord4111111111111111"},
                        auth=a, headers={"Idempotency-Key": new_key()})
    assert r.status == 400 and r.code == "card_data_forbidden", r
    r = ingress.request("POST", "/v1/payouts", {
        "seller_id": "s.4111.1111.1111.1111", "amount": "10.00", "currency": "IDR",
        "channel": "bank_account", "bank_code": "BCA", "destination_account": "1234567890"},
        auth=a, headers={"Idempotency-Key": new_key()})
    assert r.status == 400 and r.code == "card_data_forbidden" and r.json()["field"] == "seller_id", r


def test_long_digit_ids_are_not_card_numbers(ingress, partners):
    a, _ = partners
    for ident in ("00000000000000000000000", "20260501123000000001", "1234567890123"):
        b = payment_body()
        # the unique part after a separator: hex digits glued to the run would make it
        # another run, which holds a card-like stretch about one time in ten
        b["checkout_id"] = "co-" + ident + "-" + uuid.uuid4().hex[:6]
        assert ingress.pay(a, b, key=new_key()).status == 202, ident


# --- settlement files ------------------------------------------------------------------------

HEAD = b"psp_reference,amount,fee,currency,status,settled_at,extra\n"


def test_settlement_file_validated_whole_utf8_included(ingress):
    ops = operator()
    t0 = now_ms()
    m = "u8-" + uuid.uuid4().hex[:10]
    rows = (b"%s-1,100.00,1.00,IDR,settled,2026-05-01T10:00:00Z,fine\n"
            b"%s-2,100.00,1.00,IDR,settled,2026-05-01T10:00:00Z,caf\xe9\n") % (m.encode(), m.encode())
    r = ingress.request("POST", "/v1/settlements/sandbox", auth=ops, raw=HEAD + rows, ctype="text/csv")
    assert r.status == 422 and r.code == "settlement_invalid", r
    assert r.json()["field"] == "line 3, column extra" and "UTF-8" in r.json()["detail"], r.json()
    dup = b"psp_reference,amount,fee,currency,status,settled_at,note,note\n" + \
        b"%s-3,1.00,0,IDR,settled,2026-05-01T10:00:00Z,a,b\n" % m.encode()
    r = ingress.request("POST", "/v1/settlements/sandbox", auth=ops, raw=dup, ctype="text/csv")
    assert r.status == 422 and r.json()["field"] == "line 1, column 8", r
    ok = HEAD.replace(b"extra", "caf\u00e9".encode()) + \
        b"%s-4,1.00,0,IDR,settled,2026-05-01T10:00:00Z,\xc3\xa9t\xc3\xa9\n" % m.encode()
    r = ingress.request("POST", "/v1/settlements/sandbox", auth=ops, raw=ok, ctype="text/csv")
    assert r.status == 202, r
    time.sleep(0.5)
    msgs = [v for _, v in kafka_since("kasir.settlement.rows", t0) if m.encode() in v]
    assert len(msgs) == 1 and "\u00e9t\u00e9".encode() in msgs[0] and "caf\u00e9".encode() in msgs[0]


# --- webhooks ----------------------------------------------------------------------------------

def test_midtrans_event_id_from_signed_fields(ingress):
    s = ingress.secrets
    t0 = now_ms()
    b, oid = midtrans_body(s["midtrans"])
    r = post(ingress, "midtrans", b, {})
    assert r.status == 200, r
    assert r.json()["event_id"] == "%s:200:150000.00" % oid, r.json()
    # the same signed fields with another (unsigned) status: the same event
    forged = json.loads(b)
    forged["transaction_status"] = "refund"
    forged["transaction_id"] = str(uuid.uuid4())
    r2 = post(ingress, "midtrans", json.dumps(forged).encode(), {})
    assert r2.status == 200 and r2.json()["event_id"] == r.json()["event_id"], r2
    time.sleep(0.5)
    msgs = [v for _, v in kafka_since("kasir.webhooks.received", t0) if oid.encode() in v]
    assert all(b"kasir-untrusted-fields" in v and b"transaction_status" in v for v in msgs)


def test_iris_callbacks_are_verified():
    key = "IRIS-" + uuid.uuid4().hex
    ing = start_ingress({"KASIR_WEBHOOK_IRIS_MERCHANT_KEY": key})
    try:
        ref = "iris-" + uuid.uuid4().hex[:10]
        b = json.dumps({"reference_no": ref, "amount": "10000.0", "status": "completed"}).encode()
        sig = hmac.new(key.encode(), b, hashlib.sha512).hexdigest()
        r = post(ing, "iris", b, {"Iris-Signature": sig})
        assert r.status == 200 and r.json()["event_id"] == ref + ":completed", r
        r = post(ing, "iris", b.replace(b"completed", b"failed"), {"Iris-Signature": sig})
        assert r.status == 401 and r.code == "webhook_signature_invalid", r
        r = post(ing, "iris", b, {})
        assert r.status == 401, r
    finally:
        ing.daemon.term()


def test_xendit_event_id_is_the_callbacks(ingress):
    s = ingress.secrets
    inv = "inv_" + uuid.uuid4().hex
    b1 = json.dumps({"id": inv, "status": "PENDING"}).encode()
    b2 = json.dumps({"id": inv, "status": "PAID"}).encode()
    r1 = post(ingress, "xendit", b1, {"x-callback-token": s["xendit"]})
    r2 = post(ingress, "xendit", b2, {"x-callback-token": s["xendit"]})
    assert r1.status == 200 and r2.status == 200
    # two callbacks about one invoice are two events
    assert r1.json()["event_id"] != inv and r1.json()["event_id"] != r2.json()["event_id"]
    r3 = post(ingress, "xendit", b2, {"x-callback-token": s["xendit"], "webhook-id": "cb_123"})
    assert r3.json()["event_id"] == "cb_123"


# --- the purge ---------------------------------------------------------------------------------

def test_purge_keeps_up_and_keeps_what_is_unresolved():
    tag = "purge-" + uuid.uuid4().hex[:8]
    n = 50000
    # 50,000 expired, completed records: 10 s of keys at 5,000/s
    psql(completed_records("idempotency_keys", n, "now() - interval '1 hour'", partner=tag))
    # an expired refund that never completed: its event may be in Kafka. Its reservation
    # and its record stay.
    psql("INSERT INTO payment_orders (order_id, payment_id, partner_id, seq, seller_id, "
         "amount_minor, currency, method, status, captured_minor, refund_requested_minor) "
         "VALUES ('ord_%s', 'pay_%s', '%s', 0, 's', 1000, 'IDR', 'QRIS', 'SUCCESS', 1000, 500)"
         % (tag, tag, tag))
    psql("INSERT INTO refunds (refund_id, partner_id, payment_id, order_id, amount_minor, "
         "currency, status) VALUES ('rfd_%s', '%s', 'pay_%s', 'ord_%s', 500, 'IDR', "
         "'PENDING_PUBLISH')" % (tag, tag, tag, tag))
    psql("INSERT INTO idempotency_keys (partner_id, key_hash, route, fingerprint, resource_id, "
         "state, locked_at, expires_at) VALUES ('%s', '\\x01', 'refunds', '\\x00', 'rfd_%s', "
         "'in_flight', '-infinity', now() - interval '1 hour')" % (tag, tag))
    # and a payment claimed but never finished (no payment row): its checkout stays reserved
    psql("INSERT INTO idempotency_keys (partner_id, key_hash, route, fingerprint, resource_id, "
         "state, locked_at, expires_at, checkout_id) VALUES ('%s', '\\x02', 'payments', '\\x00', "
         "'pay_u_%s', 'in_flight', '-infinity', now() - interval '1 hour', 'co-%s')" % (tag, tag, tag))
    # (this test's own ingress, whose first pass starts from the oldest record; the other
    # ingresses of the test run reach records back-dated like these in their full passes)
    ing = start_ingress({"KASIR_IDEMPOTENCY_PURGE_EVERY": "500ms"})
    try:
        deadline = time.time() + 10
        left = n
        while time.time() < deadline:
            left = int(psql_one("SELECT count(*) FROM idempotency_keys WHERE partner_id = '%s' "
                                "AND route = 'payouts'" % tag))
            if left == 0:
                break
            time.sleep(0.5)
        assert left == 0, "%d of %d resolved records left after 10 s" % (left, n)
        assert psql_one("SELECT count(*) FROM idempotency_keys WHERE partner_id = '%s'" % tag) == "2"
        assert psql_one("SELECT refund_requested_minor FROM payment_orders WHERE order_id = "
                        "'ord_%s'" % tag) == "500"
        assert psql_one("SELECT status FROM refunds WHERE refund_id = 'rfd_%s'" % tag) == "PENDING_PUBLISH"
        assert psql_one("SELECT count(*) FROM ingress_unresolved WHERE partner_id = '%s'" % tag) == "2"
        assert ing.metric("kasir_ingress_idempotency_unresolved") >= 2
    finally:
        ing.daemon.term()
        psql("DELETE FROM idempotency_keys WHERE partner_id = '%s'" % tag)
        psql("DELETE FROM refunds WHERE partner_id = '%s'" % tag)
        psql("DELETE FROM payment_orders WHERE partner_id = '%s'" % tag)


def test_purge_reads_what_expired_not_what_is_new():
    """A purge reads the records that expired, not the table: the ingress runs one every
    2 s. Through the BRIN index on expires_at (820) it re-read every page that autovacuum
    had not summarized yet: on a growing table up to a fifth of it each time (41-112 ms a
    purge at 5,000 payments/s, 11,556 pages of ~1.3 million records; docs/BENCHMARKS.md,
    session 26). ingress_purge names its tables without a schema, so it runs here against
    copies in a schema of the test's own (search_path), as test 221 does: 100,000 new
    records, just written (no vacuum has summarized them), and 10 expired, resolved ones."""
    schema = "t213" + uuid.uuid4().hex[:8]
    n, expired = 100000, 10
    script = ["SET client_min_messages = warning;",
              "CREATE SCHEMA %s;" % schema,
              "CREATE TABLE %s.payments (LIKE public.payments INCLUDING ALL);" % schema,
              "CREATE TABLE %s.idempotency_keys (LIKE public.idempotency_keys INCLUDING ALL);"
              % schema,
              "SET search_path = %s, public;" % schema,
              # 20 s of new keys at 5,000/s, then the expired ones
              completed_records("idempotency_keys", n, "now() + interval '1 day'") + ";",
              completed_records("idempotency_keys", expired, "now() - interval '1 hour'",
                                key="x") + ";",
              # the counter's difference: its pending count holds the inserts' fetches too
              # statistics as a table this size has them (the plan is not the empty table's)
              "ANALYZE idempotency_keys, payments;",
              "BEGIN;",
              "CREATE TEMP TABLE before ON COMMIT DROP AS "
              "SELECT pg_stat_get_xact_blocks_fetched('idempotency_keys'::regclass) b;",
              "SELECT 'purged', ingress_purge(20000);",
              "SELECT 'read', pg_stat_get_xact_blocks_fetched('idempotency_keys'::regclass) - b, "
              "pg_relation_size('idempotency_keys') / 8192 FROM before;",
              "COMMIT;"]
    try:
        p = subprocess.run(["psql", PG_DSN, "-qtAX", "-v", "ON_ERROR_STOP=1", "-F", " "],
                           input="\n".join(script), capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        out = {l.split()[0]: l.split()[1:] for l in p.stdout.splitlines() if l}
        assert out["purged"] == [str(expired)], p.stdout
        read, pages = int(out["read"][0]), int(out["read"][1])
        assert pages > 1000, pages  # the new records fill the table, not the expired
        # the expired records' pages and their deletes: a few dozen heap fetches
        assert read < 100, "a purge read %d of the table's %d pages" % (read, pages)
        assert psql_one("SELECT count(*) FROM %s.idempotency_keys" % schema) == str(n)
    finally:
        psql("DROP SCHEMA IF EXISTS %s CASCADE" % schema)


def test_a_purge_starts_where_the_last_one_began():
    """The records a purge deleted keep their entries in the index on expires_at until the
    table's next vacuum, and a scan from the oldest entry walks through all of them: at a
    day's steady state each purge (every 2 s) walked hours of deleted records. A pass now
    starts where the previous one began (a full pass every 10 minutes). An ingress of the
    test's own runs against copies of the tables in a schema of its own (search_path in its
    DSN; autovacuum off on them): 100,000 expired records are purged, then its next passes,
    every 200 ms, must not walk their entries (~280 index pages a pass from the oldest)."""
    schema = "t213w" + uuid.uuid4().hex[:8]
    n = 100000
    script = ["SET client_min_messages = warning;",
              "CREATE SCHEMA %s;" % schema,
              "CREATE TABLE %s.payments (LIKE public.payments INCLUDING ALL) "
              "WITH (autovacuum_enabled = off);" % schema,
              "CREATE TABLE %s.idempotency_keys (LIKE public.idempotency_keys INCLUDING ALL) "
              "WITH (autovacuum_enabled = off);" % schema,
              "GRANT USAGE ON SCHEMA %s TO kasir_ingress;" % schema,
              "GRANT SELECT, INSERT, UPDATE, DELETE ON %s.idempotency_keys TO kasir_ingress;"
              % schema,
              "GRANT SELECT ON %s.payments TO kasir_ingress;" % schema,
              # expired a millisecond apart, as a day-old stream of keys is
              completed_records(schema + ".idempotency_keys", n,
                                "now() - interval '1 hour' + i * interval '1 ms'") + ";",
              # and as many not expired yet, as a live table has
              completed_records(schema + ".idempotency_keys", n, "now() + interval '1 day'",
                                key="n") + ";",
              "ANALYZE %s.idempotency_keys, %s.payments;" % (schema, schema)]
    reads = ("SELECT coalesce(sum(idx_blks_hit + idx_blks_read), 0) FROM pg_statio_all_indexes "
             "WHERE schemaname = '%s' AND relname = 'idempotency_keys'" % schema)
    ing = None
    try:
        p = subprocess.run(["psql", PG_DSN, "-qtAX", "-v", "ON_ERROR_STOP=1"],
                           input="\n".join(script), capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        ing = start_ingress({
            "KASIR_PG_DSN": daemon_dsn("ingress") + " options='-csearch_path=%s,public'" % schema,
            "KASIR_IDEMPOTENCY_PURGE_EVERY": "200ms"})
        deadline = time.time() + 20
        left = n
        while time.time() < deadline and left:
            left = int(psql_one("SELECT count(*) FROM %s.idempotency_keys WHERE expires_at "
                                "< now()" % schema))
            time.sleep(0.2)
        assert left == 0, "%d of %d expired records left after 20 s" % (left, n)
        # the passes' statistics reach the shared counters within about a second
        time.sleep(1.5)
        r0 = int(psql_one(reads))
        time.sleep(4)
        r1 = int(psql_one(reads))
        assert r1 - r0 < 500, "~20 purge passes read %d index pages" % (r1 - r0)
        # the control: one pass from the oldest record (the one-argument form) walks the
        # purged records' entries, ~280 pages, so the bound above would catch every pass
        # doing that
        control = ["SET search_path = %s, public;" % schema,
                   "BEGIN;",
                   "CREATE TEMP TABLE before ON COMMIT DROP AS SELECT sum("
                   "pg_stat_get_xact_blocks_fetched(indexrelid)) b FROM pg_index "
                   "WHERE indrelid = 'idempotency_keys'::regclass;",
                   "SELECT 'purged', ingress_purge(20000);",
                   "SELECT 'read', sum(pg_stat_get_xact_blocks_fetched(indexrelid)) - "
                   "min(b) FROM pg_index, before WHERE indrelid = 'idempotency_keys'::regclass;",
                   "COMMIT;"]
        p = subprocess.run(["psql", PG_DSN, "-qtAX", "-v", "ON_ERROR_STOP=1", "-F", " "],
                           input="\n".join(control), capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        out = {l.split()[0]: l.split()[1:] for l in p.stdout.splitlines() if l}
        assert out["purged"] == ["0"], p.stdout
        assert int(out["read"][0]) > 200, "a pass from the oldest read only %s" % out["read"]
    finally:
        if ing:
            ing.daemon.term()
        psql("DROP SCHEMA IF EXISTS %s CASCADE" % schema)


def test_a_database_without_the_purge_of_two_arguments(db):
    """An ingress deployed before functions/ingress_purge.sql (a rolling deploy done in the
    wrong order) finds only ingress_purge(lim): it says so once and purges from the oldest
    record every pass, as before, instead of failing every pass. A scratch database migrated
    whole, then the function put back as it was before session 26."""
    name = db()
    assert migrate(name).returncode == 0
    old = ("DROP FUNCTION ingress_purge(integer, timestamptz) CASCADE; "
           "CREATE OR REPLACE FUNCTION ingress_purge(lim integer) RETURNS integer LANGUAGE sql AS $$ "
           "WITH d AS (DELETE FROM idempotency_keys WHERE ctid = ANY (ARRAY("
           "SELECT k.ctid FROM idempotency_keys k WHERE k.expires_at < now() "
           "AND k.state = 'completed' LIMIT lim)) RETURNING 1) SELECT count(*)::integer FROM d $$; "
           + completed_records("idempotency_keys", 1000, "now() - interval '1 hour'"))
    q(name, old, check=True)
    ing = start_ingress({"KASIR_PG_DSN": daemon_dsn("ingress", dsn(name)),
                         "KASIR_IDEMPOTENCY_PURGE_EVERY": "200ms"})
    try:
        deadline = time.time() + 10
        left = "1000"
        while time.time() < deadline and left != "0":
            left = q(name, "SELECT count(*) FROM idempotency_keys")
            time.sleep(0.2)
        assert left == "0", left
        # the next passes too (their statements no longer fail)
        time.sleep(1)
        with open(ing.daemon.log_path, errors="replace") as f:
            f.seek(ing.daemon.log_offset)  # this ingress's lines, not an earlier one's
            log = f.read()
        assert log.count("ingress.idempotency.purge_old_form") == 1, ing.daemon.log_tail()
        assert "ingress.idempotency.purge_failed" not in log, ing.daemon.log_tail()
    finally:
        ing.daemon.term()
