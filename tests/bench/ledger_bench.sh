#!/usr/bin/env bash
# Ledger benchmark (not a test): preload N captured-payment outcomes (CHARGE SUCCEEDED, PSP
# fee and 1 % platform fee: 4 posting lines each) into a fresh 6-partition topic, with the
# payment and order rows they refer to, then time kasir-ledger draining it, for two mixes:
#   spread: the orders' sellers spread evenly over 1,000 sellers;
#   hot:    90 % of them to one seller's wallet, the rest over 1,000 sellers.
# Prints one line per mix: entries (= outcomes) per second and posting lines per second.
#   tests/bench/ledger_bench.sh [N]   (default 200000; env MIXES="spread hot",
#   INSTANCES (ledger processes in one group, default 2: one per core, as the PostgreSQL
#   work of one batch runs while the other instance decodes and emits), BATCH (worker.batch.max, default 2000),
#   LEDGER_BIN: another kasir-ledger binary, for A/B runs)
# The ledger is append-only: a run's entries stay in the database (under its own partner).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
set -a; . "$top/var/stack.env"; set +a
N=${1:-${N:-200000}}
bin="$top/build/bin"
LDSN=$(sed 's/user=[^ ]*/user=kasir_ledger/' <<<"$KASIR_PG_DSN")
mkdir -p "$top/var/log"
hz=$(getconf CLK_TCK)
# CPU ticks (utime + stime) of this stack's processes only (other checkouts may run their
# own stacks on the machine): "postgres" = our postmaster and its children, "java" = our
# broker, else the processes named $1 (comm)
pgpid=$(head -1 "$top/var/pg/data/postmaster.pid" 2>/dev/null || echo 0)
kfpid=$(cat "$top/var/kafka/kafka.pid" 2>/dev/null || echo 0)
cpu() { local name=$1 t=0 f line rest pid; for f in /proc/[0-9]*/stat; do
    { read -r line <"$f"; } 2>/dev/null || continue
    pid=${line%% *}; rest=${line##*) }
    # after "(comm) ": state, ppid, ...; utime and stime are the 12th and 13th
    set -- $rest
    case "$name" in
        postgres) [ "$pid" = "$pgpid" ] || [ "$2" = "$pgpid" ] || continue ;;
        java) [ "$pid" = "$kfpid" ] || continue ;;
        *) case "$line" in *"($name)"*) ;; *) continue ;; esac ;;
    esac
    t=$((t + ${12} + ${13}))
done; echo "$t"; }
q() { psql "$KASIR_PG_DSN" -qtAX -v ON_ERROR_STOP=1 -c "$1"; }

for mix in ${MIXES:-spread hot}; do
    run="lbench${mix}$(date +%s)$$"
    topic="$run.outcomes"
    partner="pt_$run"
    hot=0; [ "$mix" = hot ] && hot=90
    "$bin/kasir-topics" --brokers "$KASIR_KAFKA_BROKERS" "$topic:6" "$topic.retry.5s:1" \
        "$topic.dlq:1" "$run.entries:6" >/dev/null
    # the ingress's rows for N one-order payments; seller by the mix
    q "INSERT INTO payments (payment_id, partner_id, checkout_id, buyer_id, status)
       SELECT '$run-p' || g, '$partner', '$run-c' || g, 'b', 'EXECUTING' FROM generate_series(1, $N) g;
       INSERT INTO payment_orders (order_id, payment_id, partner_id, seq, seller_id, amount_minor,
                                   currency, method, status)
       SELECT '$run-o' || g, '$run-p' || g, '$partner', 0,
              CASE WHEN g % 100 < $hot THEN 'hot' ELSE 's' || (g % 1000) END,
              10000 + g % 997, 'IDR', 'CARD', 'EXECUTING' FROM generate_series(1, $N) g;
       INSERT INTO ledger_fee_plans VALUES ('$partner', 'IDR', 100, 0);
       ANALYZE payments; ANALYZE payment_orders;" >/dev/null
    t0=$(date +%s.%N)
    python3 - "$N" "$topic" "$run" "$partner" <<'PY' | "$bin/kasir-produce"
