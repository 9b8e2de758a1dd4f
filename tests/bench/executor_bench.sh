#!/usr/bin/env bash
# Executor benchmark (not a test): preload N card PspCommands (and the payment rows the
# ingress would have written) into a fresh topic, then time kasir-executor charging them at
# kasir-psp-sandbox answering every call after LATENCY (default 50ms) (SPEC 8: executor
# orders/s with the sandbox at 50 ms). Every order is journaled before its call, charged
# over libcurl multi, and its verdict and outcome recorded; the run ends when the group's
# committed positions reach N, and then every attempt must be resolved and the sandbox
# must show each order charged once.
#   tests/bench/executor_bench.sh [N]   (default 20000; env PARTITIONS (6), BATCH
#   (worker.batch.max, 2000), IN_FLIGHT (executor.max_in_flight, 1000), LATENCY (50ms),
#   INSTANCES (1: kasir-executor processes in the group), EXECUTOR_BIN: another
#   kasir-executor binary, for A/B runs)
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
set -a; . "$top/var/stack.env"; set +a
. "$top/deploy/local/roles.sh" # daemon_dsn
N=${1:-${N:-20000}}
P=${PARTITIONS:-6}
bin="$top/build/bin"
run="execbench$(date +%s)$$"
topic="$run.commands"
log="$top/var/log/bench-$run.log"
mkdir -p "$top/var/log"
pg() { psql "$KASIR_PG_DSN" -qtAX -c "$1"; }
port() { python3 -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"; }
key="sbx_$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"

"$bin/kasir-topics" --brokers "$KASIR_KAFKA_BROKERS" "$topic:$P" "$topic.retry.5s:1" \
    "$topic.dlq:1" "$run.refunds:1" "$run.refunds.retry.5s:1" "$run.refunds.dlq:1" \
    "$run.outcomes:$P" >/dev/null

sbport=$(port)
KASIR_HTTP_PORT=$sbport KASIR_SANDBOX_API_KEY=$key KASIR_FAULT_LATENCY=${LATENCY:-50ms} \
KASIR_HTTP_THREADS=2 KASIR_LOG_LEVEL=warn "$bin/kasir-psp-sandbox" >>"$log" 2>&1 &
sbpid=$!
pids=""
trap 'kill $sbpid $pids 2>/dev/null || true' EXIT

t0=$(date +%s.%N)
python3 - "$N" "$topic" "$run" <<'PY' | "$bin/kasir-produce"
import json, sys
n, topic, run = int(sys.argv[1]), sys.argv[2], sys.argv[3]
out = sys.stdout
for i in range(n):
    oid = "ord_%s_%d" % (run, i)
    out.write(json.dumps({"topic": topic, "key": oid, "schema": "kasir.psp.PspCommand",
        "value": {"message_id": "msg_" + oid, "occurred_at": 1767225600000000 + i,
                  "partner_id": run, "command_id": "cmd_" + oid, "kind": "CHARGE",
                  "payment_id": "pay_" + oid, "order_id": oid, "refund_id": None,
                  "payout_id": None, "psp": "sandbox", "psp_idempotency_key": "idk_" + oid,
                  "amount_minor": 1500000 + i, "currency": "IDR", "method": "CARD",
                  "attempt": 1, "details": {"payment_token": "pm_card_visa"}}}) + "\n")
PY
pg "INSERT INTO payments (payment_id, partner_id, checkout_id, buyer_id, status)
    SELECT 'pay_ord_${run}_' || i, '$run', 'co_${run}_' || i, 'b', 'NOT_STARTED'
      FROM generate_series(0, $N - 1) i;
    INSERT INTO payment_orders (order_id, payment_id, partner_id, seq, seller_id,
                                amount_minor, currency, method)
    SELECT 'ord_${run}_' || i, 'pay_ord_${run}_' || i, '$run', 0, 's', 1500000 + i, 'IDR', 'CARD'
      FROM generate_series(0, $N - 1) i;
    CHECKPOINT;" >/dev/null
t1=$(date +%s.%N)
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$sbport/healthz" >/dev/null && break; sleep 0.1; done

export KASIR_WORKER_BATCH_MAX=${BATCH:-2000} KASIR_WORKER_TOPICS=$topic,$run.refunds \
    KASIR_WORKER_GROUP=$run KASIR_EXECUTOR_OUTCOMES_TOPIC=$run.outcomes \
    KASIR_EXECUTOR_COMMANDS_TOPIC=$topic KASIR_WORKER_RETRY_DELAYS=5s \
    KASIR_EXECUTOR_SANDBOX_URL=http://127.0.0.1:$sbport KASIR_EXECUTOR_SANDBOX_SECRET=$key \
    KASIR_EXECUTOR_MAX_IN_FLIGHT=${IN_FLIGHT:-1000} KASIR_LOG_LEVEL=${LOG_LEVEL:-warn}
# INSTANCES kasir-executor processes in one group share the partitions (SPEC 5: workers
# scale out by consumer group); each waits on its own PSP calls and journal commits
for _ in $(seq 1 "${INSTANCES:-1}"); do
    KASIR_PG_DSN=$(daemon_dsn executor) \
    KASIR_HTTP_PORT=$(port) "${EXECUTOR_BIN:-$bin/kasir-executor}" >>"$log" 2>&1 &
    pids="$pids $!"
done
ticks() { awk '{ print $14 + $15 + ($2 == "(postgres)" ? $16 + $17 : 0) }' "/proc/$1/stat" 2>/dev/null || echo 0; }
pg_cpu() { local pm t c; pm=$(head -1 "$top/var/pg/data/postmaster.pid"); t=$(ticks "$pm")
    for c in $(pgrep -P "$pm"); do t=$((t + $(ticks "$c"))); done; echo "$t"; }
hz=$(getconf CLK_TCK)
pg0=$(pg_cpu)
start=$(date +%s.%N)
while :; do
    count=$(pg "SELECT coalesce(sum(next_offset), 0) FROM kasir_offsets WHERE group_id = '$run' AND topic = '$topic' AND next_offset > 0")
    [ "$count" -ge "$N" ] && break
    for p in $pids; do
        if ! kill -0 "$p" 2>/dev/null; then echo "kasir-executor died; log $log" >&2; tail "$log" >&2; exit 1; fi
    done
    if [ "$(echo "$(date +%s.%N) - $start > 600" | bc)" = 1 ]; then echo "timeout at $count" >&2; exit 1; fi
    sleep 0.2
done
end=$(date +%s.%N)
pg1=$(pg_cpu); ex=0; for p in $pids; do ex=$((ex + $(ticks "$p"))); done; sb=$(ticks "$sbpid")
ok=$(pg "SELECT count(*) FROM executor_attempts WHERE order_id LIKE 'ord\\_${run}\\_%' AND verdict = 'SUCCEEDED'")
att=$(pg "SELECT count(*) FROM executor_attempts WHERE order_id LIKE 'ord\\_${run}\\_%'")
dups=$(curl -sf "http://127.0.0.1:$sbport/_sandbox/ledger?psp=sandbox&kind=charge" | python3 -c "import json,sys; d=json.load(sys.stdin); print(len(d['duplicates']), d['count'])")
kill -TERM $pids; wait $pids || true
kill -TERM $sbpid; wait $sbpid || true
trap - EXIT
printf 'executor: preload %d commands in %.1fs; kasir-executor x'"${INSTANCES:-1}"' charged %d (attempts %d) in %.2fs wall = %.0f orders/s; sandbox latency %s, duplicates/charges %s\n' \
    "$N" "$(echo "$t1 - $t0" | bc)" "$ok" "$att" "$(echo "$end - $start" | bc)" \
    "$(echo "$N / ($end - $start)" | bc -l)" "${LATENCY:-50ms}" "$dups"
printf 'cpu: kasir-executor %.2fs, kasir-psp-sandbox %.2fs, postgresql %.2fs (this stack'"'"'s processes, during the drain)\n' \
    "$(echo "$ex / $hz" | bc -l)" "$(echo "$sb / $hz" | bc -l)" "$(echo "($pg1 - $pg0) / $hz" | bc -l)"
[ "$ok" = "$N" ] || { echo "executor bench: $ok of $N charged; log $log" >&2; exit 1; }
pg "DELETE FROM executor_attempts WHERE order_id LIKE 'ord\\_${run}\\_%'; DELETE FROM payment_orders WHERE partner_id = '$run';
    DELETE FROM payments WHERE partner_id = '$run'; DELETE FROM kasir_outbox WHERE topic = '$run.outcomes';
    DELETE FROM kasir_offsets WHERE group_id = '$run'" >/dev/null
