#!/usr/bin/env bash
# Ledger benchmark (not a test): preload N captured-payment outcomes (CHARGE SUCCEEDED, PSP
# fee and 1 % platform fee: 4 posting lines each) into a fresh 6-partition topic, with the
# payment and order rows they refer to, then time kasir-ledger draining it, for two mixes:
#   spread: the orders' sellers spread evenly over 1,000 sellers;
#   hot:    90 % of them to one seller's wallet, the rest over 1,000 sellers.
# Prints one line per drain: entries (= outcomes) per second and posting lines per second,
# then the CPU seconds of kasir-ledger, PostgreSQL and Kafka during the drain, per entry.
#   tests/bench/ledger_bench.sh [N]   (default 200000; env MIXES="spread hot",
#   INSTANCES (ledger processes in one group, default 2: one per core, as the PostgreSQL
#   work of one batch runs while the other instance decodes and emits), BATCH (worker.batch.max, default 2000),
#   LEDGER_BIN: the kasir-ledger binary (A);
#   LEDGER_BIN_B: a second binary, for a side-by-side run: per mix, ROUNDS pairs (default 1)
#   of drains, A then B, then B then A, ..., each of its own preloaded N; the ratio B/A of
#   the medians is printed. LEDGER_SQL_A / LEDGER_SQL_B: a SQL file run as the owner before
#   each drain of A / B (e.g. the ledger functions as another branch has them: a function
#   body is the database's, shared by both binaries, not the binary's))
# The ledger is append-only: a run's entries stay in the database (under its own partner).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
set -a; . "$top/var/stack.env"; set +a
. "$top/deploy/local/roles.sh" # daemon_dsn
. "$top/tests/bench/cpu.sh"
N=${1:-${N:-200000}}
bin="$top/build/bin"
LDSN=$(daemon_dsn ledger)
mkdir -p "$top/var/log"
hz=$(getconf CLK_TCK)
kfpid=$(cat "$top/var/kafka/kafka.pid" 2>/dev/null || echo 0)
q() { psql "$KASIR_PG_DSN" -qtAX -v ON_ERROR_STOP=1 -c "$1"; }
secs() { echo "$1 / $hz" | bc -l; }