import json, sys
n, topic, run, partner = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
w = sys.stdout.write
for g in range(1, n + 1):
    amt = 10000 + g % 997
    oid = "%s-o%d" % (run, g)
    w(json.dumps({"topic": topic, "key": oid, "schema": "kasir.psp.PspOutcome",
        "value": {"message_id": "%s-m%d" % (run, g), "occurred_at": 1700000000000000 + g,
                  "partner_id": partner, "outcome_id": "%s-x%d" % (run, g), "order_id": oid,
                  "payment_id": "%s-p%d" % (run, g), "refund_id": None, "payout_id": None,
                  "kind": "CHARGE", "status": "SUCCEEDED", "psp": "benchpsp",
                  "psp_reference": "r%d" % g, "amount_minor": amt, "fee_minor": amt * 29 // 1000,
                  "currency": "IDR", "failure_code": None, "failure_message": None,
                  "next_action": {}, "source": "EXECUTOR"}}) + "\n")
PY
    t1=$(date +%s.%N)
    q "CHECKPOINT" >/dev/null
    pids=()
    for i in $(seq 1 "${INSTANCES:-2}"); do
        # a free port below the ephemeral range: an ephemeral one can be taken by some
        # client's outgoing connection before the daemon binds it
        port=$(python3 -c "
import random, socket
while True:
    p = random.randint(20000, 30000); s = socket.socket()
    try:
        s.bind(('127.0.0.1', p)); print(p); break
    except OSError:
        pass
    finally:
        s.close()")
        KASIR_PG_DSN=$LDSN KASIR_WORKER_BATCH_MAX=${BATCH:-2000} KASIR_WORKER_TOPICS=$topic \
        KASIR_WORKER_GROUP=$run KASIR_LEDGER_OUTPUT_TOPIC=$run.entries KASIR_WORKER_RETRY_DELAYS=5s \
        KASIR_HTTP_PORT=$port KASIR_LOG_LEVEL=${LOG_LEVEL:-warn} \
            "${LEDGER_BIN:-$bin/kasir-ledger}" >"$top/var/log/bench-$run-$i.log" 2>&1 &
        pids+=($!)
    done
    trap 'kill ${pids[*]} 2>/dev/null || true' EXIT
    pg0=$(cpu postgres); kf0=$(cpu java); lg0=$(cpu kasir-ledger)
    start=$(date +%s.%N)
    while :; do
        count=$(q "SELECT count(*) FROM ledger_entries WHERE partner_id = '$partner'")
        [ "$count" -ge "$N" ] && break
        for p in "${pids[@]}"; do
            if ! kill -0 "$p" 2>/dev/null; then echo "kasir-ledger died; log var/log/bench-$run-*.log" >&2; exit 1; fi
        done
        if [ "$(echo "$(date +%s.%N) - $start > 900" | bc)" = 1 ]; then echo "timeout at $count" >&2; exit 1; fi
        sleep 0.2
    done
    end=$(date +%s.%N)
    pg1=$(cpu postgres); kf1=$(cpu java); lg1=$(cpu kasir-ledger)
    lines=$(q "SELECT count(*) FROM ledger_postings p JOIN ledger_entries e USING (entry_id) WHERE e.partner_id = '$partner'")
    window=$(q "SELECT extract(epoch FROM max(posted_at) - min(posted_at)) FROM ledger_entries WHERE partner_id = '$partner'")
    kill -TERM "${pids[@]}"; wait "${pids[@]}" || true
    trap - EXIT
    el=$(echo "$end - $start" | bc)
    printf 'ledger %s (%s%% to one wallet, %d instance(s)): preload %d outcomes in %.1fs; drained in %.2fs wall = %.0f entries/s, %.0f posting lines/s (commit window %.2fs = %.0f entries/s)\n' \
        "$mix" "$hot" "${INSTANCES:-2}" "$N" "$(echo "$t1 - $t0" | bc)" "$el" \
        "$(echo "$N / $el" | bc -l)" "$(echo "$lines / $el" | bc -l)" \
        "$window" "$(echo "$N / ($window + 0.000001)" | bc -l)"
    printf 'cpu: kasir-ledger %.2fs, postgresql %.2fs, kafka %.2fs (during the drain); per entry: ledger %.1f us, postgresql %.1f us\n' \
        "$(echo "($lg1 - $lg0) / $hz" | bc -l)" "$(echo "($pg1 - $pg0) / $hz" | bc -l)" \
        "$(echo "($kf1 - $kf0) / $hz" | bc -l)" "$(echo "($lg1 - $lg0) / $hz / $N * 1000000" | bc -l)" \
        "$(echo "($pg1 - $pg0) / $hz / $N * 1000000" | bc -l)"
    q "DELETE FROM kasir_outbox WHERE topic = '$run.entries'; DELETE FROM kasir_offsets WHERE group_id = '$run'" >/dev/null
done
