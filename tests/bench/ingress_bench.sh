#!/usr/bin/env bash
# Ingress throughput and latency (SPEC 8: >= 5,000 accepted payments/s at p99 <= 20 ms).
# Starts its own kasir-ingress (as shipped: info logs to a file, acks=all, synchronous
# commit), a partner without a practical rate limit, and drives POST /v1/payments with the
# open-loop generator tests/bench/ingress_load.c at fixed offered rates: unique
# Idempotency-Keys and checkout ids, HTTP Basic auth, keep-alive connections. Latency runs
# from each request's scheduled send time to its last response byte.
#   INGRESS_RATES="2000 5000 6000" INGRESS_SECONDS=20 INGRESS_CONNS=128
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
set -a; . "$top/var/stack.env"; set +a
mkdir -p "$top/build/bench" "$top/var/log"
make -s -C "$top" build/bench/ingress_load
rates=${INGRESS_RATES:-"2000 5000 6000"}
secs=${INGRESS_SECONDS:-20}
conns=${INGRESS_CONNS:-128}
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
out=$("$top/build/bin/kasir-ingress" partner add "bench-$(date +%s)" --rps 1000000)
key=$(sed -n 's/^api_key=//p' <<<"$out")
partner=$(sed -n 's/^partner_id=//p' <<<"$out")
psql "$KASIR_PG_DSN" -qc "VACUUM ANALYZE idempotency_keys, payments, payment_orders" >/dev/null
log="$top/var/log/bench-ingress.log"
KASIR_HTTP_PORT=$port KASIR_AUTH_JWT_SECRET=$(openssl rand -hex 32) \
    "$top/build/bin/kasir-ingress" serve >"$log" 2>&1 &
pid=$!
cleanup() {
    kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
    # the bench's own rows go, so that repeated runs measure the same table sizes
    psql "$KASIR_PG_DSN" -q -c "DELETE FROM idempotency_keys WHERE partner_id = '$partner'" \
        -c "DELETE FROM payment_orders WHERE partner_id = '$partner'" \
        -c "DELETE FROM payments WHERE partner_id = '$partner'" >/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
# warm-up: connections, plan caches, producer batches
INGRESS_KEY=$key "$top/build/bench/ingress_load" 127.0.0.1 "$port" - 1000 3 "$conns" >/dev/null
echo "| offered/s | accepted/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | other answers |"
echo "|---|---|---|---|---|---|---|---|"
for r in $rates; do
    line=$(INGRESS_KEY=$key "$top/build/bench/ingress_load" 127.0.0.1 "$port" - "$r" "$secs" "$conns" 2)
    get() { sed -nE "s/.*$1=([^ ]+).*/\1/p" <<<"$line"; }
    others=$(grep -oE "status_[0-9]+=[0-9]+" <<<"$line" | tr "\n" " " || true)
    echo "| $r | $(get accepted_per_s) | $(get p50_ms) | $(get p90_ms) | $(get p99_ms) | $(get p999_ms) | $(get max_ms) | ${others:-none} |"
    sleep 2
done
echo
echo "ingress log: var/log/bench-ingress.log ($(wc -l <"$log") lines); $secs s per rate after 2 s of warm-up, $conns connections"
