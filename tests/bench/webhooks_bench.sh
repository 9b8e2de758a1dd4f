#!/usr/bin/env bash
# kasir-webhooks benchmark (not a test): preload N WebhookReceived messages into a fresh
# topic, then time kasir-webhooks turning them into outcomes (worker alone, from a
# preloaded topic). The notifications are the sandbox PSP's (Standard Webhooks, already
# verified as the ingress leaves them): for each of N/2 orders a charge.pending then a
# charge.succeeded, so half the events move an order to PENDING_CUSTOMER and half to
# SUCCEEDED (the two sit in two partitions, keyed by event id as the ingress keys them, so
# some successes come first and their pending is stale), every one through the look-up, the state machine, the event record and the
# outbox. The payments and payment_orders rows the ingress would have written are preloaded.
# Prints one "webhooks" line with notifications/s and a CPU split.
#   tests/bench/webhooks_bench.sh [N]   (default 20000; env PARTITIONS (3), BATCH
#   (worker.batch.max), WEBHOOKS_BIN: another kasir-webhooks binary, for A/B runs)
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
set -a; . "$top/var/stack.env"; set +a
. "$top/deploy/local/roles.sh" # daemon_dsn
N=${1:-${N:-20000}}
N=$((N / 2 * 2))
P=${PARTITIONS:-3}
bin="$top/build/bin"
run="whbench$(date +%s)$$"
topic="$run.received"
log="$top/var/log/bench-$run.log"
mkdir -p "$top/var/log"
pg() { psql "$KASIR_PG_DSN" -qtAX -c "$1"; }

"$bin/kasir-topics" --brokers "$KASIR_KAFKA_BROKERS" "$topic:$P" "$topic.retry.5s:1" \
    "$topic.dlq:1" "$run.outcomes:$P" >/dev/null

pg "INSERT INTO payments (payment_id, partner_id, checkout_id, buyer_id, status)
    SELECT 'pay_${run}_' || i, '$run', 'co_${run}_' || i, 'b', 'NOT_STARTED'
      FROM generate_series(0, $N / 2 - 1) i;
    INSERT INTO payment_orders (order_id, payment_id, partner_id, seq, seller_id, amount_minor,
                                currency, method)
    SELECT 'ord_${run}_' || i, 'pay_${run}_' || i, '$run', 1, 's' || (i % 500), 15000000, 'IDR',
           'VIRTUAL_ACCOUNT'
      FROM generate_series(0, $N / 2 - 1) i;
    CHECKPOINT;" >/dev/null

