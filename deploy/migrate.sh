#!/usr/bin/env bash
# kasir database migrations: the one runner, for the local stack and a production database
# alike (it needs bash, psql and sha256sum, nothing from the local stack).
#
#   deploy/migrate.sh [--check] [--dir DIR] DSN
#
# DSN is a libpq connection string or URI (the role must own the schema). --check reports
# what would run and refuses what would be refused, and changes nothing (it does not even
# create the runner's tables). A DSN holding a password is refused (exit 2): it would be on
# the command line of this script and of psql; give it in PGPASSWORD or ~/.pgpass.
# Exit 0 done (or nothing to do), 1 refused or failed (the message says which file and
# why), 2 bad usage.
#
# The rules (deploy/migrations/README.md says them for people writing migrations):
# - Versioned files DIR/NNN_name.sql run once each, in the order of NNN, each in its own
#   transaction together with its row in schema_migrations (version, sha256).
# - An applied file whose bytes changed is refused: applied SQL is history, a change is a
#   new file. A new file numbered below the newest applied one is refused too, so a fresh
#   database and an upgraded one always apply the same files in the same order.
# - A squash file says which applied files it replaces in a header line
#   `-- squashes: 200_a 201_b ...`: on a database that applied all of them it is recorded
#   without running (their rows stay, as history); on one that applied none it runs; on one
#   that applied some, it is refused (upgrade with the release before the squash first).
# - Repeatable files DIR/functions/<name>.sql hold SQL functions (CREATE OR REPLACE), one
#   home each (with its triggers); they run after the versioned files, in name order but
#   each after the files its `-- after: <name> ...` header line names, and again whenever
#   their bytes change or the function <name> is missing (dropped by hand). The changed
#   ones run in one transaction: all of them are applied or none is.
# - Everything is checked before anything is written: the versioned plan, the -- after:
#   lines, file names (letters, digits, _), no empty file, no CR, no byte order mark.
# - Whether a step committed is read back from the database, not from psql's messages; a
#   file that ends the runner's transaction (its own COMMIT/ROLLBACK) is refused, unrecorded.
# - One runner at a time: a session advisory lock is held for the whole run.
set -euo pipefail

dir=$(cd "$(dirname "$0")" && pwd)/migrations
check=0
while [ $# -gt 0 ]; do
    case "$1" in
    --check) check=1; shift ;;
    --dir) dir=${2:?--dir needs a directory}; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "migrate: unknown option $1" >&2; exit 2 ;;
    *) break ;;
    esac
done
[ $# -eq 1 ] || { echo "usage: migrate.sh [--check] [--dir DIR] DSN" >&2; exit 2; }
dsn=$1
# A password in the DSN would be on the command line of this script and of psql (ps shows
# it to every user of the machine), and libpq quotes pieces of a DSN it cannot parse in its
# error message: refused, it belongs in PGPASSWORD or ~/.pgpass.
if [[ ${dsn,,} == *password=* || $dsn =~ ^[A-Za-z]+://[^/@?]*:[^/@?]*@ ]]; then
    echo "migrate: refused: the DSN holds a password; give it in PGPASSWORD or ~/.pgpass" >&2
    exit 2
fi
[ -d "$dir" ] || { echo "migrate: $dir is not a directory" >&2; exit 2; }

say() { printf 'migrate: %s\n' "$*"; }
refuse() { printf 'migrate: refused: %s\n' "$*" >&2; exit 1; }

# Connection problems are reported by psql itself, before the session starts.
PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-10} psql "$dsn" -qtAX -c 'SELECT 1' >/dev/null ||
    { echo "migrate: cannot connect to the database" >&2; exit 1; }

# One psql session for the whole run, fed through a coprocess, so the advisory lock lives
# as long as the run. Each request ends with a marker line; answers are read up to it.
coproc PSQL { PGOPTIONS="-c client_min_messages=warning" PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-10} \
    exec psql "$dsn" -v ON_ERROR_STOP=0 -qtAX 2>&1; }
psql_pid=$PSQL_PID # bash unsets PSQL_PID once the coprocess has exited
mark="--kasir-migrate-$$-$RANDOM--"
# q SQL: runs SQL in the session; the answer rows land in $ans (callers exit 1 on a failure:
# exit 2 is for bad usage). Returns 1 when the answer
# holds an ERROR, 2 when the session ended before answering (psql killed, the connection
# lost: psql then prints no ERROR line, and an answer cut short must not pass for success).
q() {
    ans=""
    local line seen=0 out=${PSQL[1]:-} in=${PSQL[0]:-}
    [ -n "$out" ] && printf '%s\n;\n\\echo %s\n' "$1" "$mark" >&"$out" 2>/dev/null ||
        { echo "migrate: the psql session ended (cannot connect?)" >&2; return 2; }
    while IFS= read -r line <&"$in" 2>/dev/null; do
        [ "$line" = "$mark" ] && { seen=1; break; }
        ans+="$line"$'\n'
    done
    ans=${ans%$'\n'}
    if [ $seen -eq 0 ]; then
        printf 'migrate: the psql session ended before it answered%s\n' "${ans:+: $ans}" >&2
        return 2
    fi
    if grep -q -E '^(psql:.*)?(ERROR|FATAL):' <<<"$ans"; then
        printf 'migrate: %s\n' "$ans" >&2
        return 1
    fi
}
# sqlpath FILE: FILE as a quoted argument of psql's \i (a directory may hold a space or a quote)
sqlpath() { printf "'%s'" "${1//\'/\'\'}"; }
trap '' PIPE
q "SELECT 1" || { echo "migrate: cannot connect to the database${ans:+: $ans}" >&2; exit 1; }
q "SELECT pg_try_advisory_lock(hashtext('kasir-migrate'))" || exit 1
if [ "$ans" != t ]; then
    # another runner, or the psql session a killed one left finishing its file
    say "another runner holds the migration lock: waiting for it"
    q "SELECT pg_advisory_lock(hashtext('kasir-migrate'))" || exit 1
fi

# The runner's own tables. --check creates nothing: on a database without them, nothing is
# applied yet.
if [ $check -eq 0 ]; then
    q "CREATE TABLE IF NOT EXISTS schema_migrations (
           version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now(), sha256 text);
       CREATE TABLE IF NOT EXISTS schema_functions (
           name text PRIMARY KEY, sha256 text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())" || exit 1
