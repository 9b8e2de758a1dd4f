"""002: lib/db.c and lib/kafka.c against the real server and broker (kasir-smoke)."""
import subprocess

from conftest import bin_path, create_topics, unique


def test_lib_wrappers_round_trip():
    topic = unique("t002")
    create_topics(topic + ":1")
    p = subprocess.run([bin_path("smoke"), topic], capture_output=True, text=True, timeout=90)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "pg: select 6*7 = 42" in p.stdout
    assert "delivery confirmed" in p.stdout
    assert "consumed smoke-" in p.stdout
    # ks_db_connect's defaults against a server that vanishes without a FIN
    assert "pg: connect_timeout=10" in p.stdout and "pg: keepalives_idle=30" in p.stdout


def test_dsn_overrides_connection_defaults():
    import os
    topic = unique("t002")
    create_topics(topic + ":1")
    env = dict(os.environ, KASIR_PG_DSN=os.environ["KASIR_PG_DSN"] + " connect_timeout=4")
    p = subprocess.run([bin_path("smoke"), topic], capture_output=True, text=True, timeout=90, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "pg: connect_timeout=4" in p.stdout


def test_smoke_fails_when_postgres_unreachable():
    env = {"KASIR_PG_DSN": "host=127.0.0.1 port=1 dbname=x", "KASIR_KAFKA_BROKERS": "127.0.0.1:9092",
           "PATH": "/usr/bin:/bin"}
    p = subprocess.run([bin_path("smoke"), "unused"], capture_output=True, text=True, timeout=30, env=env)
    assert p.returncode == 1
    assert "could not connect to postgresql" in p.stderr
