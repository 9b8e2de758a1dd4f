"""004: the migration runner (deploy/migrate.sh, rules in deploy/migrations/README.md).

The versioned files are squash files that replace the numbered files of commit OLD_FILES
(taken from git history as test data). A database migrated from scratch and one migrated
with the files and runner of OLD_FILES, then upgraded (every squash recorded without
running), end with the same `pg_dump --schema-only` and the same seed rows; the comparison
finds one index, grant or trigger left out of the squash. The runner refuses an edited
applied migration, one numbered below what is applied, a squash of which only some files
are applied (a database from before the newest old file, and a made-up one), a file that
vanished, and a functions/ file that runs after one that does not exist; --check changes
nothing."""
import difflib
import os
import re
import shutil
import subprocess

import pytest

from conftest import TOP, psql, unique

OLD_FILES = "b9ee0ddda4b404b1bcda0d47efbe8d21fbdc2563"
MIGRATE = os.path.join(TOP, "deploy", "migrate.sh")
MIGRATIONS = os.path.join(TOP, "deploy", "migrations")
SQUASHES = ["800_runtime", "810_status_machine", "820_ingress", "830_risk", "840_ledger",
            "850_executor_webhooks", "860_dlq_tools"]
# tables whose rows are part of the schema (filled by the versioned files)
SEEDS = ["kasir_transitions", "ledger_payout_retriable"]


def dsn(db):
    return re.sub(r"dbname=\S+", "dbname=" + db, os.environ["KASIR_PG_DSN"])


def q(database, sql, check=False):
    """psql -c on a scratch database: its output, stripped; check: the statements must
    succeed (ON_ERROR_STOP)."""
    p = subprocess.run(["psql", dsn(database), "-qtAX", "-v", "ON_ERROR_STOP=1", "-c", sql],
                       capture_output=True, text=True, timeout=60)
    assert not check or p.returncode == 0, (sql, p.stderr)
    return p.stdout.strip()


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


def migrate(database, *args, directory=MIGRATIONS, runner=MIGRATE):
    return subprocess.run(["bash", runner, "--dir", str(directory), *args, dsn(database)],
                          capture_output=True, text=True, timeout=180)


def schema(database):
    """The schema as pg_dump writes it, then the seed tables' rows in order."""
    out = subprocess.run(["pg_dump", "--schema-only", dsn(database)], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    # pg_dump 15.14+ brackets the dump with a random \restrict key
    lines = [l for l in out.splitlines() if not l.startswith(("\\restrict", "\\unrestrict"))]
    for t in SEEDS:
        rows = subprocess.run(["psql", dsn(database), "-qtAX", "-c",
                               f"SELECT t::text FROM {t} t ORDER BY 1"],
                              capture_output=True, text=True, timeout=60, check=True).stdout
        lines += ["-- rows of " + t] + rows.splitlines()
    return lines


def schema_diff(a, b):
    return [l for l in difflib.unified_diff(schema(a), schema(b), lineterm="", n=0)
            if l.startswith(("+", "-")) and not l.startswith(("+++", "---"))]


def scratch_dir(tmp_path):
    d = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, d)
    return d


