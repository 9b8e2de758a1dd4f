"""231: the answers a payment's claim stores reach ingress_batch() as a bytea[] argument.

Since session 19 the ingress sends each payment claim's 202 as bytes in the function's fifth
argument, the claim naming its element ("b", from 1), instead of base64 inside the claims'
JSON (PostgreSQL 15's JSON parser took a call per character of it). Pinned here against
copies of the tables in a schema of the test's own (search_path, as test 221):
- the body stored is the element the claim names, not the one at its position, byte for byte
  (bytes that are not text included);
- the same when the batch meets an existing key and runs its ON CONFLICT form (the
  row-by-row insert is reached with a new record only in a race, a record purged between
  the two inserts: not staged here);
- a claim in the old form (base64 "body", four arguments: an ingress not yet upgraded
  during a rolling deploy) still stores its body;
- a rollback that re-creates a four-argument function beside the file's forms leaves both
  calls resolvable (with a DEFAULT on bodies every call became ambiguous, 42725; review).
Through the server, test 201's byte-identical replay covers the ingress's side."""
import base64
import hashlib
import os
import subprocess
import uuid

import pytest

from conftest import PG_DSN, psql, psql_one


@pytest.fixture
def tag():
    """a schema of the test's own, holding its copies of the tables (dropped after)"""
    t = "t231" + uuid.uuid4().hex[:8]
    yield t
    psql("DROP SCHEMA IF EXISTS %s CASCADE" % t)


def claim(tag, n, i, *, b=None, body=None):
    """claim i of a batch, for payment n; b: its element of bodies; body: base64 inline"""
    extra = ""
    if b is not None:
        extra += ',"b":%d' % b
    if body is not None:
        extra += ',"body":"%s"' % base64.b64encode(body).decode()
    return ('{"i":%d%s,"route":"payments","partner":"ptn_%s","key":"%s","fp":"%s",'
            '"rid":"pay_%s_%d","checkout":"chk_%s_%d","status":202}'
            % (i, extra, tag, hashlib.sha256(b"k%d" % n).hexdigest(),
               hashlib.sha256(b"f%d" % n).hexdigest(), tag, n, tag, n))


def bytea_array(bodies):
    return "ARRAY[%s]::bytea[]" % ",".join("'\\x%s'::bytea" % b.hex() for b in bodies)


def run(tag, statements):
    script = ["SET client_min_messages = warning;",
              "CREATE SCHEMA %s;" % tag,
              "CREATE TABLE %s.payments (LIKE public.payments INCLUDING ALL);" % tag,
              "CREATE TABLE %s.idempotency_keys (LIKE public.idempotency_keys INCLUDING ALL);"
              % tag,
              "SET search_path = %s, public;" % tag] + statements
    p = subprocess.run(["psql", PG_DSN, "-qtAX", "-v", "ON_ERROR_STOP=1"],
                       input="\n".join(script), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr


def stored(tag, n):
    return bytes.fromhex(psql_one("SELECT encode(response_body, 'hex') FROM %s.idempotency_keys "
                                  "WHERE resource_id = 'pay_%s_%d'" % (tag, tag, n)))


def test_claims_store_the_element_they_name(tag):
    one, two = b'{"payment_id":"one"}\x00\xff', b'{"payment_id":"two"}\xfe'
    run(tag, ["SELECT count(*) FROM ingress_batch('[]', '[%s,%s]', '30 s', '1 day', %s);"
              % (claim(tag, 1, 0, b=2), claim(tag, 2, 1, b=1), bytea_array([two, one]))])
    assert stored(tag, 1) == one
    assert stored(tag, 2) == two


def test_claims_after_a_conflict_store_the_element_they_name(tag):
    first, new = b'{"payment_id":"first"}', b'{"payment_id":"new"}\x01'
    # payment 1 claimed; then a batch with its key again and a new payment: the plain
    # insert meets the existing key and the batch runs its ON CONFLICT form
    run(tag, ["SELECT count(*) FROM ingress_batch('[]', '[%s]', '30 s', '1 day', %s);"
              % (claim(tag, 1, 0, b=1), bytea_array([first])),
              "SELECT count(*) FROM ingress_batch('[]', '[%s,%s]', '30 s', '1 day', %s);"
              % (claim(tag, 1, 0, b=2), claim(tag, 3, 1, b=1),
                 bytea_array([new, b"not stored: the key has its record"]))])
    assert stored(tag, 1) == first
    assert stored(tag, 3) == new


def test_claims_of_an_ingress_not_yet_upgraded_store_their_body(tag):
    body = b'{"payment_id":"old"}'
    run(tag, ["SELECT count(*) FROM ingress_batch('[]', '[%s]', '30 s', '1 day');"
              % claim(tag, 1, 0, body=body)])
    assert stored(tag, 1) == body


FUNCTION_FILE = os.path.join(os.path.dirname(__file__), "..", "..", "deploy", "migrations",
                             "functions", "ingress_batch.sql")


def test_a_rollback_leaves_both_calls_resolvable(tag):
    with open(FUNCTION_FILE) as f:
        text = f.read()
    body = b'{"payment_id":"after-rollback"}'
    # the file's forms in the test's schema, then a four-argument function as an older
    # file re-applied would make it (a stand-in that stores nothing)
    run(tag, [text,
              "CREATE OR REPLACE FUNCTION ingress_batch(fin jsonb, claims jsonb, "
              "lock_ttl interval, keep interval) RETURNS SETOF jsonb LANGUAGE plpgsql "
              "AS $$ BEGIN RETURN; END $$;",
              "SELECT count(*) FROM ingress_batch('[]', '[%s]', '30 s', '1 day');"
              % claim(tag, 1, 0, body=b"not stored: the stand-in"),
              "SELECT count(*) FROM ingress_batch('[]', '[%s]', '30 s', '1 day', %s);"
              % (claim(tag, 2, 0, b=1), bytea_array([body]))])
    assert psql_one("SELECT count(*) FROM %s.idempotency_keys WHERE resource_id = 'pay_%s_1'"
                    % (tag, tag)) == "0"
    assert stored(tag, 2) == body
