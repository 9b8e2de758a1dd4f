"""004: the migration runner (deploy/migrate.sh, rules in deploy/migrations/README.md).

A database migrated from scratch and one upgraded from the schema before the squash of the
ingress's migrations (commit BEFORE_SQUASH, applied by the runner of that time, which kept
no checksums) end with identical schemas; the runner refuses an edited applied migration,
one numbered below what is applied, a squash of which only some files are applied, and a
file that vanished; --check changes nothing."""
import os
import re
import shutil
import subprocess

import pytest

from conftest import TOP, psql, unique

BEFORE_SQUASH = "ff677db72408a885589c3f993484df40691a8e63"
MIGRATE = os.path.join(TOP, "deploy", "migrate.sh")
MIGRATIONS = os.path.join(TOP, "deploy", "migrations")


def dsn(db):
    return re.sub(r"dbname=\S+", "dbname=" + db, os.environ["KASIR_PG_DSN"])


@pytest.fixture
def db():
    made = []

    def make():
        name = unique("mig").replace("-", "_").lower()
        psql(f"CREATE DATABASE {name}")
        made.append(name)
        return name
    yield make
    for name in made:
        psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def migrate(database, *args, directory=MIGRATIONS):
    return subprocess.run(["bash", MIGRATE, "--dir", str(directory), *args, dsn(database)],
                          capture_output=True, text=True, timeout=180)


def schema(database):
    out = subprocess.run(["pg_dump", "--schema-only", dsn(database)], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    # pg_dump 15.14+ brackets the dump with a random \restrict key
    return "\n".join(l for l in out.splitlines() if not l.startswith(("\\restrict", "\\unrestrict")))


def scratch_dir(tmp_path):
    d = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, d)
    return d


def test_fresh_and_upgraded_schemas_are_identical(db, tmp_path):
    if subprocess.run(["git", "-C", TOP, "cat-file", "-e", BEFORE_SQUASH + "^{commit}"],
                      capture_output=True).returncode != 0:
        pytest.skip(f"commit {BEFORE_SQUASH} not in this (shallow?) clone")
    old = tmp_path / "old"
    old.mkdir()
    archive = subprocess.run(["git", "-C", TOP, "archive", BEFORE_SQUASH, "deploy/migrations"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
    fresh, upgraded = db(), db()
    r = migrate(fresh)
    assert r.returncode == 0, r.stderr
    # the schema as it was: every old file applied the old way (no checksums recorded)
    r = migrate(upgraded, directory=old / "deploy" / "migrations")
    assert r.returncode == 0, r.stderr
    subprocess.run(["psql", dsn(upgraded), "-qc", "UPDATE schema_migrations SET sha256 = NULL"],
                   check=True, capture_output=True)
    r = migrate(upgraded)
    assert r.returncode == 0, r.stderr
    assert "200_ingress_schema replaces 13 applied migrations" in r.stdout, r.stdout
    assert schema(fresh) == schema(upgraded)
    # and once more: nothing to do
    r = migrate(upgraded)
    assert r.returncode == 0 and "up to date" in r.stdout, r.stdout + r.stderr


def test_edited_applied_migration_is_refused(db, tmp_path):
    d = scratch_dir(tmp_path)
    name = db()
    assert migrate(name, directory=d).returncode == 0
    with open(d / "100_worker_runtime.sql", "a") as f:
        f.write("\n-- a harmless-looking edit\n")
    r = migrate(name, directory=d)
    assert r.returncode == 1
    assert "100_worker_runtime.sql was edited after it was applied" in r.stderr, r.stderr


def test_migration_numbered_below_applied_ones_is_refused(db, tmp_path):
    d = scratch_dir(tmp_path)
    name = db()
    assert migrate(name, directory=d).returncode == 0
    (d / "150_late_arrival.sql").write_text("CREATE TABLE late_arrival (x int);\n")
    r = migrate(name, directory=d)
    assert r.returncode == 1
    assert "150_late_arrival.sql is numbered below migrations already applied" in r.stderr
    assert subprocess.run(["psql", dsn(name), "-qtAc", "SELECT to_regclass('late_arrival')"],
                          capture_output=True, text=True).stdout.strip() == ""
    # above the newest it runs
    (d / "150_late_arrival.sql").rename(d / "999_late_arrival.sql")
    r = migrate(name, directory=d)
    assert r.returncode == 0 and "migration 999_late_arrival" in r.stdout, r.stderr


def test_vanished_file_and_partial_squash_are_refused(db, tmp_path):
    d = scratch_dir(tmp_path)
    name = db()
    (d / "990_a.sql").write_text("CREATE TABLE sq_a (x int);\n")
    (d / "991_b.sql").write_text("CREATE TABLE sq_b (x int);\n")
    assert migrate(name, directory=d).returncode == 0
    (d / "991_b.sql").unlink()
    r = migrate(name, directory=d)
    assert r.returncode == 1 and "991_b is applied in the database but its file is gone" in r.stderr
    # a squash of 990 and 991 plus one that never ran: refused
    (d / "990_a.sql").unlink()
    (d / "992_ab.sql").write_text("-- squashes: 990_a 991_b 989_never\n"
                                  "CREATE TABLE sq_a (x int);\nCREATE TABLE sq_b (x int);\n")
    r = migrate(name, directory=d)
    assert r.returncode == 1 and "only 2 of them are applied" in r.stderr, r.stderr


def test_check_changes_nothing_and_a_failing_file_leaves_nothing(db, tmp_path):
    d = scratch_dir(tmp_path)
    name = db()
    r = migrate(name, "--check", directory=d)
    assert r.returncode == 0 and "migration 001_foundation" in r.stdout
    out = subprocess.run(["psql", dsn(name), "-qtAc", "SELECT count(*) FROM schema_migrations"],
                         capture_output=True, text=True).stdout.strip()
    assert out == "0"
    assert migrate(name, directory=d).returncode == 0
    (d / "998_half.sql").write_text("CREATE TABLE half_done (x int);\nSELECT 1/0;\n")
    r = migrate(name, directory=d)
    assert r.returncode == 1 and "998_half.sql failed; nothing of it was applied" in r.stderr
    q = subprocess.run(["psql", dsn(name), "-qtAc",
                        "SELECT to_regclass('half_done') IS NULL, "
                        "(SELECT count(*) FROM schema_migrations WHERE version = '998_half')"],
                       capture_output=True, text=True).stdout.strip()
    assert q == "t|0", q
