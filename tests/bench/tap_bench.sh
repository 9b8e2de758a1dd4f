#!/usr/bin/env bash
# kasir-tap benchmark (not a test): preload N DemoEvents into a fresh topic (3 partitions),
# then time `kasir-tap` decoding all of it to JSON lines (the bar), and to CSV and an Avro
# file for comparison, each written to a file under var/bench (removed afterwards).
#   tests/bench/tap_bench.sh [N]     (default 500000; TAP_BIN: another kasir-tap, for A/B)
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
set -a; . "$top/var/stack.env"; set +a
N=${1:-${N:-500000}}
bin="$top/build/bin"
topic="tapbench$(date +%s)$$"

"$bin/kasir-topics" --brokers "$KASIR_KAFKA_BROKERS" "$topic:3" >/dev/null
t0=$(date +%s.%N)
python3 - "$N" "$topic" <<'PY' | "$bin/kasir-produce" 2>/dev/null
import json, sys
n, topic = int(sys.argv[1]), sys.argv[2]
out = sys.stdout
for i in range(n):
    acct = "acct%d" % (i % 1000)
    out.write(json.dumps({"topic": topic, "key": acct, "schema": "kasir.demo.DemoEvent",
        "value": {"message_id": "%s-m%d" % (topic, i), "occurred_at": 1700000000000000 + i,
                  "event_id": "%s-%d" % (topic, i), "seq": i, "account": acct,
                  "amount_minor": 100 + i % 997, "currency": "IDR", "note": None}}) + "\n")
PY
t1=$(date +%s.%N)
printf 'tap: preload %d msgs in %.1fs\n' "$N" "$(echo "$t1 - $t0" | bc)"
out="$top/var/bench/$topic.out"
mkdir -p "$top/var/bench"
for fmt in json csv avro; do
    start=$(date +%s.%N)
    # /usr/bin/time: the tool's own CPU (all its threads), a figure a busy machine moves less
    cpu=$( { KASIR_LOG_LEVEL=warn /usr/bin/time -f '%U %S' "${TAP_BIN:-$bin/kasir-tap}" \
             --format "$fmt" --output "$out" "$topic" 2>&1 >/dev/null | tail -1; } )
    end=$(date +%s.%N)
    cs=$(echo "$cpu" | awk '{print $1 + $2}')
    printf 'tap: --format %s: %d msgs (%d bytes) in %.2fs wall (start-up included) = %.0f msgs/s; kasir-tap CPU %.2fs = %.0f msgs per CPU-second\n' \
        "$fmt" "$N" "$(stat -c %s "$out")" "$(echo "$end - $start" | bc)" \
        "$(echo "$N / ($end - $start)" | bc -l)" "$cs" "$(echo "$N / ($cs + 0.000001)" | bc -l)"
done
rm -f "$out"
