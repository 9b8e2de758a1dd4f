#!/usr/bin/env bash
# Worker-runtime benchmark (not a test): preload N DemoEvents into a fresh topic, then time
# kasir-demo draining it (one demo_applied row + balance update + one output per message,
# offsets and outbox in the same transaction). Prints one "runtime" line with messages/s.
#   tests/bench/runtime_bench.sh [N]     (default 200000; env PARTITIONS, default 3; BATCH:
#   worker.batch.max; DEMO_BIN: another kasir-demo binary, for A/B runs on a busy machine)
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
set -a; . "$top/var/stack.env"; set +a
N=${1:-${N:-200000}}
P=${PARTITIONS:-3}
bin="$top/build/bin"
run="bench$(date +%s)$$"
topic="$run.in"
port=$(python3 -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
log="$top/var/log/bench-$run.log"
mkdir -p "$top/var/log"

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

KASIR_WORKER_BATCH_MAX=${BATCH:-2000} KASIR_WORKER_TOPICS=$topic KASIR_WORKER_GROUP=$run KASIR_DEMO_OUTPUT_TOPIC=$run.out \
KASIR_WORKER_RETRY_DELAYS=5s KASIR_HTTP_PORT=$port KASIR_LOG_LEVEL=${LOG_LEVEL:-warn} \
    "${DEMO_BIN:-$bin/kasir-demo}" >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
# CPU seconds (utime + stime) of the processes named $1 (comm), for the cost split below
cpu() { local t=0 f; for f in /proc/[0-9]*/stat; do
    read -r line <"$f" 2>/dev/null || continue
    case "$line" in *"($1)"*) set -- "$1" $line; t=$((t + ${15} + ${16})) ;; esac
done; echo "$t"; }
hz=$(getconf CLK_TCK)
pg0=$(cpu postgres); kf0=$(cpu java)
start=$(date +%s.%N)
count=0
while :; do
    count=$(psql "$KASIR_PG_DSN" -qtAX -c "SELECT count(*) FROM demo_applied WHERE event_id LIKE '$run-%'")
    [ "$count" -ge "$N" ] && break
    if ! kill -0 $pid 2>/dev/null; then echo "kasir-demo died; log $log" >&2; tail "$log" >&2; exit 1; fi
    if [ "$(echo "$(date +%s.%N) - $start > 600" | bc)" = 1 ]; then echo "timeout at $count" >&2; exit 1; fi
    sleep 0.2
done
end=$(date +%s.%N)
pg1=$(cpu postgres); kf1=$(cpu java); dm=$(cpu kasir-demo)
# the processing window as PostgreSQL saw it: first to last committed batch
window=$(psql "$KASIR_PG_DSN" -qtAX -c "SELECT extract(epoch FROM max(applied_at) - min(applied_at)) FROM demo_applied WHERE event_id LIKE '$run-%'")
kill -TERM $pid; wait $pid || true
trap - EXIT
outq=$(curl -s "http://127.0.0.1:$port/metrics" 2>/dev/null | grep -c . || true)
printf 'runtime: preload %d msgs in %.1fs (%.0f/s); kasir-demo drained %d in %.2fs wall = %.0f msgs/s (commit window %.2fs = %.0f msgs/s)\n' \
    "$N" "$(echo "$t1 - $t0" | bc)" "$(echo "$N / ($t1 - $t0)" | bc -l)" "$count" \
    "$(echo "$end - $start" | bc)" "$(echo "$N / ($end - $start)" | bc -l)" \
    "$window" "$(echo "$N / ($window + 0.000001)" | bc -l)"
# leave the database as it was: the bench rows are large and of no further use
psql "$KASIR_PG_DSN" -qtAX -c "DELETE FROM demo_applied WHERE event_id LIKE '$run-%'; DELETE FROM kasir_outbox WHERE topic = '$run.out'; DELETE FROM kasir_offsets WHERE group_id = '$run'" >/dev/null
: "$outq"
printf 'cpu: kasir-demo %.2fs, postgresql %.2fs, kafka %.2fs (all processes of each, during the drain)\n' \
    "$(echo "$dm / $hz" | bc -l)" "$(echo "($pg1 - $pg0) / $hz" | bc -l)" "$(echo "($kf1 - $kf0) / $hz" | bc -l)"
