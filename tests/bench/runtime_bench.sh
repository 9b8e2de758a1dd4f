#!/usr/bin/env bash
# Worker-runtime benchmark (not a test): preload N DemoEvents into a fresh topic, then time
# kasir-demo draining it (one demo_applied row + balance update + one output per message,
# offsets and outbox in the same transaction). Prints one "runtime" line with messages/s.
#   tests/bench/runtime_bench.sh [N]     (default 200000; env PARTITIONS, default 3; BATCH:
#   worker.batch.max; DEMO_BIN: the kasir-demo binary; DEMO_BIN_B: a second binary, for a
#   side-by-side run: both drain the same preloaded topic, A then B then A then B ...
#   (ROUNDS pairs, default 1), the demo's rows deleted between drains; the ratio B/A of the
#   median drains is printed)
# CPU figures count this stack's processes only (its postmaster and backends, its broker),
# not other PostgreSQL clusters or JVMs on the machine.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
set -a; . "$top/var/stack.env"; set +a
. "$top/deploy/local/roles.sh" # daemon_dsn
N=${1:-${N:-200000}}
P=${PARTITIONS:-3}
bin="$top/build/bin"
run="bench$(date +%s)$$"
topic="$run.in"
log="$top/var/log/bench-$run.log"
mkdir -p "$top/var/log"
hz=$(getconf CLK_TCK)
pgpid=$(head -1 "$(readlink -f "$top/var/pg")/data/postmaster.pid")
kfpid=$(cat "$top/var/kafka/kafka.pid")