@pytest.fixture
def old_files(tmp_path):
    """The runner and migrations of OLD_FILES: (runner, directory)."""
    if subprocess.run(["git", "-C", TOP, "cat-file", "-e", OLD_FILES + "^{commit}"],
                      capture_output=True).returncode != 0:
        pytest.skip(f"commit {OLD_FILES} not in this (shallow?) clone")
    old = tmp_path / "old"
    old.mkdir()
    archive = subprocess.run(["git", "-C", TOP, "archive", OLD_FILES, "deploy/migrate.sh",
                              "deploy/migrations"], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
    return old / "deploy" / "migrate.sh", old / "deploy" / "migrations"


def test_squash_files_replace_every_old_file_once(old_files):
    _, old_dir = old_files
    old = sorted(f[:-4] for f in os.listdir(old_dir) if re.match(r"^\d+_.*\.sql$", f))
    listed = []
    for v in SQUASHES:
        with open(os.path.join(MIGRATIONS, v + ".sql")) as f:
            listed += re.findall(r"^-- squashes: *(.*)$", f.read(), re.M)[0].split()
    # a file whose changes span two areas (720, 770) is listed by each squash holding part
    assert sorted(set(listed)) == old
    # every file of today is a squash or a later migration (numbered above the squashes,
    # squashing nothing)
    files = sorted(f[:-4] for f in os.listdir(MIGRATIONS) if f.endswith(".sql"))
    assert files[:len(SQUASHES)] == SQUASHES, files
    for v in later_files():
        with open(os.path.join(MIGRATIONS, v + ".sql")) as f:
            assert "-- squashes:" not in f.read(), v


def later_files():
    """The versioned files added after the squash (numbered above its last file)."""
    top = int(SQUASHES[-1].split("_")[0])
    return sorted(f[:-4] for f in os.listdir(MIGRATIONS)
                  if re.match(r"^\d+_.*\.sql$", f) and int(f.split("_")[0]) > top)


def test_fresh_and_upgraded_schemas_are_identical(db, old_files):
    old_runner, old_dir = old_files
    fresh, upgraded = db(), db()
    r = migrate(fresh)
    assert r.returncode == 0, r.stderr
    r = migrate(upgraded, directory=old_dir, runner=old_runner)
    assert r.returncode == 0, r.stderr
    r = migrate(upgraded)
    assert r.returncode == 0, r.stderr
    for v in SQUASHES:
        assert re.search(rf"^migrate: {v} replaces \d+ applied migrations: recorded, not run$",
                         r.stdout, re.M), r.stdout
    # no squash runs on the upgraded database; only the files added after it do
    ran = re.findall(r"^migrate: migration (\S+)$", r.stdout, re.M)
    assert ran == later_files(), r.stdout
    assert schema_diff(fresh, upgraded) == []
    # and once more: nothing to do
    r = migrate(upgraded)
    assert r.returncode == 0 and "up to date" in r.stdout, r.stdout + r.stderr


def test_comparison_finds_an_index_a_grant_and_a_trigger_left_out(db, tmp_path):
    """What the test above relies on: a squash missing one index, one grant, one trigger
    migrates fine from scratch, and the comparison names each of them."""
    d = scratch_dir(tmp_path)
    drops = [("850_executor_webhooks.sql",
              "CREATE INDEX executor_attempts_object ON executor_attempts (object_id, kind);\n"),
             ("840_ledger.sql", "GRANT UPDATE (queued_at) ON ledger_unpublished TO kasir_ledger;\n"),
             ("functions/webhook_operations_final.sql",
              "CREATE OR REPLACE TRIGGER webhook_operations_final BEFORE UPDATE OF status ON "
              "webhook_operations\n    FOR EACH ROW EXECUTE FUNCTION webhook_operations_final();\n")]
    for f, text in drops:
        sql = (d / f).read_text()
        assert text in sql, (f, text)
        (d / f).write_text(sql.replace(text, ""))
    full, short = db(), db()
    assert migrate(full).returncode == 0
    r = migrate(short, directory=d)
    assert r.returncode == 0, r.stderr
    diff = schema_diff(full, short)
    assert [l for l in diff if "executor_attempts_object" in l], diff
    assert [l for l in diff if "GRANT UPDATE(queued_at)" in l], diff
    assert [l for l in diff if "TRIGGER webhook_operations_final" in l], diff
    assert all(l.startswith("-") for l in diff), diff


def test_database_from_before_the_newest_old_file_is_refused(db, old_files, tmp_path):
    old_runner, old_dir = old_files
    os.unlink(old_dir / "760_ingress_unresolved_payments.sql")
    name = db()
    assert migrate(name, directory=old_dir, runner=old_runner).returncode == 0
    r = migrate(name)
    assert r.returncode == 1
    assert ("820_ingress squashes 4 migrations but only 3 of them are applied here: "
            "upgrade with the release before the squash first") in r.stderr, r.stderr
    # refused whole: the squashes before 820 are not recorded either
    assert "recorded" not in r.stdout, r.stdout
    rows = subprocess.run(["psql", dsn(name), "-qtAc",
                           "SELECT count(*) FROM schema_migrations WHERE version LIKE '8%'"],
                          capture_output=True, text=True).stdout.strip()
    assert rows == "0", rows


def test_edited_applied_migration_is_refused(db, tmp_path):
    d = scratch_dir(tmp_path)
    name = db()
    assert migrate(name, directory=d).returncode == 0
    with open(d / "800_runtime.sql", "a") as f:
        f.write("\n-- a harmless-looking edit\n")
    r = migrate(name, directory=d)
    assert r.returncode == 1
    assert "800_runtime.sql was edited after it was applied" in r.stderr, r.stderr


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
    assert r.returncode == 0 and "migration 800_runtime" in r.stdout
    # --check creates nothing, not even the runner's own tables (test 006)
    out = subprocess.run(["psql", dsn(name), "-qtAc", "SELECT to_regclass('schema_migrations') IS NULL"],
                         capture_output=True, text=True).stdout.strip()
    assert out == "t"
    assert migrate(name, directory=d).returncode == 0
    (d / "998_half.sql").write_text("CREATE TABLE half_done (x int);\nSELECT 1/0;\n")
    r = migrate(name, directory=d)
    assert r.returncode == 1 and "998_half.sql failed; nothing of it was applied" in r.stderr
    q = subprocess.run(["psql", dsn(name), "-qtAc",
                        "SELECT to_regclass('half_done') IS NULL, "
                        "(SELECT count(*) FROM schema_migrations WHERE version = '998_half')"],
                       capture_output=True, text=True).stdout.strip()
    assert q == "t|0", q


def test_functions_run_after_what_they_name(db, tmp_path):
    d = scratch_dir(tmp_path)
    # z_first sorts last but is needed by a_second's body (a SQL function is checked when
    # it is created): the runner runs it first
    (d / "functions" / "z_first.sql").write_text(
        "CREATE OR REPLACE FUNCTION z_first() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;\n")
    (d / "functions" / "a_second.sql").write_text(
        "-- after: z_first\n"
        "CREATE OR REPLACE FUNCTION a_second() RETURNS int LANGUAGE sql AS $$ SELECT z_first() $$;\n")
    name = db()
    r = migrate(name, directory=d)
    assert r.returncode == 0, r.stderr
    assert r.stdout.index("function z_first") < r.stdout.index("function a_second"), r.stdout
    (d / "functions" / "a_second.sql").write_text(
        "-- after: z_gone\n"
        "CREATE OR REPLACE FUNCTION a_second() RETURNS int LANGUAGE sql AS $$ SELECT 2 $$;\n")
    r = migrate(name, directory=d)
    assert r.returncode == 1
    assert "functions/a_second.sql runs after z_gone, which has no functions/z_gone.sql" in r.stderr