fi
q "SELECT (to_regclass('schema_migrations') IS NOT NULL)::int, (to_regclass('schema_functions') IS NOT NULL)::int" || exit 1
read -r have_mig have_fn <<<"${ans//|/ }"

declare -A applied_sum=()
if [ "$have_mig" = 1 ]; then
    q "SELECT version || ' ' || coalesce(sha256, '-') FROM schema_migrations" || exit 1
    while read -r v s; do [ -n "$v" ] && applied_sum[$v]=$s; done <<<"$ans"
fi

num() { printf '%d' "$((10#${1%%_*}))"; }
# whether name $1 comes before name $2 in byte order (the order files of one number run in)
c_before() { [ "$1" != "$2" ] && [ "$(printf '%s\n%s\n' "$1" "$2" | LC_ALL=C sort | head -1)" = "$1" ]; }
# the newest applied file: the highest number, and of those the last name in byte order
newest=-1 newest_v=""
for v in "${!applied_sum[@]}"; do
    [[ $v =~ ^[0-9]+_ ]] || continue
    n=$(num "$v")
    if [ "$n" -gt "$newest" ]; then
        newest=$n newest_v=$v
    elif [ "$n" -eq "$newest" ] && c_before "$newest_v" "$v"; then
        newest_v=$v
    fi
done

# Files in order of their number, then of their name in byte order (the same on every
# machine, whatever its locale).
mapfile -t files < <(find "$dir" -maxdepth 1 -name '[0-9]*_*.sql' -printf '%f\n' | LC_ALL=C sort -t_ -k1,1n -k2)
mapfile -t fn_files < <(find "$dir/functions" -maxdepth 1 -name '*.sql' -printf '%f\n' 2>/dev/null | LC_ALL=C sort)

# What the header lines cannot be read from is refused before anything runs: a CR (a file
# saved with CRLF line ends: `-- after: a\r` names no file), a byte order mark (a header on
# the first line would not be seen), an empty file (a function emptied to drop it would be
# recorded and dropped nowhere); and a name that is not letters, digits and _ (the name is
# written into SQL and into psql's \i).
for f in "${files[@]}" "${fn_files[@]/#/functions/}"; do
    [[ $f =~ ^(functions/)?[A-Za-z0-9_]+\.sql$ ]] ||
        refuse "$f: a migration's name is letters, digits and _ only"
    [ -s "$dir/$f" ] || refuse "$f is empty"
    ! LC_ALL=C grep -q $'\r' "$dir/$f" ||
        refuse "$f has CR line ends (saved with CRLF?): save it with LF line ends"
    [ "$(head -c 3 "$dir/$f" | od -An -tx1 | tr -d ' \n')" != efbbbf ] ||
        refuse "$f starts with a byte order mark: save it as UTF-8 without one"
done

