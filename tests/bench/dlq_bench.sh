#!/usr/bin/env bash
# DLQ replay benchmark (not a test): preload N dead letters (DemoEvents with the headers
# the worker runtime writes) into a fresh <run>.in.dlq, then time `kasir-dlq replay` copying
# them all back to <run>.in with the audit on (a kasir_dlq_audit row, every copy marked in
# kasir_dlq_replayed after its delivery report, one statement per --batch marks).
#   tests/bench/dlq_bench.sh [N]     (default 200000; env BATCH: --batch, default 2000;
#   DLQ_BIN: another kasir-dlq binary, for A/B runs)
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
set -a; . "$top/var/stack.env"; set +a
N=${1:-${N:-200000}}
bin="$top/build/bin"
run="dlqbench$(date +%s)$$"
dlq="$run.in.dlq"

"$bin/kasir-topics" --brokers "$KASIR_KAFKA_BROKERS" "$run.in:3" "$dlq:1" >/dev/null
t0=$(date +%s.%N)
python3 - "$N" "$run" <<'PY' | "$bin/kasir-produce" 2>/dev/null
import json, sys
n, run = int(sys.argv[1]), sys.argv[2]
out = sys.stdout
classes = ("poison", "invalid", "failed", "exhausted")
for i in range(n):
    acct = "acct%d" % (i % 1000)
    out.write(json.dumps({"topic": run + ".in.dlq", "key": acct, "schema": "kasir.demo.DemoEvent",
        "value": {"message_id": "%s-m%d" % (run, i), "occurred_at": 1700000000000000 + i,
                  "event_id": "%s-%d" % (run, i), "seq": i, "account": acct,
                  "amount_minor": 100 + i % 997, "currency": "IDR", "note": None},
        "headers": {"kasir.message_id": "%s-m%d" % (run, i), "kasir.producer": "bench",
                    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                    "kasir.attempt": "1", "kasir.origin.topic": run + ".in",
                    "kasir.origin.partition": str(i % 3), "kasir.origin.offset": str(i),
                    "kasir.origin.timestamp": "1700000000000", "kasir.error.group": run,
                    "kasir.error.class": classes[i % 4], "kasir.error.code": "invalid",
                    "kasir.error.message": "bench failure", "kasir.error.field": "amount_minor",
                    "kasir.error.first_failure": "1700000000000",
                    "kasir.error.last_failure": "1700000000000",
                    "kasir.error.instance": "bench"}}) + "\n")
PY
t1=$(date +%s.%N)
start=$(date +%s.%N)
timef="$top/var/bench/$run.time"
mkdir -p "$top/var/bench"
summary=$(KASIR_LOG_LEVEL=warn /usr/bin/time -o "$timef" -f '%U %S' "${DLQ_BIN:-$bin/kasir-dlq}" \
          replay --dlq "$dlq" --quiet --batch "${BATCH:-2000}" --output json --by bench | tail -1)
end=$(date +%s.%N)
cs=$(awk '{print $1 + $2}' "$timef"); rm -f "$timef"
replayed=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['replayed'])" "$summary")
marks=$(psql "$KASIR_PG_DSN" -qtAX -c "SELECT count(*) FROM kasir_dlq_replayed_messages WHERE topic = '$dlq'")
[ "$replayed" = "$N" ] && [ "$marks" = "$N" ] || { echo "dlq bench: replayed $replayed, marked $marks of $N" >&2; exit 1; }
printf 'dlq: preload %d dead letters in %.1fs; kasir-dlq replay copied and recorded %d in %.2fs wall (start-up, scan and final flush included) = %.0f msgs/s (audit on, batch %s); kasir-dlq CPU %.2fs\n' \
    "$N" "$(echo "$t1 - $t0" | bc)" "$replayed" "$(echo "$end - $start" | bc)" \
    "$(echo "$replayed / ($end - $start)" | bc -l)" "${BATCH:-2000}" "$cs"
# the marks of a bench are of no further use (the audit row stays, as for any replay)
psql "$KASIR_PG_DSN" -qtAX -c "DELETE FROM kasir_dlq_replayed WHERE topic = '$dlq'" >/dev/null