# CPU ticks (utime + stime, + waited-for children) of pid and its live children
ticks() { local root=$1 t=0 f line; for f in /proc/[0-9]*/stat; do
    read -r line <"$f" 2>/dev/null || continue
    # fields after the ")" of comm: 2 = ppid, 12 utime, 13 stime, 14 cutime, 15 cstime
    local pid=${f#/proc/}; pid=${pid%/stat}; local rest=${line##*) }
    set -- $rest
    if [ "$pid" = "$root" ]; then t=$((t + ${12} + ${13} + ${14} + ${15}))
    elif [ "$2" = "$root" ]; then t=$((t + ${12} + ${13})); fi
done; echo "$t"; }
secs() { echo "$1 / $hz" | bc -l; }

"$bin/kasir-topics" --brokers "$KASIR_KAFKA_BROKERS" "$topic:$P" "$topic.retry.5s:1" \
    "$topic.dlq:1" "$run.out:$P" >/dev/null

t0=$(date +%s.%N)
python3 - "$N" "$topic" "$run" <<'PY' | "$bin/kasir-produce"
import json, sys
n, topic, run = int(sys.argv[1]), sys.argv[2], sys.argv[3]
out = sys.stdout
for i in range(n):
    acct = "acct%d" % (i % 1000)
    out.write(json.dumps({"topic": topic, "key": acct, "schema": "kasir.demo.DemoEvent",
        "value": {"message_id": "%s-m%d" % (run, i), "occurred_at": 1700000000000000 + i,
                  "event_id": "%s-%d" % (run, i), "seq": i, "account": acct,
                  "amount_minor": 100 + i % 997, "currency": "IDR", "note": None}}) + "\n")
PY
t1=$(date +%s.%N)
printf 'runtime: preload %d msgs in %.1fs (%.0f/s)\n' "$N" "$(echo "$t1 - $t0" | bc)" \
    "$(echo "$N / ($t1 - $t0)" | bc -l)"

# Waits until PostgreSQL is quiet: a checkpoint now, and no autovacuum worker running (an
# earlier bench, e.g. the ingress's, leaves vacuums of its tables behind; they would be
# billed to this drain's CPU and slow it on 2 cores). At most 120 s.
quiet() {
    local i
    psql "$KASIR_PG_DSN" -qtAX -c "CHECKPOINT" >/dev/null
    for i in $(seq 1 600); do
        [ "$(psql "$KASIR_PG_DSN" -qtAX -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'")" = 0 ] && return 0
        sleep 0.2
    done
    echo "runtime: autovacuum still running after 120 s; measuring anyway" >&2
}

# drain <label> <binary> <group>: prints one line; sets $last_rate
drain() {
    local label=$1 demo=$2 group=$3 port pid start end count window pg0 pg1 kf0 kf1 dm
    port=$(python3 -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
    quiet
    pg0=$(ticks "$pgpid"); kf0=$(ticks "$kfpid")
    start=$(date +%s.%N)
    KASIR_PG_DSN=$(daemon_dsn demo) \
    KASIR_WORKER_BATCH_MAX=${BATCH:-2000} KASIR_WORKER_TOPICS=$topic KASIR_WORKER_GROUP=$group \
    KASIR_DEMO_OUTPUT_TOPIC=$run.out KASIR_WORKER_RETRY_DELAYS=5s KASIR_HTTP_PORT=$port \
    KASIR_LOG_LEVEL=${LOG_LEVEL:-warn} "$demo" >>"$log" 2>&1 &
    pid=$!
    trap 'kill $pid 2>/dev/null || true' EXIT
    # progress from the group's committed positions (committed with the effects): a count(*)
    # over demo_applied every 0.2 s cost PostgreSQL ~4 s of CPU per drain of 200,000
    while :; do
        count=$(psql "$KASIR_PG_DSN" -qtAX -c "SELECT coalesce(sum(next_offset), 0) FROM kasir_offsets WHERE group_id = '$group' AND topic = '$topic' AND next_offset > 0")
        [ "$count" -ge "$N" ] && break
        if ! kill -0 $pid 2>/dev/null; then echo "kasir-demo died; log $log" >&2; tail "$log" >&2; exit 1; fi
        if [ "$(echo "$(date +%s.%N) - $start > 600" | bc)" = 1 ]; then echo "timeout at $count" >&2; exit 1; fi
        sleep 0.2
    done
    end=$(date +%s.%N)
    pg1=$(ticks "$pgpid"); kf1=$(ticks "$kfpid"); dm=$(ticks "$pid")
    # the processing window as PostgreSQL saw it: first to last committed batch
    window=$(psql "$KASIR_PG_DSN" -qtAX -c "SELECT extract(epoch FROM max(applied_at) - min(applied_at)) FROM demo_applied WHERE event_id LIKE '$run-%'")
    count=$(psql "$KASIR_PG_DSN" -qtAX -c "SELECT count(*) FROM demo_applied WHERE event_id LIKE '$run-%'")
    kill -TERM $pid; wait $pid || true
    trap - EXIT
    last_rate=$(echo "$N / ($end - $start)" | bc -l)
    printf 'runtime %s: %s drained %d in %.2fs wall = %.0f msgs/s (commit window %.2fs = %.0f msgs/s); cpu s: kasir-demo %.2f, postgresql %.2f, kafka %.2f\n' \
        "$label" "$(basename "$demo")" "$count" "$(echo "$end - $start" | bc)" "$last_rate" \
        "$window" "$(echo "$N / ($window + 0.000001)" | bc -l)" \
        "$(secs "$dm")" "$(secs "$((pg1 - pg0))")" "$(secs "$((kf1 - kf0))")"
    # the next drain (or the next bench) starts from the same database state
    psql "$KASIR_PG_DSN" -qtAX -c "DELETE FROM demo_applied WHERE event_id LIKE '$run-%'; DELETE FROM demo_accounts WHERE account LIKE 'acct%'; DELETE FROM kasir_outbox WHERE topic = '$run.out'; DELETE FROM kasir_offsets WHERE group_id = '$group'" >/dev/null
    # and vacuums what the deletes left, now: else autovacuum does it during the next drain
    # (it did, every other drain: PostgreSQL CPU 8.5 s instead of 4.5 s, wall -35 %)
    psql "$KASIR_PG_DSN" -qtAX -c "VACUUM (ANALYZE) demo_applied, demo_accounts, kasir_outbox, kasir_offsets" >/dev/null
}

A=${DEMO_BIN:-$bin/kasir-demo}
if [ -z "${DEMO_BIN_B:-}" ]; then
    drain A "$A" "$run"
    exit 0
fi
ra=(); rb=()
for r in $(seq 1 "${ROUNDS:-1}"); do
    # alternate which goes first, so neither always meets the other's dead rows
    if [ $((r % 2)) = 1 ]; then
        drain A "$A" "$run-a$r"; ra+=("$last_rate"); drain B "$DEMO_BIN_B" "$run-b$r"; rb+=("$last_rate")
    else
        drain B "$DEMO_BIN_B" "$run-b$r"; rb+=("$last_rate"); drain A "$A" "$run-a$r"; ra+=("$last_rate")
    fi
done
med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
ma=$(med "${ra[@]}"); mb=$(med "${rb[@]}")
printf 'runtime A/B: median A %.0f msgs/s, median B %.0f msgs/s, B/A = %.3f (%d rounds)\n' \
    "$ma" "$mb" "$(echo "$mb / $ma" | bc -l)" "${ROUNDS:-1}"