declare -A on_disk=() squashed_by=()
for f in "${files[@]}"; do
    v=${f%.sql}
    on_disk[$v]=1
    for s in $(sed -n 's/^-- squashes: *//p' "$dir/$f"); do squashed_by[$s]=$v; done
done

# Nothing applied may have changed or gone (unless a squash replaced it).
for v in "${!applied_sum[@]}"; do
    if [ -z "${on_disk[$v]:-}" ]; then
        [ -n "${squashed_by[$v]:-}" ] && continue
        refuse "migration $v is applied in the database but its file is gone from $dir and no squash there lists it"
    fi
    s=$(sha256sum "$dir/$v.sql" | cut -c1-64)
    [ "$s" = "${applied_sum[$v]}" ] ||
        refuse "$v.sql was edited after it was applied (sha256 ${applied_sum[$v]:0:12}... applied, ${s:0:12}... on disk): applied SQL is history; put the change in a new migration"
done

# The plan, checked whole before anything is written: a refusal leaves the database as it
# was (no squash recorded, no versioned file run before a later one or a functions/ header
# is refused).
plan=()
for f in "${files[@]}"; do
    v=${f%.sql}
    [ -n "${applied_sum[$v]:-}" ] && continue
    s=$(sha256sum "$dir/$f" | cut -c1-64)
    replaces=$(sed -n 's/^-- squashes: *//p' "$dir/$f" | tr '\n' ' ')
    if [ -n "${replaces// }" ]; then
        have=0 total=0
        for r in $replaces; do
            total=$((total + 1))
            [ -n "${applied_sum[$r]:-}" ] && have=$((have + 1))
        done
        if [ "$have" -eq "$total" ]; then
            plan+=("record $v $s $total")
            applied_sum[$v]=$s
            continue
        elif [ "$have" -gt 0 ]; then
            refuse "$v squashes $total migrations but only $have of them are applied here: upgrade with the release before the squash first"
        fi
    fi
    n=$(num "$v")
    # a pending file sorting before the newest applied one (a lower number, or the same
    # number and a name before it) would run after it here and before it on a fresh database
    if [ "$n" -lt "$newest" ] || { [ "$n" -eq "$newest" ] && c_before "$v" "$newest_v"; }; then
        refuse "$f is numbered below migrations already applied (newest $newest_v): a fresh and this database would apply them in different orders; give it a number above $newest"
    fi
    plan+=("run $v $s")
    applied_sum[$v]=$s
    newest=$n newest_v=$v
done

# Repeatable files: a function's one home, re-applied when its bytes change or when the
# function it is named after is missing (dropped by hand). In name order, except that a file
# runs after the files its header names in `-- after: <name>...` (what PostgreSQL checks at
# creation: an aggregate's state function, the functions a SQL function's body calls).
declare -A fn_sum=() fn_after=() placed=()
if [ "$have_fn" = 1 ]; then
    q "SELECT f.name || ' ' || f.sha256 FROM schema_functions f
        WHERE EXISTS (SELECT 1 FROM pg_proc p
                       WHERE p.proname = f.name AND pg_function_is_visible(p.oid))" || exit 1
    while read -r v s; do [ -n "$v" ] && fn_sum[$v]=$s; done <<<"$ans"
fi
for f in "${fn_files[@]}"; do
    fn_after[${f%.sql}]=$(sed -n 's/^-- after: *//p' "$dir/functions/$f" | tr '\n' ' ')
