"""222: ingress_batch()'s finishes of refunds and payouts stay index probes whatever the
statistics say.

The finishes that store a refund's or payout's answer, the releases (Kafka did not confirm),
and the status updates of refunds and payouts were `UPDATE ... FROM jsonb_to_recordset()`
joins. With the table analyzed while empty (a freshly set-up stack) the planner may take
the table as the outer side of the join and read all of it for the batch's few rows, and
the plan stays cached while the table grows (the claim's checkout check had the same
exposure, test 221). Each finish is now one probe of the table's primary key.

As 221: empty copies of the tables in a schema of the test's own (search_path), analyzed
empty, eight small batches (the plans are cached), 20,000 rows added to each without an
analyze, then one batch of ten finishes of each kind. Fewer than 100 rows may have been
read from each table (heap scans and every index together)."""
import base64
import hashlib
import uuid

import subprocess

from conftest import PG_DSN, psql, psql_one

GROWN = 20000
TABLES = ("idempotency_keys", "refunds", "payouts")


def key(tag, route, i):
    return hashlib.sha256(b"%s-%s-%d" % (tag.encode(), route.encode(), i)).hexdigest()


def finishes(tag, n, start):
    """n refund and n payout finishes (answers stored), n releases"""
    items = []
    for i in range(start, start + n):
        for route, prefix in (("refunds", "ref"), ("payouts", "po")):
            body = base64.b64encode(b'{"id":"%s_%s_%d"}' % (prefix.encode(), tag.encode(), i))
            items.append('{"op":"complete","partner":"ptn_%s","key":"%s","route":"%s",'
                         '"rid":"%s_%s_%d","body":"%s","status":202,"store":true}'
                         % (tag, key(tag, route, i), route, prefix, tag, i, body.decode()))
        items.append('{"op":"release","partner":"ptn_%s","key":"%s","route":"payments",'
                     '"rid":"pay_%s_%d"}' % (tag, key(tag, "payments", i), tag, i))
    return "[" + ",".join(items) + "]"


def rows(tag, lo, hi):
    """the records, refunds and payouts the finishes of [lo, hi) find, in flight"""
    sql = []
    for route, prefix in (("refunds", "ref"), ("payouts", "po"), ("payments", "pay")):
        sql.append(
            "INSERT INTO idempotency_keys (partner_id, key_hash, route, fingerprint, resource_id, "
            "state, locked_at, expires_at) SELECT 'ptn_%s', sha256(convert_to('%s-%s-' || i, "
            "'UTF8')), '%s', '\\x00', '%s_%s_' || i, 'in_flight', now(), now() + interval '1 day' "
            "FROM generate_series(%d, %d) i;" % (tag, tag, route, route, prefix, tag, lo, hi - 1))
    sql.append(
        "INSERT INTO refunds (refund_id, partner_id, payment_id, order_id, amount_minor, currency, "
        "status) SELECT 'ref_%s_' || i, 'ptn_%s', 'pay_x', 'ord_x', 100, 'IDR', 'PENDING_PUBLISH' "
        "FROM generate_series(%d, %d) i;" % (tag, tag, lo, hi - 1))
    sql.append(
        "INSERT INTO payouts (payout_id, partner_id, seller_id, amount_minor, currency, channel, "
        "destination_account, status) SELECT 'po_%s_' || i, 'ptn_%s', 's', 100, 'IDR', "
        "'BANK_ACCOUNT', '1234', 'PENDING_PUBLISH' FROM generate_series(%d, %d) i;"
        % (tag, tag, lo, hi - 1))
    return sql


def test_finishes_are_index_probes_on_tables_analyzed_empty():
    tag = "t222" + uuid.uuid4().hex[:8]
    schema = tag
    script = ["SET client_min_messages = warning;", "CREATE SCHEMA %s;" % schema]
    for t in TABLES:
        script.append("CREATE TABLE %s.%s (LIKE public.%s INCLUDING ALL);" % (schema, t, t))
    script.append("ANALYZE %s;" % ", ".join("%s.%s" % (schema, t) for t in TABLES))
    script.append("SET search_path = %s, public;" % schema)
    for b in range(8):
        script += rows(tag, b, b + 1)
        script.append("SELECT count(*) FROM ingress_batch('%s', '[]', '30 s', '1 day');"
                      % finishes(tag, 1, b))
    script += rows(tag, 1000, 1000 + GROWN)
    script += rows(tag, 100, 110)
    # the last batch in a transaction of its own: the tables' counters of this transaction
    script.append("BEGIN;")
    script.append("SELECT count(*) FROM ingress_batch('%s', '[]', '30 s', '1 day');"
                  % finishes(tag, 10, 100))
    for t in TABLES:
        script.append(
            "SELECT 'read', '%s', pg_stat_get_xact_tuples_returned('%s.%s'::regclass) + "
            "(SELECT coalesce(sum(pg_stat_get_xact_tuples_returned(i.indexrelid)), 0) "
            "FROM pg_index i WHERE i.indrelid = '%s.%s'::regclass);" % (t, schema, t, schema, t))
    script.append("COMMIT;")
    try:
        p = subprocess.run(["psql", PG_DSN, "-qtAX", "-v", "ON_ERROR_STOP=1", "-F", " "],
                           input="\n".join(script), capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr
        read = {l.split()[1]: int(l.split()[2]) for l in p.stdout.splitlines()
                if l.startswith("read ")}
        assert sorted(read) == sorted(TABLES), p.stdout
        # the last batch did its work: ten refunds and ten payouts requested, their answers
        # stored, ten payment records released
        assert psql_one("SELECT count(*) FROM %s.refunds WHERE status = 'REQUESTED' "
                        "AND refund_id LIKE 'ref\\_%s\\_10_'" % (schema, tag)) == "10"
        assert psql_one("SELECT count(*) FROM %s.payouts WHERE status = 'REQUESTED' "
                        "AND payout_id LIKE 'po\\_%s\\_10_'" % (schema, tag)) == "10"
        assert psql_one("SELECT count(*) FROM %s.idempotency_keys WHERE state = 'completed' "
                        "AND response_status = 202 AND resource_id LIKE '%%\\_%s\\_10_'"
                        % (schema, tag)) == "20"
        assert psql_one("SELECT count(*) FROM %s.idempotency_keys WHERE locked_at = '-infinity' "
                        "AND resource_id LIKE 'pay\\_%s\\_10_'" % (schema, tag)) == "10"
        assert all(read[t] < 100 for t in TABLES), \
            "rows read by the finishes (10 of each kind): %r" % read
    finally:
        psql("DROP SCHEMA IF EXISTS %s CASCADE" % schema)
