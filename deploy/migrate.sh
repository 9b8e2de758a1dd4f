#!/usr/bin/env bash
# kasir database migrations: the one runner, for the local stack and a production database
# alike (it needs bash, psql and sha256sum, nothing from the local stack).
#
#   deploy/migrate.sh [--check] [--dir DIR] DSN
#
# DSN is a libpq connection string or URI (the role must own the schema). --check reports
# what would run and refuses what would be refused, and changes nothing. Exit 0 done (or
# nothing to do), 1 refused or failed (the message says which file and why), 2 bad usage.
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
#   their bytes change.
# - One runner at a time: a session advisory lock is held for the whole run.
set -euo pipefail

dir=$(cd "$(dirname "$0")" && pwd)/migrations
check=0
while [ $# -gt 0 ]; do
    case "$1" in
    --check) check=1; shift ;;
    --dir) dir=${2:?--dir needs a directory}; shift 2 ;;
    -h|--help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "migrate: unknown option $1" >&2; exit 2 ;;
    *) break ;;
    esac
done
[ $# -eq 1 ] || { echo "usage: migrate.sh [--check] [--dir DIR] DSN" >&2; exit 2; }
dsn=$1
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
# q SQL: runs SQL in the session; the answer rows land in $ans; fails on any ERROR.
q() {
    ans=""
    local line out=${PSQL[1]:-} in=${PSQL[0]:-}
    [ -n "$out" ] && printf '%s\n;\n\\echo %s\n' "$1" "$mark" >&"$out" 2>/dev/null ||
        { echo "migrate: the psql session ended (cannot connect?)" >&2; return 1; }
    while IFS= read -r line <&"$in" 2>/dev/null; do
        [ "$line" = "$mark" ] && break
        ans+="$line"$'\n'
    done
    ans=${ans%$'\n'}
    if grep -q -E '^(psql:.*)?(ERROR|FATAL):' <<<"$ans"; then
        printf 'migrate: %s\n' "$ans" >&2
        return 1
    fi
}
trap '' PIPE
q "SELECT 1" || { echo "migrate: cannot connect to the database${ans:+: $ans}" >&2; exit 1; }
q "SELECT pg_advisory_lock(hashtext('kasir-migrate'))"

q "CREATE TABLE IF NOT EXISTS schema_migrations (
       version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now(), sha256 text);
   CREATE TABLE IF NOT EXISTS schema_functions (
       name text PRIMARY KEY, sha256 text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"

declare -A applied_sum=()
q "SELECT version || ' ' || coalesce(sha256, '-') FROM schema_migrations"
while read -r v s; do [ -n "$v" ] && applied_sum[$v]=$s; done <<<"$ans"

num() { printf '%d' "$((10#${1%%_*}))"; }
newest=-1
for v in "${!applied_sum[@]}"; do
    [[ $v =~ ^[0-9]+_ ]] || continue
    n=$(num "$v"); [ "$n" -gt "$newest" ] && newest=$n
done

# Files in order of their number (then name).
mapfile -t files < <(find "$dir" -maxdepth 1 -name '[0-9]*_*.sql' -printf '%f\n' | sort -t_ -k1,1n -k2)
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
# was (no squash recorded before a later one is refused).
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
    [ "$n" -ge "$newest" ] ||
        refuse "$f is numbered below migrations already applied (newest $newest): a fresh and this database would apply them in different orders; give it a number above $newest"
    plan+=("run $v $s")
    applied_sum[$v]=$s
    newest=$n
done

ran=0
for step in "${plan[@]}"; do
    read -r what v s total <<<"$step"
    if [ "$what" = record ]; then
        say "$v replaces $total applied migrations: recorded, not run"
        [ $check -eq 1 ] || q "INSERT INTO schema_migrations (version, sha256) VALUES ('$v', '$s')"
        continue
    fi
    say "migration $v"
    ran=$((ran + 1))
    if [ $check -eq 0 ]; then
        q "BEGIN;
\\i $dir/$v.sql
INSERT INTO schema_migrations (version, sha256) VALUES ('$v', '$s');
COMMIT;" || { q "ROLLBACK" || true; refuse "$v.sql failed; nothing of it was applied"; }
    fi
done

# Repeatable files: a function's one home, re-applied when its bytes change. In name
# order, except that a file runs after the files its header names in `-- after: <name>...`
# (what PostgreSQL checks at creation: an aggregate's state function, the functions a SQL
# function's body calls).
declare -A fn_sum=() fn_after=() placed=()
q "SELECT name || ' ' || sha256 FROM schema_functions"
while read -r v s; do [ -n "$v" ] && fn_sum[$v]=$s; done <<<"$ans"
mapfile -t fn_files < <(find "$dir/functions" -maxdepth 1 -name '*.sql' -printf '%f\n' 2>/dev/null | LC_ALL=C sort)
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
for p in "${fn_order[@]}"; do
    v=$(basename "$p" .sql)
    s=$(sha256sum "$p" | cut -c1-64)
    [ "${fn_sum[$v]:-}" = "$s" ] && continue
    say "function $v"
    ran=$((ran + 1))
    if [ $check -eq 0 ]; then
        q "BEGIN;
\\i $p
INSERT INTO schema_functions (name, sha256) VALUES ('$v', '$s')
    ON CONFLICT (name) DO UPDATE SET sha256 = excluded.sha256, applied_at = now();
COMMIT;" || { q "ROLLBACK" || true; refuse "functions/$v.sql failed; nothing of it was applied"; }
    fi
done
[ $ran -gt 0 ] || say "the database is up to date"
q "SELECT pg_advisory_unlock(hashtext('kasir-migrate'))" || true
exec {PSQL[1]}>&-
wait "$psql_pid" 2>/dev/null || true
