"""005: every SQL function has one home, deploy/migrations/functions/<name>.sql, and its
triggers live with it (the rule in deploy/migrations/README.md).

- Files: no numbered (versioned) migration creates a function, procedure, aggregate or
  trigger, and every functions/ file re-creates the function it is named after
  (CREATE OR REPLACE).
- Database: in a database the runner migrated from scratch, re-running every functions/
  file replaces every function and every trigger of the schema (each one's pg_proc or
  pg_trigger row is written by this transaction), so no function's live body and no
  trigger comes from a versioned file, whatever wrote it (a DO block, an overload of
  another signature). The transaction is rolled back.
Both checks are run on a copy with one thing misplaced too: they must find it."""
import os
import re
import shutil
import subprocess

from conftest import TOP, psql, unique

MIGRATIONS = os.path.join(TOP, "deploy", "migrations")
MIGRATE = os.path.join(TOP, "deploy", "migrate.sh")
CREATE = re.compile(r"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?(FUNCTION|PROCEDURE|AGGREGATE|"
                    r"(?:CONSTRAINT\s+)?TRIGGER)\s+(?:public\.)?\"?(\w+)\"?", re.I | re.M)
REPLACE = r"^\s*CREATE\s+OR\s+REPLACE\s+(?:FUNCTION|PROCEDURE|AGGREGATE)\s+(?:public\.)?%s\s*\("


def strip_comments(sql):
    return re.sub(r"--[^\n]*", "", sql)


def homeless(directory):
    """What breaks the rule in directory: [(file, name, why)]."""
    bad = []
    fdir = os.path.join(directory, "functions")
    for f in sorted(os.listdir(directory)):
        if not re.match(r"^\d+_.*\.sql$", f):
            continue
        with open(os.path.join(directory, f)) as fh:
            for kind, name in CREATE.findall(strip_comments(fh.read())):
                bad.append((f, name, "%s in a versioned file" % kind.upper()))
    for f in sorted(os.listdir(fdir)):
        name = f[:-4]
        with open(os.path.join(fdir, f)) as fh:
            if not re.search(REPLACE % re.escape(name), strip_comments(fh.read()), re.I | re.M):
                bad.append(("functions/" + f, name, "does not CREATE OR REPLACE %s" % name))
    return bad


def test_no_versioned_file_creates_a_function_or_trigger():
    assert homeless(MIGRATIONS) == []


def test_a_function_or_trigger_in_a_versioned_file_is_found(tmp_path):
    d = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, d)
    (d / "990_stray.sql").write_text(
        "CREATE FUNCTION stray() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;\n"
        "CREATE TRIGGER stray_t BEFORE UPDATE ON kasir_instances\n"
        "    FOR EACH ROW EXECUTE FUNCTION stray();\n")
    (d / "functions" / "ledger_extra.sql").write_text("-- names no function\nSELECT 1;\n")
    bad = homeless(str(d))
    assert ("990_stray.sql", "stray", "FUNCTION in a versioned file") in bad, bad
    assert ("990_stray.sql", "stray_t", "TRIGGER in a versioned file") in bad, bad
    assert [b for b in bad if b[0] == "functions/ledger_extra.sql"], bad
    assert len(bad) == 3, bad


def dsn(db):
    return re.sub(r"dbname=\S+", "dbname=" + db, os.environ["KASIR_PG_DSN"])


def not_replaced(directory):
    """The functions of a database migrated from directory that re-running its functions/
    files leaves untouched."""
    db = unique("fnhome").replace("-", "_").lower()
    psql("CREATE DATABASE %s" % db)
    try:
        r = subprocess.run(["bash", MIGRATE, "--dir", str(directory), dsn(db)],
                           capture_output=True, text=True, timeout=180)
        assert r.returncode == 0, r.stdout + r.stderr
        fdir = os.path.join(str(directory), "functions")
        script = ["\\set ON_ERROR_STOP 1", "BEGIN;"]
        script += ["\\i %s" % os.path.join(fdir, f) for f in sorted(os.listdir(fdir))]
        script += ["SELECT p.oid::regprocedure::text FROM pg_proc p "
                   "JOIN pg_namespace n ON n.oid = p.pronamespace "
                   "WHERE n.nspname = 'public' AND p.xmin <> pg_current_xact_id()::xid "
                   "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass "
                   "AND d.objid = p.oid AND d.deptype = 'e') "
                   "UNION ALL SELECT 'trigger ' || t.tgname || ' on ' || t.tgrelid::regclass "
                   "FROM pg_trigger t WHERE NOT t.tgisinternal "
                   "AND t.xmin <> pg_current_xact_id()::xid ORDER BY 1;", "ROLLBACK;"]
        r = subprocess.run(["psql", dsn(db), "-qtAX"], input="\n".join(script) + "\n",
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        return [l for l in r.stdout.splitlines() if l]
    finally:
        psql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % db)


def test_every_live_function_is_its_file(tmp_path):
    assert not_replaced(MIGRATIONS) == []
    d = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, d)
    (d / "990_stray.sql").write_text(
        "CREATE FUNCTION stray() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;\n"
        "CREATE TRIGGER stray_t BEFORE UPDATE ON kasir_instances\n"
        "    FOR EACH ROW EXECUTE FUNCTION stray();\n")
    assert not_replaced(d) == ["stray()", "trigger stray_t on kasir_instances"]
