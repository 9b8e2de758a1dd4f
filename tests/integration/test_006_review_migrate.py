"""006: a hostile review of the migration runner (deploy/migrate.sh) as a careless operator and
a production deploy would meet it. Each test failed on the runner as merged:

- --check created the runner's two tables on a fresh database;
- a typo in a functions/ `-- after:` line was refused only after the pending versioned files
  had been committed (the plan was not checked whole);
- a functions/ file that failed left the files before it applied (a half-replaced set);
- a pending file with the newest applied number and a name sorting before it ran after it
  here and before it on a fresh database;
- a function dropped by hand was not noticed (its file's bytes had not changed);
- a migrations directory whose path holds a space was recorded whole as applied and none of
  it ran (psql's \\i read the path up to the space; its "No such file" is no "ERROR:");
- a header line behind a CR or a byte order mark was misread;
- a versioned file wrapped in its own BEGIN/COMMIT that failed was recorded as applied (its
  COMMIT ended the runner's transaction, the row was inserted in autocommit): never run again;
- a DSN with a password was passed on (ps shows it) and, malformed, quoted in psql's error;
- kasir_ledger could INSERT, UPDATE and DELETE the rows of kasir_transitions (910);
- a migrations role that is no superuser could not give the functions that run as their
  owner to kasir_definer and kasir_ledger_guard (953: they need CREATE on the schema for it).
Two held already and stay as regressions: a psql session killed mid-run is a failure (it was,
by way of a later step's failing redirection; now the step itself says so), and two runners at
once apply each file once."""
import os
import re
import shutil
import signal
import subprocess
import time

from conftest import psql, unique
from test_004_migrations import MIGRATE, dsn, db, migrate, q, scratch_dir  # noqa: F401 (fixture)


def test_check_creates_nothing(db):
    name = db()
    r = migrate(name, "--check")
    assert r.returncode == 0 and "migration 800_runtime" in r.stdout, r.stderr
    assert q(name, "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace") == "0"


def test_a_bad_after_line_is_refused_before_anything_runs(db, tmp_path):
    d = scratch_dir(tmp_path)
    name = db()
    assert migrate(name, directory=d).returncode == 0
    (d / "990_new.sql").write_text("CREATE TABLE review_new (x int);\n")
    (d / "functions" / "review_f.sql").write_text(
        "-- after: review_typo\n"
        "CREATE OR REPLACE FUNCTION review_f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;\n")
    r = migrate(name, directory=d)
    assert r.returncode == 1 and "runs after review_typo" in r.stderr, r.stderr
    assert q(name, "SELECT to_regclass('review_new') IS NULL, "
                   "(SELECT count(*) FROM schema_migrations WHERE version = '990_new')") == "t|0"


def test_a_failing_function_file_leaves_every_function_as_it_was(db, tmp_path):
    d = scratch_dir(tmp_path)
    fn = d / "functions"
    (fn / "review_a.sql").write_text(
        "CREATE OR REPLACE FUNCTION review_a() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;\n")
    (fn / "review_b.sql").write_text(
        "CREATE OR REPLACE FUNCTION review_b() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;\n")
    name = db()
    assert migrate(name, directory=d).returncode == 0
    # a release changes both; the second does not apply
    (fn / "review_a.sql").write_text(
        "CREATE OR REPLACE FUNCTION review_a() RETURNS int LANGUAGE sql AS $$ SELECT 2 $$;\n")
    (fn / "review_b.sql").write_text(
        "CREATE OR REPLACE FUNCTION review_b() RETURNS int LANGUAGE sql AS $$ SELECT nope() $$;\n")
    r = migrate(name, directory=d)
    assert r.returncode == 1 and "functions/review_b.sql failed" in r.stderr, r.stderr
    assert q(name, "SELECT review_a()") == "1"
    # fixed: the next run applies both
    (fn / "review_b.sql").write_text(
        "CREATE OR REPLACE FUNCTION review_b() RETURNS int LANGUAGE sql AS $$ SELECT 2 $$;\n")
    r = migrate(name, directory=d)
    assert r.returncode == 0, r.stderr
    assert "function review_a" in r.stdout and "function review_b" in r.stdout
    assert q(name, "SELECT review_a() + review_b()") == "4"


