#!/usr/bin/env bash
# End to end, HTTP accept -> ledger posted (SPEC 8: >= 2,500 payments/s, p99 <= 150 ms, the
# sandbox PSP at 0 ms, every daemon, Kafka and PostgreSQL on the one machine).
# Starts the whole pipeline with deploy/local/services.sh (the demo's wiring; its own env
# file, ports and consumer groups under var/tmp/bench-e2e), drives POST /v1/payments with
# card orders through tests/bench/ingress_load.c (open loop, fixed offered rate), waits until
# the pipeline is quiet, and reads from PostgreSQL, for this run's payments:
#   e2e payments/s  captures posted / (last capture posted - first payment accepted)
#   e2e p50, p99    capture entry's posted_at - payment row's created_at (the ingress's
#                   commit after Kafka confirmed, about when the 2xx leaves)
#   CPU µs/payment  per process (/proc/<pid>/stat, user+system) over the run and its drain:
#                   each daemon, PostgreSQL (the whole cluster) and the Kafka broker
# The risk rules are deploy/risk/rules.json without its velocity rules: the generator reuses
# 1,000 buyer ids, which velocity would hold for review.
#   E2E_RATES="2500" E2E_SECONDS=20 E2E_CONNS=64 E2E_WARMUP=5 E2E_DRAIN=300 (seconds to quiet)
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
set -a; . "$top/var/stack.env"; set +a
rates=${E2E_RATES:-2500}
secs=${E2E_SECONDS:-20}
conns=${E2E_CONNS:-64}
warmup=${E2E_WARMUP:-5}
drain=${E2E_DRAIN:-300}
hz=$(getconf CLK_TCK)
make -s -C "$top" build/bench/ingress_load
dir="$top/var/tmp/bench-e2e"
rm -rf "$dir"; mkdir -p "$dir/run" "$top/var/log/bench-e2e"
export KASIR_SERVICES_ENV="$dir/pipeline.env" KASIR_SERVICES_RUN="$dir/run"
export KASIR_SERVICES_LOG="$top/var/log/bench-e2e" KASIR_GROUP_SUFFIX="-bench-$(date +%s)"
export KASIR_RETRY_DELAYS="5s,1m,10m" KASIR_RISK_RULES_FILE="$dir/rules.json"
unset KASIR_DEMO_DAEMONS
/usr/bin/python3 - "$top/deploy/risk/rules.json" "$dir/rules.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
r["rules"] = [x for x in r["rules"] if x["type"] != "velocity"]
json.dump(r, open(sys.argv[2], "w"))
PY
base=$(/usr/bin/python3 - <<'PY'
import random, socket
for _ in range(200):
    b = random.randint(20000, 31000)
    try:
        for p in range(b, b + 7):
            with socket.socket() as s:
                s.bind(("127.0.0.1", p))
        print(b); break
    except OSError:
        pass
PY
)
svc() { bash "$top/deploy/local/services.sh" "$@"; }
svc init --port-base "$base" >/dev/null
trap 'svc stop >/dev/null 2>&1 || true' EXIT
svc start >&2
groups=$(for w in risk executor ledger webhooks; do printf 'kasir-%s%s ' "$w" "$KASIR_GROUP_SUFFIX"; done)
out=$("$top/build/bin/kasir-ingress" partner add "bench-e2e-$(date +%s)" --rps 1000000 --burst 1000000)
key=$(sed -n 's/^api_key=//p' <<<"$out")
partner=$(sed -n 's/^partner_id=//p' <<<"$out")

. "$top/tests/bench/cpu.sh" # ticks PID..., pg_ticks
kafka_pid=$(cat "$top/var/kafka/kafka.pid" 2>/dev/null || true)
pid_of() { cat "$dir/run/kasir-$1.pid"; }
daemons="ingress risk executor ledger webhooks psp-sandbox"
quiet() { /usr/bin/python3 "$top/deploy/local/pipeline.py" quiet --timeout "$1" $groups >/dev/null; }
load() { INGRESS_METHOD=card INGRESS_KEY=$key INGRESS_TIMELINE= \
         "$top/build/bench/ingress_load" 127.0.0.1 "$base" - "$@"; }

# warm-up: connections, plan caches, the JIT of the broker; then the backlog drains
if [ "$warmup" -gt 0 ]; then load "${rates%% *}" "$warmup" "$conns" >/dev/null; fi
quiet "$drain" || echo "e2e: warm-up not drained in ${drain}s" >&2

echo "| offered/s | accepted/s | HTTP p99 ms | e2e payments/s | e2e p50 ms | e2e p99 ms | CPU µs/payment: ingress, risk, executor, ledger, webhooks, sandbox, PostgreSQL, Kafka | load avg |"
echo "|---|---|---|---|---|---|---|---|"
for r in $rates; do
    declare -A before=()
    for d in $daemons; do before[$d]=$(ticks "$(pid_of "$d")"); done
    pg0=$(pg_ticks); k0=$(ticks $kafka_pid)
    since=$(psql "$KASIR_PG_DSN" -tAXc "SELECT now()")
    line=$(load "$r" "$secs" "$conns")
    ok=1; quiet "$drain" || ok=0
    cpu=""
    n=$(psql "$KASIR_PG_DSN" -tAXc "SELECT count(*) FROM payments WHERE partner_id = '$partner' AND created_at >= '$since'")
    for d in $daemons; do
        t=$(( $(ticks "$(pid_of "$d")") - ${before[$d]} ))
        cpu="$cpu$(( t * 1000000 / hz / (n > 0 ? n : 1) )), "
    done
    pg1=$(pg_ticks); k1=$(ticks $kafka_pid)
    cpu="$cpu$(( (pg1 - pg0) * 1000000 / hz / (n > 0 ? n : 1) )), $(( (k1 - k0) * 1000000 / hz / (n > 0 ? n : 1) ))"
    read -r posted rate p50 p99 < <(psql "$KASIR_PG_DSN" -tAX -F ' ' -c "
        WITH x AS (SELECT p.created_at, e.posted_at FROM payments p
                     JOIN payment_orders o USING (payment_id)
                     JOIN ledger_entries e ON e.source_key = 'capture:' || o.order_id
                    WHERE p.partner_id = '$partner' AND p.created_at >= '$since')
        SELECT count(*),
               round(count(*) / greatest(extract(epoch FROM max(posted_at) - min(created_at)), 0.001)),
               round(1000 * percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM posted_at - created_at))::numeric, 1),
               round(1000 * percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM posted_at - created_at))::numeric, 1)
          FROM x")
    get() { sed -nE "s/.* $1=([^ ]+).*/\1/p" <<<" $line"; }
    acc=$(get accepted_per_s); p99http=$(get p99_ms)
    note=""; [ "$ok" = 1 ] || note=" (not quiet after ${drain}s)"
    [ "$posted" = "$n" ] || note="$note ($posted of $n payments posted)"
    echo "| $r | ${acc:-?} | ${p99http:-?} | $rate$note | $p50 | $p99 | $cpu | $(cut -d' ' -f1-3 /proc/loadavg) |"
    echo "e2e: ingress_load: $line" >&2
done