# drain LABEL BIN SQLFILE MIX: one preload and one timed drain; sets last_rate (lines/s)
# and last_pg_us (PostgreSQL CPU µs per entry)
drain() {
    local label=$1 ledger=$2 sql=$3 mix=$4
    local run="lbench${mix}${label}$(date +%s%N | cut -c1-13)$$" hot=0
    local topic="$run.outcomes" partner="pt_$run"
    [ "$mix" = hot ] && hot=90
    [ -n "$sql" ] && psql "$KASIR_PG_DSN" -qtAX -v ON_ERROR_STOP=1 -f "$sql" >/dev/null
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
    local t0 t1; t0=$(date +%s.%N)
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
            "$ledger" >"$top/var/log/bench-$run-$i.log" 2>&1 &
        pids+=($!)
    done
    trap 'kill ${pids[*]} 2>/dev/null || true' EXIT
    local pg0 kf0 lg0 pg1 kf1 lg1 start end done_n load
    pg0=$(pg_ticks); kf0=$(ticks "$kfpid"); lg0=$(ticks "${pids[@]}")
    start=$(date +%s.%N)
    # done when the group's committed offsets cover the topic: they move in the transaction
    # that posts the entries (a count of the entries themselves would read the whole table
    # five times a second, PostgreSQL CPU charged to the drain)
    while :; do
        done_n=$(q "SELECT coalesce(sum(next_offset), 0) FROM kasir_offsets
                     WHERE group_id = '$run' AND topic = '$topic' AND next_offset > 0")
        [ "$done_n" -ge "$N" ] && break
        for p in "${pids[@]}"; do
            if ! kill -0 "$p" 2>/dev/null; then echo "kasir-ledger died; log var/log/bench-$run-*.log" >&2; exit 1; fi
        done
        if [ "$(echo "$(date +%s.%N) - $start > 900" | bc)" = 1 ]; then echo "timeout at $done_n" >&2; exit 1; fi
        sleep 0.2
    done
    end=$(date +%s.%N)
    pg1=$(pg_ticks); kf1=$(ticks "$kfpid"); lg1=$(ticks "${pids[@]}")
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    kill -TERM "${pids[@]}"; wait "${pids[@]}" || true
    trap - EXIT
    local count lines window el
    count=$(q "SELECT count(*) FROM ledger_entries WHERE partner_id = '$partner'")
    [ "$count" = "$N" ] || { echo "ledger bench: $count entries posted for $N outcomes" >&2; exit 1; }
    lines=$(q "SELECT count(*) FROM ledger_postings p JOIN ledger_entries e USING (entry_id) WHERE e.partner_id = '$partner'")
    window=$(q "SELECT extract(epoch FROM max(posted_at) - min(posted_at)) FROM ledger_entries WHERE partner_id = '$partner'")
    el=$(echo "$end - $start" | bc)
    last_rate=$(echo "$lines / $el" | bc -l)
    last_pg_us=$(echo "($pg1 - $pg0) / $hz / $N * 1000000" | bc -l)
    printf 'ledger %s %s (%s%% to one wallet, %d instance(s)): preload %d outcomes in %.1fs; drained in %.2fs wall = %.0f entries/s, %.0f posting lines/s (commit window %.2fs = %.0f entries/s), load %s\n' \
        "$label" "$mix" "$hot" "${INSTANCES:-2}" "$N" "$(echo "$t1 - $t0" | bc)" "$el" \
        "$(echo "$N / $el" | bc -l)" "$last_rate" \
        "$window" "$(echo "$N / ($window + 0.000001)" | bc -l)" "$load"
    printf 'cpu %s %s: kasir-ledger %.2fs, postgresql %.2fs, kafka %.2fs (during the drain); per entry: ledger %.1f us, postgresql %.1f us, kafka %.1f us\n' \
        "$label" "$mix" "$(secs "$((lg1 - lg0))")" "$(secs "$((pg1 - pg0))")" "$(secs "$((kf1 - kf0))")" \
        "$(echo "($lg1 - $lg0) / $hz / $N * 1000000" | bc -l)" "$last_pg_us" \
        "$(echo "($kf1 - $kf0) / $hz / $N * 1000000" | bc -l)"
    q "DELETE FROM kasir_outbox WHERE topic = '$run.entries'; DELETE FROM kasir_offsets WHERE group_id = '$run'" >/dev/null
    # what the deletes left, vacuumed now rather than by autovacuum during the next drain
    q "VACUUM (ANALYZE) kasir_outbox, kasir_offsets" >/dev/null
}

A=${LEDGER_BIN:-$bin/kasir-ledger}
med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
for mix in ${MIXES:-spread hot}; do
    if [ -z "${LEDGER_BIN_B:-}" ]; then
        drain A "$A" "${LEDGER_SQL_A:-}" "$mix"
        continue
    fi
    ra=(); rb=(); pa=(); pb=()
    for r in $(seq 1 "${ROUNDS:-1}"); do
        # alternate which goes first, so neither always meets the other's dead rows
        if [ $((r % 2)) = 1 ]; then
            drain A "$A" "${LEDGER_SQL_A:-}" "$mix"; ra+=("$last_rate"); pa+=("$last_pg_us")
            drain B "$LEDGER_BIN_B" "${LEDGER_SQL_B:-}" "$mix"; rb+=("$last_rate"); pb+=("$last_pg_us")
        else
            drain B "$LEDGER_BIN_B" "${LEDGER_SQL_B:-}" "$mix"; rb+=("$last_rate"); pb+=("$last_pg_us")
            drain A "$A" "${LEDGER_SQL_A:-}" "$mix"; ra+=("$last_rate"); pa+=("$last_pg_us")
        fi
    done
    printf 'ledger %s A/B: median A %.0f lines/s (postgresql %.1f us/entry), median B %.0f lines/s (postgresql %.1f us/entry), B/A = %.3f (%d rounds)\n' \
        "$mix" "$(med "${ra[@]}")" "$(med "${pa[@]}")" "$(med "${rb[@]}")" "$(med "${pb[@]}")" \
        "$(echo "$(med "${rb[@]}") / $(med "${ra[@]}")" | bc -l)" "${ROUNDS:-1}"
done
# the functions of the last drain stay in the database: B's (the checkout's, usually) back
if [ -n "${LEDGER_BIN_B:-}" ] && [ -n "${LEDGER_SQL_B:-}" ]; then
    psql "$KASIR_PG_DSN" -qtAX -v ON_ERROR_STOP=1 -f "$LEDGER_SQL_B" >/dev/null
fi