def _children(pid):
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open("/proc/%s/stat" % p) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                with open("/proc/%s/comm" % p) as f:
                    comm = f.read().strip()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append((int(p), comm))
    return out


def test_a_session_lost_mid_run_is_not_success(db, tmp_path):
    d = scratch_dir(tmp_path)
    name = db()
    assert migrate(name, directory=d).returncode == 0
    (d / "functions" / "zz_review_slow.sql").write_text(
        "SELECT pg_sleep(20);\n"
        "CREATE OR REPLACE FUNCTION zz_review_slow() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;\n")
    p = subprocess.Popen(["bash", MIGRATE, "--dir", str(d), dsn(name)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(200):
            if q(name, "SELECT count(*) FROM pg_stat_activity "
                       "WHERE query LIKE 'SELECT pg_sleep(20)%'") == "1":
                break
            time.sleep(0.05)
        kids = [pid for pid, comm in _children(p.pid) if comm == "psql"]
        assert len(kids) == 1, _children(p.pid)
        os.kill(kids[0], signal.SIGKILL)  # the connection is lost with it
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 1, (out, err)
    assert "session ended" in err, err
    assert q(name, "SELECT count(*) FROM schema_functions WHERE name = 'zz_review_slow'") == "0"


def test_a_file_sorting_before_the_newest_applied_is_refused(db, tmp_path):
    d = scratch_dir(tmp_path)
    name = db()
    (d / "990_b.sql").write_text("CREATE TABLE review_b (x int);\n")
    assert migrate(name, directory=d).returncode == 0
    # a fresh database runs 990_a before 990_b; this one would run it after
    (d / "990_a.sql").write_text("ALTER TABLE review_b ADD COLUMN y int;\n")
    r = migrate(name, directory=d)
    assert r.returncode == 1 and "990_a.sql is numbered below" in r.stderr, r.stderr


def test_a_function_dropped_by_hand_is_restored(db):
    name = db()
    assert migrate(name).returncode == 0
    q(name, "DROP FUNCTION ledger_settle")
    r = migrate(name)
    assert r.returncode == 0 and "function ledger_settle" in r.stdout, (r.stdout, r.stderr)
    assert q(name, "SELECT count(*) FROM pg_proc WHERE proname = 'ledger_settle'") == "1"


def test_a_directory_with_a_space_and_a_quote(db, tmp_path):
    d = tmp_path / "kasir's deploy" / "migrations"
    shutil.copytree(scratch_dir(tmp_path), d)
    name = db()
    r = migrate(name, directory=d)
    assert r.returncode == 0, r.stderr
    # psql's \\i read the path up to the space and said "No such file" without "ERROR:": every
    # file was recorded as applied and none had run
    assert q(name, "SELECT to_regclass('ledger_entries') IS NOT NULL, "
                   "(SELECT count(*) > 30 FROM pg_proc WHERE pronamespace = 'public'::regnamespace)") == "t|t"


def test_crlf_and_bom_headers_are_refused(db, tmp_path):
    d = scratch_dir(tmp_path)
    name = db()
    (d / "functions" / "z_first.sql").write_text(
        "CREATE OR REPLACE FUNCTION z_first() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;\n")
    (d / "functions" / "a_second.sql").write_bytes(
        b"-- after: z_first\r\n"
        b"CREATE OR REPLACE FUNCTION a_second() RETURNS int LANGUAGE sql AS $$ SELECT z_first() $$;\r\n")
    r = migrate(name, directory=d)
    assert r.returncode == 1 and "functions/a_second.sql has CR line ends" in r.stderr, r.stderr
    (d / "functions" / "a_second.sql").write_bytes(
        b"\xef\xbb\xbf-- after: z_first\n"
        b"CREATE OR REPLACE FUNCTION a_second() RETURNS int LANGUAGE sql AS $$ SELECT z_first() $$;\n")
    r = migrate(name, directory=d)
    assert r.returncode == 1 and "functions/a_second.sql starts with a byte order mark" in r.stderr, r.stderr
    assert q(name, "SELECT to_regclass('schema_migrations') IS NULL OR "
                   "(SELECT count(*) = 0 FROM schema_migrations)") == "t"


def test_two_runners_at_once(db):
    name = db()
    ps = [subprocess.Popen(["bash", MIGRATE, dsn(name)], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=180) for p in ps]
    assert [p.returncode for p in ps] == [0, 0], outs
    ran = [o for o, _ in outs if "migration 800_runtime" in o]
    assert len(ran) == 1, outs  # the second waited for the first, then found nothing to do
    assert any("the database is up to date" in o for o, _ in outs), outs


def test_a_file_ending_the_runners_transaction_is_not_recorded(db, tmp_path):
    d = scratch_dir(tmp_path)
    name = db()
    assert migrate(name, directory=d).returncode == 0
    # the habit of wrapping a migration in BEGIN/COMMIT, and a statement that fails
    (d / "990_wrapped.sql").write_text(
        "BEGIN;\nCREATE TABLE review_w (x int);\nCREATE INDEX ON review_w (nope);\nCOMMIT;\n")
    for _ in range(2):
        r = migrate(name, directory=d)
        assert r.returncode == 1, (r.stdout, r.stderr)
        assert "990_wrapped.sql ends the runner's transaction itself" in r.stderr, r.stderr
        assert q(name, "SELECT count(*) FROM schema_migrations WHERE version = '990_wrapped'") == "0"
    (d / "990_wrapped.sql").write_text("CREATE TABLE review_w (x int);\n")
    assert migrate(name, directory=d).returncode == 0
    # the same in functions/: the file is named, nothing after its COMMIT is recorded
    (d / "functions" / "review_c.sql").write_text(
        "COMMIT;\n"
        "CREATE OR REPLACE FUNCTION review_c() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;\n")
    r = migrate(name, directory=d)
    assert r.returncode == 1 and "functions/review_c.sql ends the runner's transaction" in r.stderr, r.stderr
    assert q(name, "SELECT count(*) FROM schema_functions WHERE name = 'review_c'") == "0"


def test_a_dsn_with_a_password_is_refused_and_not_echoed():
    base = dsn("kasir_no_such_db")
    for bad in (base + " password=se cret", "postgresql://u:se%ZZcret@127.0.0.1:1/x",
                "postgresql://u@127.0.0.1:1/x?Password=secret"):
        r = subprocess.run(["bash", MIGRATE, bad], capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and "PGPASSWORD" in r.stderr, (bad, r.stdout, r.stderr)
        assert "cret" not in r.stdout + r.stderr, r.stderr


def test_the_ledger_role_cannot_change_the_status_machine():
    rows = psql("SELECT has_table_privilege('kasir_ledger', 'kasir_transitions', 'SELECT'), "
                "has_table_privilege('kasir_ledger', 'kasir_transitions', 'INSERT'), "
                "has_table_privilege('kasir_ledger', 'kasir_transitions', 'UPDATE'), "
                "has_table_privilege('kasir_ledger', 'kasir_transitions', 'DELETE'), "
                "has_table_privilege('kasir_ledger', 'kasir_transitions', 'TRUNCATE')")
    assert rows == [["t", "f", "f", "f", "f"]]


def test_a_migrations_role_that_is_no_superuser():
    """Production runs the migrations as the schema's owner, seldom a superuser (a managed
    PostgreSQL has none): a role with CREATEROLE that owns the database and its schema
    migrates a fresh one, and the functions that run as their owner end with kasir_definer or
    kasir_ledger_guard (migration 953), which keep no CREATE on the schema. Failed before:
    giving a function to a role needs that role to be able to create in the schema, unless a
    superuser does it ('permission denied for schema public')."""
    role = unique("migrator").replace("-", "_").lower()
    name = unique("mig").replace("-", "_").lower()
    psql(f"CREATE ROLE {role} LOGIN CREATEROLE")
    try:
        psql(f"CREATE DATABASE {name} OWNER {role}")
        subprocess.run(["psql", dsn(name), "-qc", f"ALTER SCHEMA public OWNER TO {role}"],
                       check=True, capture_output=True, timeout=60)
        as_owner = re.sub(r"user=\S+", "user=" + role, dsn(name))
        r = subprocess.run(["bash", MIGRATE, as_owner], capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        assert q(name, "SELECT tableowner FROM pg_tables "
                       "WHERE tablename = 'ledger_entries'") == role
        assert q(name, "SELECT count(*) FROM pg_proc WHERE prosecdef AND proowner NOT IN "
                       "('kasir_definer'::regrole, 'kasir_ledger_guard'::regrole)") == "0"
        assert q(name, "SELECT count(*) > 0 FROM pg_proc WHERE prosecdef") == "t"
        for owner in ("kasir_definer", "kasir_ledger_guard"):
            assert q(name, "SELECT has_schema_privilege('%s', 'public', 'CREATE')" % owner) == "f"
        # and their privileges in that database carry a posting: an entry point, the
        # triggers' balances and the COMMIT check, as the migrations' role calls it
        post = subprocess.run(["psql", as_owner, "-v", "ON_ERROR_STOP=1", "-qtAX", "-c",
                               "SELECT ledger_settle('t006', 'sandbox', 'IDR', 1000, 10)"],
                              capture_output=True, text=True, timeout=60)
        assert post.returncode == 0 and post.stdout.strip().isdigit(), post.stderr
        assert q(name, "SELECT sum(balance_minor) FROM ledger_balances") == "0"
        assert q(name, "SELECT count(*) FROM ledger_balances WHERE balance_minor <> 0") == "3"
    finally:
        psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        psql(f"DROP ROLE IF EXISTS {role}")


def test_a_functions_owner_lent_to_another_role_is_refused(db):
    """Roles are the cluster's: 953 does not take a kasir_ledger_guard or kasir_definer that
    lends its rights to another role (a member of the trigger functions' owner may drop them,
    and the ledger's triggers with them) or holds another role's; it stops, naming it."""
    role = unique("lent").replace("-", "_").lower()
    psql(f"CREATE ROLE {role} LOGIN")
    try:
        for grant, why in ((f"GRANT kasir_ledger_guard TO {role}", "members other than"),
                           ("GRANT pg_read_all_data TO kasir_definer", "is a member of")):
            psql(grant)
            try:
                r = migrate(db())
                assert r.returncode != 0 and why in r.stdout + r.stderr, r.stdout + r.stderr
            finally:
                psql(grant.replace("GRANT", "REVOKE").replace(" TO ", " FROM "))
        assert migrate(db()).returncode == 0
    finally:
        psql(f"DROP ROLE IF EXISTS {role}")


def _refuses_other_indexes(db, tmp_path, version, index, bads, message, kept=None):
    """A database migrated up to before version; each of bads (an index of the name index
    that is something else) makes version refuse to run, naming it with message, and leaves
    it unrecorded (and the index kept, when given, in place). The database's name and a
    function running SQL on it."""
    d = scratch_dir(tmp_path)
    for f in d.glob("*.sql"):
        if int(f.name.split("_")[0]) >= int(version.split("_")[0]):
            f.unlink()
    name = db()
    assert migrate(name, directory=d).returncode == 0

    def run(sql):
        return q(name, sql, check=True)

    for bad in bads:
        run("DROP INDEX IF EXISTS %s; %s" % (index, bad))
        r = migrate(name)
        assert r.returncode == 1 and message in r.stderr, (bad, r.stdout, r.stderr)
        assert run("SELECT count(*) FROM schema_migrations WHERE version = '%s'"
                   % version) == "0", bad
        if kept:
            assert run("SELECT to_regclass('%s') IS NOT NULL" % kept) == "t", bad
    return name, run


def test_954_checks_an_expiry_index_built_before_it(db, tmp_path):
    """954's header tells an operator to build idempotency_keys_expiry CONCURRENTLY first on
    a large table. Its CREATE INDEX IF NOT EXISTS then skipped whatever had that name: an
    invalid index that a failed CONCURRENTLY left, or one on another column, was taken for
    the B-tree and the BRIN index dropped, and every purge read the whole table."""
    name, run = _refuses_other_indexes(
        db, tmp_path, "954_idempotency_expiry_btree", "idempotency_keys_expiry",
        ("CREATE INDEX idempotency_keys_expiry ON idempotency_keys (created_at)",
         "CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at) "
         "WHERE state = 'completed'",
         "CREATE INDEX idempotency_keys_expiry ON idempotency_keys ((lower(route)))",
         "CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at) INCLUDE (state)",
         "CREATE INDEX idempotency_keys_expiry ON idempotency_keys USING brin (expires_at)",
         # what a CREATE INDEX CONCURRENTLY that failed leaves
         "CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at); "
         "UPDATE pg_index SET indisvalid = false "
         "WHERE indexrelid = 'idempotency_keys_expiry'::regclass"),
        "not a valid B-tree", kept="idempotency_keys_expiry_brin")
    run("DROP INDEX idempotency_keys_expiry")
    run("CREATE INDEX CONCURRENTLY idempotency_keys_expiry ON idempotency_keys (expires_at)")
    r = migrate(name)
    assert r.returncode == 0, r.stderr
    assert run("SELECT to_regclass('idempotency_keys_expiry_brin') IS NULL, "
               "(SELECT indisvalid FROM pg_index "
               "WHERE indexrelid = 'idempotency_keys_expiry'::regclass)") == "t|t"


def test_956_checks_a_posted_at_index_built_before_it(db, tmp_path):
    """956's header, like 954's, tells an operator to build ledger_entries_posted
    CONCURRENTLY first on a large table: anything else of that name (a failed CONCURRENTLY's
    invalid index, a B-tree, another column, no autosummarize) is refused, not taken for
    the BRIN index the audit export needs."""
    name, run = _refuses_other_indexes(
        db, tmp_path, "956_ledger_entries_posted_brin", "ledger_entries_posted",
        ("CREATE INDEX ledger_entries_posted ON ledger_entries (posted_at)",
         "CREATE INDEX ledger_entries_posted ON ledger_entries USING brin (entry_id) "
         "WITH (autosummarize = on)",
         "CREATE INDEX ledger_entries_posted ON ledger_entries USING brin (posted_at)",
         "CREATE INDEX ledger_entries_posted ON ledger_entries USING brin (posted_at) "
         "WITH (autosummarize = on) WHERE partner_id IS NOT NULL",
         # a bloom class: equality only, no range
         "CREATE INDEX ledger_entries_posted ON ledger_entries "
         "USING brin (posted_at timestamptz_bloom_ops) WITH (autosummarize = on)",
         # what a CREATE INDEX CONCURRENTLY that failed leaves
         "CREATE INDEX ledger_entries_posted ON ledger_entries USING brin (posted_at) "
         "WITH (autosummarize = on); UPDATE pg_index SET indisvalid = false "
         "WHERE indexrelid = 'ledger_entries_posted'::regclass"),
        "not a valid BRIN index")
    run("DROP INDEX ledger_entries_posted")
    # autosummarize however it was spelled (PostgreSQL keeps the option as written)
    run("CREATE INDEX CONCURRENTLY ledger_entries_posted ON ledger_entries "
        "USING brin (posted_at) WITH (autosummarize = true)")
    assert migrate(name).returncode == 0
    assert run("SELECT count(*) FROM schema_migrations "
               "WHERE version = '956_ledger_entries_posted_brin'") == "1"