t0=$(date +%s.%N)
python3 - "$N" "$topic" "$run" <<'PY' | "$bin/kasir-produce"
import base64, json, sys
n, topic, run = int(sys.argv[1]), sys.argv[2], sys.argv[3]
out = sys.stdout
for i in range(n // 2):
    order = "ord_%s_%d" % (run, i)
    for j, (typ, st) in enumerate((("charge.pending", "pending"), ("charge.succeeded", "succeeded"))):
        data = {"id": "sbch_%s_%d" % (run, i), "object": "charge", "reference": order,
                "currency": "IDR", "method": "virtual_account", "amount": "150000.00",
                "status": st}
        if st == "pending":
            data["next_action"] = {"type": "virtual_account", "bank_code": "BCA",
                                   "va_number": "8808%012d" % i, "expires_at": "2030-01-01T00:00:00Z"}
        body = json.dumps({"type": typ, "created_at": 1767225600, "data": data}).encode()
        ev = "evt_%s_%d_%d" % (run, i, j)
        out.write(json.dumps({"topic": topic, "key": "sandbox:" + ev,
            "schema": "kasir.webhooks.WebhookReceived",
            "value": {"message_id": "msg_" + ev, "occurred_at": 1767225600000000 + i,
                      "webhook_id": "whk_" + ev, "psp": "sandbox", "event_id": ev,
                      "received_at": 1767225600000000 + i,
                      "headers": {"webhook-id": ev, "content-type": "application/json"},
                      "body": base64.b64encode(body).decode(),
                      "verification": "standard-webhooks"}}) + "\n")
PY
t1=$(date +%s.%N)

# a port below the ephemeral range, free on every address: an ephemeral port free on
# 127.0.0.1 may still be the local port of a connection elsewhere on a busy machine
port=$(python3 -c "
import random, socket
for p in random.sample(range(20000, 32000), 200):
    s = socket.socket()
    try:
        s.bind(('', p)); print(p); break
    except OSError:
        pass
    finally:
        s.close()")
KASIR_WORKER_BATCH_MAX=${BATCH:-2000} KASIR_WORKER_TOPICS=$topic KASIR_WORKER_GROUP=$run \
KASIR_WEBHOOKS_OUTPUT_TOPIC=$run.outcomes KASIR_WORKER_RETRY_DELAYS=5s KASIR_HTTP_PORT=$port \
KASIR_PG_DSN=$(daemon_dsn webhooks) \
KASIR_LOG_LEVEL=${LOG_LEVEL:-warn} "${WEBHOOKS_BIN:-$bin/kasir-webhooks}" >>"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
# CPU ticks of this stack's processes only (the machine may run other stacks)
ticks() { awk '{ print $14 + $15 + ($2 == "(postgres)" ? $16 + $17 : 0) }' "/proc/$1/stat" 2>/dev/null || echo 0; }
pg_cpu() { local pm t c; pm=$(head -1 "$top/var/pg/data/postmaster.pid"); t=$(ticks "$pm")
    for c in $(pgrep -P "$pm"); do t=$((t + $(ticks "$c"))); done; echo "$t"; }
kf_cpu() { ticks "$(cat "$top/var/kafka/kafka.pid")"; }
hz=$(getconf CLK_TCK)
pg0=$(pg_cpu); kf0=$(kf_cpu)
start=$(date +%s.%N)
while :; do
    count=$(pg "SELECT coalesce(sum(next_offset), 0) FROM kasir_offsets WHERE group_id = '$run' AND topic = '$topic' AND next_offset > 0")
    [ "$count" -ge "$N" ] && break
    if ! kill -0 "$pid" 2>/dev/null; then echo "kasir-webhooks died; log $log" >&2; tail "$log" >&2; exit 1; fi
    if [ "$(echo "$(date +%s.%N) - $start > 600" | bc)" = 1 ]; then echo "timeout at $count" >&2; exit 1; fi
    sleep 0.2
done
end=$(date +%s.%N)
pg1=$(pg_cpu); kf1=$(kf_cpu); wk=$(ticks "$pid")
mix=$(pg "SELECT string_agg(result || ' ' || c, ', ' ORDER BY result) FROM (SELECT result, count(*) c FROM webhook_events WHERE psp = 'sandbox' AND event_key LIKE 'evt_${run}_%' GROUP BY 1) x")
outbox=$(pg "SELECT count(*) FROM webhook_operations WHERE object_id LIKE 'ord_${run}_%' AND status = 'SUCCEEDED'")
kill -TERM "$pid"; wait "$pid" || true
trap - EXIT
printf 'webhooks: preload %d notifications in %.1fs; kasir-webhooks read %d in %.2fs wall = %.0f notifications/s (events: %s; %d orders SUCCEEDED)\n' \
    "$N" "$(echo "$t1 - $t0" | bc)" "$N" "$(echo "$end - $start" | bc)" \
    "$(echo "$N / ($end - $start)" | bc -l)" "$mix" "$outbox"
printf 'cpu: kasir-webhooks %.2fs, postgresql %.2fs, kafka %.2fs (this stack'"'"'s processes, during the drain)\n' \
    "$(echo "$wk / $hz" | bc -l)" "$(echo "($pg1 - $pg0) / $hz" | bc -l)" "$(echo "($kf1 - $kf0) / $hz" | bc -l)"
# leave the database as it was
pg "DELETE FROM webhook_events WHERE psp = 'sandbox' AND event_key LIKE 'evt_${run}_%';
    DELETE FROM webhook_operations WHERE object_id LIKE 'ord_${run}_%';
    DELETE FROM payment_orders WHERE partner_id = '$run'; DELETE FROM payments WHERE partner_id = '$run';
    DELETE FROM kasir_outbox WHERE topic = '$run.outcomes'; DELETE FROM kasir_offsets WHERE group_id = '$run'" >/dev/null