done
fn_order=()
while [ ${#fn_order[@]} -lt ${#fn_files[@]} ]; do
    progress=0
    for f in "${fn_files[@]}"; do
        v=${f%.sql}
        [ -z "${placed[$v]:-}" ] || continue
        ready=1
        for a in ${fn_after[$v]}; do
            [ -n "${fn_after[$a]+x}" ] || refuse "functions/$f runs after $a, which has no functions/$a.sql"
            [ -n "${placed[$a]:-}" ] || ready=0
        done
        [ $ready -eq 1 ] || continue
        fn_order+=("$dir/functions/$f"); placed[$v]=1; progress=1
    done
    [ $progress -eq 1 ] || refuse "the -- after: lines of functions/ form a cycle"
done
fn_plan=()
for p in "${fn_order[@]}"; do
    v=$(basename "$p" .sql)
    s=$(sha256sum "$p" | cut -c1-64)
    [ "${fn_sum[$v]:-}" = "$s" ] || fn_plan+=("$v $s")
done

# tx_line NAME: after a file's \i, the line that tells whether the file ended the runner's
# transaction itself (a COMMIT or ROLLBACK of its own): kasir.migrate is then gone, and what
# follows would run, and be recorded, in autocommit
tx_line() { printf "SELECT 'kasir-migrate-tx:%s:' || coalesce(current_setting('kasir.migrate', true), '');" "$1"; }

# run_tx MARK BODY CHECK EXPECT: BODY (files, each followed by its tx_line and its record) in
# one transaction marked kasir.migrate = MARK. Whether it committed is read back (CHECK must
# answer EXPECT), not inferred from the messages: a server whose lc_messages is not English
# writes no "ERROR:". Sets tx_rc (0 committed; 1 failed, rolled back; 2 the session ended
# before it answered), tx_own (the file that ended the transaction itself) and tx_failed (the
# file psql's error names).
run_tx() {
    tx_rc=0
    q "BEGIN;"$'\n'"SET LOCAL kasir.migrate = '$1';"$'\n'"$2"$'\n'"COMMIT;" || tx_rc=$?
    tx_failed=$(sed -n 's|^psql:.*/\([A-Za-z0-9_]*\)\.sql:[0-9]*: .*|\1|p' <<<"$ans" | head -1)
    tx_own=$(sed -n 's/^kasir-migrate-tx:\([A-Za-z0-9_]*\):$/\1/p' <<<"$ans" | head -1)
    [ $tx_rc -ne 0 ] || { q "$3" && [ "$ans" = "$4" ]; } || tx_rc=1
    [ $tx_rc -ne 1 ] || [ -n "$tx_own" ] || q "ROLLBACK" >/dev/null 2>&1 || true
}

ran=0
for step in "${plan[@]}"; do
    read -r what v s total <<<"$step"
    if [ "$what" = record ]; then
        say "$v replaces $total applied migrations: recorded, not run"
        [ $check -eq 1 ] || q "INSERT INTO schema_migrations (version, sha256) VALUES ('$v', '$s')" || exit 1
        continue
    fi
    say "migration $v"
    ran=$((ran + 1))
    [ $check -eq 0 ] || continue
    run_tx "$v" "\\i $(sqlpath "$dir/$v.sql")
$(tx_line "$v")
INSERT INTO schema_migrations (version, sha256)
    SELECT '$v', '$s' WHERE current_setting('kasir.migrate', true) = '$v';" \
        "SELECT count(*) FROM schema_migrations WHERE version = '$v' AND sha256 = '$s'" 1
    if [ $tx_rc -eq 2 ]; then
        refuse "the session ended while $v.sql ran: its transaction either committed whole or left nothing; run again"
    elif [ -n "$tx_own" ]; then
        refuse "$v.sql ends the runner's transaction itself (a COMMIT, ROLLBACK or END in it): what it did before that may be applied, and it is not recorded; the runner wraps each file in its transaction, remove that statement"
    elif [ $tx_rc -ne 0 ]; then
        refuse "$v.sql failed; nothing of it was applied"
    fi
done

# The changed functions/ files in one transaction: a release's functions are all replaced
# or none is (a file that fails leaves the others as they were, and the next run tries them
# all again).
if [ ${#fn_plan[@]} -gt 0 ]; then
    batch="" check_rows=""
    for step in "${fn_plan[@]}"; do
        read -r v s <<<"$step"
        say "function $v"
        ran=$((ran + 1))
        batch+="\\i $(sqlpath "$dir/functions/$v.sql")"$'\n'"$(tx_line "$v")
INSERT INTO schema_functions (name, sha256)
    SELECT '$v', '$s' WHERE current_setting('kasir.migrate', true) = 'functions'
    ON CONFLICT (name) DO UPDATE SET sha256 = excluded.sha256, applied_at = now();"$'\n'
        check_rows+="${check_rows:+, }('$v', '$s')"
    done
    if [ $check -eq 0 ]; then
        run_tx functions "$batch" \
            "SELECT count(*) FROM schema_functions WHERE (name, sha256) IN (VALUES $check_rows)" \
            "${#fn_plan[@]}"
        if [ $tx_rc -eq 2 ]; then
            refuse "the session ended while functions/ ran: their transaction either committed whole or left nothing; run again"
        elif [ -n "$tx_own" ]; then
            refuse "functions/$tx_own.sql ends the runner's transaction itself (a COMMIT, ROLLBACK or END in it): the files before it may be applied, it and those after it are not recorded; remove that statement"
        elif [ $tx_rc -ne 0 ]; then
            refuse "functions/${tx_failed:-?}.sql failed; none of the ${#fn_plan[@]} changed functions/ files was applied"
        fi
    fi
fi
[ $ran -gt 0 ] || say "the database is up to date"
q "SELECT pg_advisory_unlock(hashtext('kasir-migrate'))" || true
exec {PSQL[1]}>&-
wait "$psql_pid" 2>/dev/null || true
