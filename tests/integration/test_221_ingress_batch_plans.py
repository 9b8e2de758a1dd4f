"""221: ingress_batch()'s checkout probe stays an index probe whatever the statistics say.

On a freshly set-up stack `payments` is analyzed while empty (make bench's VACUUM ANALYZE,
or autovacuum's first analyze), and the function's plans are cached while it is small. The
claim's checkout check (NOT EXISTS a payment with that partner and checkout) was then a join
filter over a materialized scan of the whole (partner_id, checkout_id) index: each claim read
every payment, until autovacuum analyzed the table again up to a minute later, and the
ingress made ~100-300 payments/s meanwhile. ingress_batch() now pins enable_material off.

The function names its tables without a schema, so it runs here against empty copies in a
schema of the test's own (search_path): analyzed empty, eight small batches (the plan is
cached), 20,000 payments added without an analyze, then one batch of ten new claims. The
index of the copy must have been probed, not read whole: fewer than 100 index entries read
(the old plan read all 20,000 for each claim)."""
import base64
import hashlib
import subprocess
import uuid

from conftest import PG_DSN, psql, psql_one

GROWN = 20000


def claims(tag, n, start):
    items = []
    for i in range(start, start + n):
        body = base64.b64encode(b'{"payment_id":"pay_%s_%d"}' % (tag.encode(), i)).decode()
        items.append('{"i":%d,"route":"payments","partner":"ptn_%s","key":"%s","fp":"%s",'
                     '"rid":"pay_%s_%d","checkout":"chk_%s_%d","status":202,"body":"%s"}'
                     % (i - start, tag, hashlib.sha256(b"k%d" % i).hexdigest(),
                        hashlib.sha256(b"f%d" % i).hexdigest(), tag, i, tag, i, body))
    return "[" + ",".join(items) + "]"


def test_checkout_probe_is_an_index_probe_on_a_table_analyzed_empty():
    tag = "t221" + uuid.uuid4().hex[:8]
    schema = tag
    script = ["SET client_min_messages = warning;",
              "CREATE SCHEMA %s;" % schema,
              "CREATE TABLE %s.payments (LIKE public.payments INCLUDING ALL);" % schema,
              "CREATE TABLE %s.idempotency_keys (LIKE public.idempotency_keys INCLUDING ALL);"
              % schema,
              "ANALYZE %s.payments, %s.idempotency_keys;" % (schema, schema),
              "SET search_path = %s, public;" % schema]
    for b in range(8):
        script.append("SELECT count(*) FROM ingress_batch('[]', '%s', '30 s', '1 day');"
                      % claims(tag, 1, b))
    script.append("INSERT INTO %s.payments (payment_id, partner_id, checkout_id, buyer_id, status) "
                  "SELECT 'pay_grown_' || i, 'ptn_%s', 'chk_grown_' || i, 'b', 'NOT_STARTED' "
                  "FROM generate_series(1, %d) i;" % (schema, tag, GROWN))
    # the last batch in a transaction of its own: the index's counters of this transaction
    script.append("BEGIN;")
    script.append("SELECT count(*) FROM ingress_batch('[]', '%s', '30 s', '1 day');"
                  % claims(tag, 10, 100))
    script.append("SELECT 'read', sum(pg_stat_get_xact_tuples_returned(i.indexrelid)) "
                  "FROM pg_index i WHERE i.indrelid = '%s.payments'::regclass "
                  "AND i.indnatts = 2;" % schema)
    script.append("COMMIT;")
    try:
        p = subprocess.run(["psql", PG_DSN, "-qtAX", "-v", "ON_ERROR_STOP=1", "-F", " "],
                           input="\n".join(script), capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        read = [l.split()[1] for l in p.stdout.splitlines() if l.startswith("read ")]
        assert len(read) == 1, p.stdout
        # the ten claims were all won: the copy of idempotency_keys has 8 + 10 records
        assert psql_one("SELECT count(*) FROM %s.idempotency_keys" % schema) == "18"
        assert int(read[0]) < 100, "the checkout check read %s index entries for 10 claims" % read[0]
    finally:
        psql("DROP SCHEMA IF EXISTS %s CASCADE" % schema)
