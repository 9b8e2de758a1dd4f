"""001: the stack that `make up` starts is real and answers: Kafka round trip, PostgreSQL
query, migrations and topic creation idempotent."""
import os
import subprocess
import uuid

from conftest import BROKERS, PG_DSN, TOP, create_topics, kcat_messages, psql, psql_one, unique


def test_kafka_produce_consume_round_trip():
    topic = unique("t001")
    create_topics(topic + ":1")
    payload = "hello-" + uuid.uuid4().hex
    p = subprocess.run(["kcat", "-b", BROKERS, "-P", "-t", topic, "-K", ":", "-X", "acks=all"],
                       input=("k1:" + payload + "\n").encode(), capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    msgs = kcat_messages(topic)
    assert msgs == [("k1", payload.encode())]


def test_postgresql_query_and_transaction():
    assert psql_one("SELECT 6 * 7") == "42"
    t = "t001_" + uuid.uuid4().hex[:8]
    psql("CREATE TABLE %s (v int)" % t)
    # psql -c sends one simple query: an explicit BEGIN/ROLLBACK inside it is a real transaction
    psql("BEGIN; INSERT INTO %s VALUES (1); ROLLBACK;" % t)
    psql("INSERT INTO %s VALUES (2)" % t)
    assert psql_one("SELECT coalesce(sum(v), 0) FROM %s" % t) == "2"
    psql("DROP TABLE %s" % t)


def test_migrations_recorded_once_and_rerun_harmless():
    before = psql("SELECT version FROM schema_migrations ORDER BY version")
    assert ["800_runtime"] in before
    files = sorted(f[:-4] for f in os.listdir(os.path.join(TOP, "deploy", "migrations")) if f.endswith(".sql"))
    assert [r[0] for r in before] == files
    subprocess.run(["bash", os.path.join(TOP, "deploy/local/stack.sh"), "migrate"], check=True, timeout=60)
    assert psql("SELECT version FROM schema_migrations ORDER BY version") == before


def test_topics_from_manifest_exist_and_recreate_is_noop():
    manifest = os.path.join(TOP, "deploy", "topics.tsv")
    names = [l.split("\t")[0] for l in open(manifest) if l.strip() and not l.startswith("#")]
    p = subprocess.run([os.path.join(TOP, "build/bin/kasir-topics"), "--brokers", BROKERS,
                        "--manifest", manifest], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "0 created, %d already there, 0 failed" % len(names) in p.stdout
    md = subprocess.run(["kcat", "-b", BROKERS, "-L", "-J"], capture_output=True, text=True, timeout=30)
    for n in names:
        assert '"topic":"%s"' % n in md.stdout.replace(" ", ""), n


def test_stack_up_again_is_fast_and_harmless():
    p = subprocess.run(["bash", os.path.join(TOP, "deploy/local/stack.sh"), "up"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "up in" in p.stdout
    assert psql_one("SELECT 1") == "1"
