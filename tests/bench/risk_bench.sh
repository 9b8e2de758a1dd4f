#!/usr/bin/env bash
# Risk benchmark (not a test): preload N PaymentRequested into a fresh topic, then time
# kasir-risk deciding them (SPEC 8: risk decisions/s, worker alone, from a preloaded topic).
# Rules: deploy/risk/rules.json (amount limits, two velocity rules, blocklists, a new-buyer
# cap). Payments: one order each, buyers drawn from a pool so that velocity windows hold
# history, occurred_at spread at 200 payments/s of simulated time. Risk writes every
# payment's rows (payment and orders) from the event, as in production since session 29;
# ROWS=1 preloads them as an ingress before session 29 wrote them (NOT_STARTED), which risk
# then meets as conflicts.
# Prints one "risk" line per drain with decisions/s and a CPU split.
#   tests/bench/risk_bench.sh [N]   (default 200000; env PARTITIONS (6), BUYERS (50000),
#   BATCH (worker.batch.max), ROWS (0), INSTANCES (1: kasir-risk processes in the group),
#   RULES (another rules file), RISK_BIN: another kasir-risk binary; RISK_BIN_B: a second
#   binary, for a side-by-side run: both drain the same preloaded topic, A then B then B
#   then A ... (ROUNDS pairs, default 1), the decisions and rows reset and vacuumed between
#   drains; the median of each and the ratio B/A are printed)
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
set -a; . "$top/var/stack.env"; set +a
. "$top/deploy/local/roles.sh" # daemon_dsn
N=${1:-${N:-200000}}
P=${PARTITIONS:-6}
BUYERS=${BUYERS:-50000}
ROWS=${ROWS:-0}
bin="$top/build/bin"
run="riskbench$(date +%s)$$"
topic="$run.payments"
log="$top/var/log/bench-$run.log"
mkdir -p "$top/var/log"
pg() { psql "$KASIR_PG_DSN" -qtAX -c "$1"; }

"$bin/kasir-topics" --brokers "$KASIR_KAFKA_BROKERS" "$topic:$P" "$topic.retry.5s:1" \
    "$topic.dlq:1" "$run.payouts:1" "$run.payouts.retry.5s:1" "$run.payouts.dlq:1" \
    "$run.commands:$P" >/dev/null

t0=$(date +%s.%N)
python3 - "$N" "$topic" "$run" "$BUYERS" <<'PY' | "$bin/kasir-produce"
import json, random, sys
n, topic, run, buyers = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
rnd = random.Random(8)
methods = [("VIRTUAL_ACCOUNT", "BCA", None, None), ("QRIS", None, None, None),
           ("EWALLET", None, "OVO", None), ("CARD", None, None, "tok_sandbox_visa")]
out = sys.stdout
for i in range(n):
    buyer = "b%d" % rnd.randrange(buyers)
    m, bank, ew, tok = methods[i % 4]
    pid = "pay_%s_%d" % (run, i)
    out.write(json.dumps({"topic": topic, "key": buyer, "schema": "kasir.payments.PaymentRequested",
        "value": {"message_id": "msg_" + pid, "occurred_at": 1767225600000000 + i * 5000,
                  "partner_id": run, "payment_id": pid, "buyer_id": buyer,
                  "checkout_id": "co_" + pid, "idempotency_key_hash": "0" * 64,
                  "orders": [{"order_id": "ord_%s_0" % pid, "seller_id": "s%d" % (i % 500),
                              "amount_minor": 1500000 + rnd.randrange(30000000),
                              "currency": "IDR", "method": m, "psp_preference": None,
                              "payment_token": tok, "bank_code": bank, "ewallet_channel": ew}],
                  "metadata": {}}}) + "\n")
PY
t1=$(date +%s.%N)
# ROWS=1: the rows an ingress before session 29 wrote for each accepted payment (same ids;
# the values as the messages above need not match: risk moves them by payment_id and
# order_id)
rows() {
    [ "$ROWS" = 1 ] || return 0
    pg "INSERT INTO payments (payment_id, partner_id, checkout_id, buyer_id, status)
        SELECT 'pay_${run}_' || i, '$run', 'co_pay_${run}_' || i, 'b', 'NOT_STARTED'
          FROM generate_series(0, $N - 1) i;
        INSERT INTO payment_orders (order_id, payment_id, partner_id, seq, seller_id,
                                    amount_minor, currency, method)
        SELECT 'ord_pay_${run}_' || i || '_0', 'pay_${run}_' || i, '$run', 0, 's', 1, 'IDR', 'QRIS'
          FROM generate_series(0, $N - 1) i" >/dev/null
}
# everything a drain wrote (and the rows it moved), so that the next one starts alike
reset() {
    pg "DELETE FROM risk_payments WHERE partner_id = '$run'; DELETE FROM payment_orders WHERE partner_id = '$run';
        DELETE FROM payments WHERE partner_id = '$run'; DELETE FROM risk_hold_commands c USING risk_holds h
        WHERE c.hold_id = h.hold_id AND h.partner_id = '$run'; DELETE FROM risk_holds WHERE partner_id = '$run';
        DELETE FROM kasir_outbox WHERE topic = '$run.commands'; DELETE FROM kasir_offsets WHERE group_id LIKE '$run%'" >/dev/null
}
# vacuums what the deletes left and waits until PostgreSQL is quiet: a checkpoint, and no
# autovacuum worker running (it would be billed to the drain and take a core), at most 120 s
quiet() {
    local i
    pg "VACUUM (ANALYZE) risk_payments, risk_holds, risk_hold_commands, payments, payment_orders, kasir_outbox, kasir_offsets" >/dev/null
    pg "CHECKPOINT" >/dev/null
    for i in $(seq 1 600); do
        [ "$(pg "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'")" = 0 ] && return 0
        sleep 0.2
    done
    echo "risk: autovacuum still running after 120 s; measuring anyway" >&2
}

# CPU ticks of this stack's processes only (the machine may run other stacks): ticks,
# pg_ticks (the postmaster, its live and exited children)
. "$top/tests/bench/cpu.sh"
kf_cpu() { ticks "$(cat "$top/var/kafka/kafka.pid")"; }
hz=$(getconf CLK_TCK)

# a free port below the ephemeral range: one the kernel picked could be handed to an
# outgoing connection (this stack's or another's) before kasir-risk listens on it
free_port() {
    python3 -c "
import random, socket
for _ in range(200):
    p = random.randrange(20000, 30000)
    s = socket.socket()
    try:
        s.bind(('127.0.0.1', p)); print(p); break
    except OSError:
        pass
    finally:
        s.close()"
}

# drain <label> <binary> <group>: prints one line; sets $last_rate
drain() {
    local label=$1 risk=$2 group=$3 pids="" port pg0 pg1 kf0 kf1 rk=0 start end count window mix
    rows; quiet
    pg0=$(pg_ticks); kf0=$(kf_cpu)
    start=$(date +%s.%N)
    # INSTANCES kasir-risk processes in one group share the partitions (SPEC 5: workers
    # scale out by consumer group); 1 is the figure of one worker
    for i in $(seq 1 "${INSTANCES:-1}"); do
        port=$(free_port)
        KASIR_PG_DSN=$(daemon_dsn risk) \
        KASIR_WORKER_BATCH_MAX=${BATCH:-2000} KASIR_WORKER_TOPICS=$topic,$run.payouts KASIR_WORKER_GROUP=$group \
        KASIR_RISK_OUTPUT_TOPIC=$run.commands KASIR_RISK_RULES=${RULES:-$top/deploy/risk/rules.json} \
        KASIR_WORKER_RETRY_DELAYS=5s KASIR_HTTP_PORT=$port KASIR_LOG_LEVEL=${LOG_LEVEL:-warn} \
            "$risk" >>"$log" 2>&1 &
        pids="$pids $!"
    done
    trap "kill $pids 2>/dev/null || true" EXIT
    while :; do
        # the group's committed positions: cheap to read, unlike counting decisions
        count=$(pg "SELECT coalesce(sum(next_offset), 0) FROM kasir_offsets WHERE group_id = '$group' AND topic = '$topic' AND next_offset > 0")
        [ "$count" -ge "$N" ] && break
        for p in $pids; do
            if ! kill -0 "$p" 2>/dev/null; then echo "kasir-risk died; log $log" >&2; tail "$log" >&2; exit 1; fi
        done
        if [ "$(echo "$(date +%s.%N) - $start > 600" | bc)" = 1 ]; then echo "timeout at $count" >&2; exit 1; fi
        sleep 0.2
    done
    end=$(date +%s.%N)
    pg1=$(pg_ticks); kf1=$(kf_cpu); for p in $pids; do rk=$((rk + $(ticks "$p"))); done
    count=$(pg "SELECT count(*) FROM risk_payments WHERE partner_id = '$run'")
    window=$(pg "SELECT extract(epoch FROM max(decided_at) - min(decided_at)) FROM risk_payments WHERE partner_id = '$run'")
    mix=$(pg "SELECT string_agg(decision || ' ' || c, ', ' ORDER BY decision) FROM (SELECT decision, count(*) c FROM risk_payments WHERE partner_id = '$run' GROUP BY 1) x")
    kill -TERM $pids; wait $pids || true
    trap - EXIT
    last_rate=$(echo "$N / ($end - $start)" | bc -l)
    printf 'risk %s: %s x%d decided %d in %.2fs wall = %.0f decisions/s (commit window %.2fs = %.0f decisions/s); %s\n' \
        "$label" "$(basename "$risk")" "${INSTANCES:-1}" "$count" "$(echo "$end - $start" | bc)" \
        "$last_rate" "$window" "$(echo "$N / ($window + 0.000001)" | bc -l)" "$mix"
    printf 'cpu %s: kasir-risk %.2fs, postgresql %.2fs, kafka %.2fs = %.0f, %.0f, %.0f us per decision (this stack'"'"'s processes, during the drain; load %s)\n' \
        "$label" "$(echo "$rk / $hz" | bc -l)" "$(echo "($pg1 - $pg0) / $hz" | bc -l)" "$(echo "($kf1 - $kf0) / $hz" | bc -l)" \
        "$(echo "$rk / $hz * 1000000 / $N" | bc -l)" "$(echo "($pg1 - $pg0) / $hz * 1000000 / $N" | bc -l)" \
        "$(echo "($kf1 - $kf0) / $hz * 1000000 / $N" | bc -l)" "$(cut -d' ' -f1-3 /proc/loadavg)"
    reset
}

printf 'risk: preload %d payments in %.1fs\n' "$N" "$(echo "$t1 - $t0" | bc)"
A=${RISK_BIN:-$bin/kasir-risk}
if [ -z "${RISK_BIN_B:-}" ]; then
    drain A "$A" "$run"
    exit 0
fi
ra=(); rb=()
for r in $(seq 1 "${ROUNDS:-1}"); do
    # alternate which goes first, so that neither always drains right after the preload
    if [ $((r % 2)) = 1 ]; then
        drain A "$A" "$run-a$r"; ra+=("$last_rate"); drain B "$RISK_BIN_B" "$run-b$r"; rb+=("$last_rate")
    else
        drain B "$RISK_BIN_B" "$run-b$r"; rb+=("$last_rate"); drain A "$A" "$run-a$r"; ra+=("$last_rate")
    fi
done
med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
ma=$(med "${ra[@]}"); mb=$(med "${rb[@]}")
printf 'risk A/B: median A %.0f decisions/s, median B %.0f decisions/s, B/A = %.3f (%d rounds)\n' \
    "$ma" "$mb" "$(echo "$mb / $ma" | bc -l)" "${ROUNDS:-1}"
