#!/usr/bin/env bash
# make demo (after make up): runs the pipeline as far as it exists: kasir-ingress in the
# background (var/run/kasir-ingress.pid, logs in var/log/kasir-ingress.log), two demo
# partners, var/demo.env (SPEC 7), a few requests through every endpoint, a summary and a
# ready-to-paste curl. Nothing is stopped at the end; `make down` (services.sh stop) does.
# Running it again keeps the partners, keys and secrets of var/demo.env.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
set -a; . var/stack.env; set +a
bin="$top/build/bin"; run="$top/var/run"; logs="$top/var/log"
mkdir -p "$run" "$logs"
PORT=${KASIR_DEMO_PORT:-8080}
ADMIN_PORT=${KASIR_DEMO_ADMIN_PORT:-$((PORT + 1))} # /healthz, /readyz, /metrics (http.admin_port)
URL="http://127.0.0.1:$PORT"
ADMIN_URL="http://127.0.0.1:$ADMIN_PORT"
say() { printf 'demo: %s\n' "$*"; }

# --- secrets: kept in the git-ignored var/demo.env across runs ---------------------------
if [ -f var/demo.env ]; then set -a; . var/demo.env; set +a; fi
rnd() { openssl rand -hex "$1"; }
: "${KASIR_SANDBOX_WEBHOOK_SECRET:=whsec_$(openssl rand -base64 24)}"
: "${KASIR_STRIPE_WEBHOOK_SECRET:=whsec_$(rnd 16)}"
: "${KASIR_XENDIT_CALLBACK_TOKEN:=$(rnd 24)}"
: "${KASIR_MIDTRANS_SERVER_KEY:=SB-Mid-server-$(rnd 12)}"
: "${KASIR_AUTH_JWT_SECRET:=$(rnd 32)}"

# --- the ingress ---------------------------------------------------------------------------
pidf="$run/kasir-ingress.pid"
if [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; then
    say "kasir-ingress already running (pid $(cat "$pidf"))"
else
    KASIR_HTTP_PORT=$PORT KASIR_HTTP_ADMIN_PORT=$ADMIN_PORT \
    KASIR_WEBHOOK_SANDBOX_SECRET=$KASIR_SANDBOX_WEBHOOK_SECRET \
    KASIR_WEBHOOK_STRIPE_SECRET=$KASIR_STRIPE_WEBHOOK_SECRET \
    KASIR_WEBHOOK_XENDIT_TOKEN=$KASIR_XENDIT_CALLBACK_TOKEN \
    KASIR_WEBHOOK_MIDTRANS_SERVER_KEY=$KASIR_MIDTRANS_SERVER_KEY \
    KASIR_AUTH_JWT_SECRET=$KASIR_AUTH_JWT_SECRET \
        nohup "$bin/kasir-ingress" serve >>"$logs/kasir-ingress.log" 2>&1 </dev/null &
    echo $! > "$pidf"
    say "kasir-ingress started (pid $(cat "$pidf"), port $PORT, log var/log/kasir-ingress.log)"
fi
for _ in $(seq 1 120); do
    curl -fsS "$ADMIN_URL/readyz" >/dev/null 2>&1 && break
    kill -0 "$(cat "$pidf")" 2>/dev/null || { tail -20 "$logs/kasir-ingress.log" >&2; exit 1; }
    sleep 0.25
done
curl -fsS "$ADMIN_URL/readyz" >/dev/null || { echo "demo: ingress not ready" >&2; exit 1; }

# --- partners A and B ------------------------------------------------------------------------
key_ok() { [ -n "${1:-}" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' -u "$1:" "$URL/v1/payments?ids=pay_x")" = 200 ]; }
seed() {  # name [scopes] -> sets KEY, KEY_ID, PARTNER
    local out; out=$("$bin/kasir-ingress" partner add "$1" ${2:+--scopes "$2"})
    PARTNER=$(sed -n 's/^partner_id=//p' <<<"$out"); KEY_ID=$(sed -n 's/^key_id=//p' <<<"$out")
    KEY=$(sed -n 's/^api_key=//p' <<<"$out")
}
if ! key_ok "${KASIR_DEMO_KEY_A:-}"; then
    seed "Demo Marketplace A"; KASIR_DEMO_KEY_A=$KEY; KASIR_DEMO_KEY_ID_A=$KEY_ID; KASIR_DEMO_PARTNER_A=$PARTNER
    say "seeded partner A ($KASIR_DEMO_PARTNER_A)"
fi
if ! key_ok "${KASIR_DEMO_KEY_B:-}"; then
    seed "Demo Platform B"; KASIR_DEMO_KEY_B=$KEY; KASIR_DEMO_KEY_ID_B=$KEY_ID; KASIR_DEMO_PARTNER_B=$PARTNER
    say "seeded partner B ($KASIR_DEMO_PARTNER_B)"
fi
# settlement files are PSP data: an operator's key (scope settlements:write) uploads them
ops_ok() { [ -n "${1:-}" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' -u "$1:" "$URL/v1/payments?ids=pay_x")" = 403 ]; }
if ! ops_ok "${KASIR_DEMO_OPS_KEY:-}"; then
    seed "Demo Operator" "settlements:write"; KASIR_DEMO_OPS_KEY=$KEY
    say "seeded an operator key ($KEY_ID)"
fi
umask 077
cat > var/demo.env <<ENV
# written by deploy/local/demo.sh; secrets for the local demo only (var/ is git-ignored)
KASIR_URL="$URL"
KASIR_DEMO_KEY_A="$KASIR_DEMO_KEY_A"
KASIR_DEMO_KEY_ID_A="${KASIR_DEMO_KEY_ID_A:-}"
KASIR_DEMO_PARTNER_A="${KASIR_DEMO_PARTNER_A:-}"
KASIR_DEMO_KEY_B="$KASIR_DEMO_KEY_B"
KASIR_DEMO_KEY_ID_B="${KASIR_DEMO_KEY_ID_B:-}"
KASIR_DEMO_PARTNER_B="${KASIR_DEMO_PARTNER_B:-}"
KASIR_DEMO_OPS_KEY="$KASIR_DEMO_OPS_KEY"
KASIR_ADMIN_URL="$ADMIN_URL"
KASIR_KAFKA_BROKERS="$KASIR_KAFKA_BROKERS"
KASIR_PG_DSN="$KASIR_PG_DSN"
KASIR_SANDBOX_WEBHOOK_SECRET="$KASIR_SANDBOX_WEBHOOK_SECRET"
KASIR_STRIPE_WEBHOOK_SECRET="$KASIR_STRIPE_WEBHOOK_SECRET"
KASIR_XENDIT_CALLBACK_TOKEN="$KASIR_XENDIT_CALLBACK_TOKEN"
KASIR_MIDTRANS_SERVER_KEY="$KASIR_MIDTRANS_SERVER_KEY"
KASIR_AUTH_JWT_SECRET="$KASIR_AUTH_JWT_SECRET"
ENV
umask 022
say "wrote var/demo.env"

# --- traffic -------------------------------------------------------------------------------------
export URL KASIR_DEMO_KEY_A KASIR_DEMO_KEY_B KASIR_DEMO_OPS_KEY KASIR_SANDBOX_WEBHOOK_SECRET KASIR_STRIPE_WEBHOOK_SECRET \
       KASIR_XENDIT_CALLBACK_TOKEN KASIR_MIDTRANS_SERVER_KEY KASIR_DEMO_KEY_ID_A
/usr/bin/python3 - <<'PY'
import base64, hashlib, hmac, json, os, secrets, time, urllib.request, urllib.error, uuid
URL = os.environ["URL"]
A, B = os.environ["KASIR_DEMO_KEY_A"], os.environ["KASIR_DEMO_KEY_B"]
run = uuid.uuid4().hex[:8]
rows = []

def call(method, path, body=None, key=None, headers=None, raw=None, ctype="application/json"):
    h = dict(headers or {})
    if key:
        h["Authorization"] = "Basic " + base64.b64encode((key + ":").encode()).decode()
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    if data is not None:
        h["Content-Type"] = ctype
    req = urllib.request.Request(URL + path, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)

def note(what, st, body):
    try:
        j = json.loads(body)
    except ValueError:
        j = {}
    detail = (j.get("refund_id") or j.get("payout_id") or j.get("webhook_id") or j.get("file_id")
              or j.get("payment_id") or j.get("code") or "")
    rows.append((what, st, detail))
    return j

orders = {"card": {"payment_token": "tok_sandbox_visa"}, "virtual_account": {"bank_code": "BCA"},
          "qris": {}, "ewallet": {"ewallet_channel": "OVO"}, "bank_transfer": {"bank_code": "BNI"}}
first = None
for i, (m, extra) in enumerate(orders.items()):
    body = {"buyer": {"id": "buyer-%d" % i}, "checkout_id": "demo-%s-%d" % (run, i),
            "payment_orders": [dict({"seller_id": "seller-%d" % (i % 2), "amount": "%d.00" % (150000 + 1000 * i),
                                     "currency": "IDR", "method": m}, **extra)]}
    key = "demo-%s-%d" % (run, i)
    st, b, _ = call("POST", "/v1/payments", body, A, {"Idempotency-Key": key})
    j = note("payment " + m, st, b)
    if first is None:
        first = (body, key, b, j)
st, b, h = call("POST", "/v1/payments", first[0], A, {"Idempotency-Key": first[1]})
rows.append(("replay (same key, same body)", st, "byte-identical" if b == first[2] else "DIFFERENT"))
st, b, _ = call("POST", "/v1/payments", dict(first[0], checkout_id="other"), A, {"Idempotency-Key": first[1]})
note("same key, other body", st, b)
st, b, _ = call("GET", "/v1/payments/" + first[3]["payment_id"], key=B)
note("partner B reads A's payment", st, b)
oid = first[3]["payment_orders"][0]["payment_order_id"]
st, b, _ = call("POST", "/v1/refunds", {"payment_order_id": oid, "amount": "50000.00", "currency": "IDR"}, A,
                {"Idempotency-Key": "demo-refund-" + run})
note("refund 50000.00", st, b)
st, b, _ = call("POST", "/v1/payouts", {"seller_id": "seller-0", "amount": "100000.00", "currency": "IDR",
                                        "channel": "bank_account", "bank_code": "BCA",
                                        "destination_account": "1234567890"}, A, {"Idempotency-Key": "demo-payout-" + run})
note("payout 100000.00", st, b)
now = int(time.time())
body = json.dumps({"id": "evt_demo_" + run, "type": "payment_intent.succeeded"}).encode()
sig = hmac.new(os.environ["KASIR_STRIPE_WEBHOOK_SECRET"].encode(), b"%d." % now + body, hashlib.sha256).hexdigest()
note("webhook stripe", *call("POST", "/v1/webhooks/stripe", raw=body, headers={"Stripe-Signature": "t=%d,v1=%s" % (now, sig)})[:2])
note("webhook stripe, bad signature", *call("POST", "/v1/webhooks/stripe", raw=body, headers={"Stripe-Signature": "t=%d,v1=%s" % (now, "0" * 64)})[:2])
body = json.dumps({"id": "xnd_demo_" + run, "status": "PAID"}).encode()
note("webhook xendit", *call("POST", "/v1/webhooks/xendit", raw=body, headers={"x-callback-token": os.environ["KASIR_XENDIT_CALLBACK_TOKEN"]})[:2])
o, sc, g = "demo-order-" + run, "200", "150000.00"
mt = {"order_id": o, "status_code": sc, "gross_amount": g, "transaction_status": "settlement",
      "transaction_id": str(uuid.uuid4()),
      "signature_key": hashlib.sha512((o + sc + g + os.environ["KASIR_MIDTRANS_SERVER_KEY"]).encode()).hexdigest()}
note("webhook midtrans", *call("POST", "/v1/webhooks/midtrans", mt)[:2])
wid = "msg_demo_" + run
body = json.dumps({"type": "payment.succeeded", "data": {"order": oid}}).encode()
k = base64.b64decode(os.environ["KASIR_SANDBOX_WEBHOOK_SECRET"][6:])
s = base64.b64encode(hmac.new(k, b"%s.%d." % (wid.encode(), now) + body, hashlib.sha256).digest()).decode()
note("webhook sandbox (standard webhooks)", *call("POST", "/v1/webhooks/sandbox", raw=body,
     headers={"webhook-id": wid, "webhook-timestamp": str(now), "webhook-signature": "v1," + s})[:2])
csv = ("psp_reference,amount,fee,currency,status,settled_at\n"
       "sbx_%s_1,150000.00,1500.00,IDR,settled,2026-05-01T10:00:00Z\n"
       "sbx_%s_2,50000.00,0,IDR,refunded,2026-05-01T11:00:00Z\n" % (run, run)).encode()
note("settlement file (2 rows), operator key", *call("POST", "/v1/settlements/sandbox", key=os.environ["KASIR_DEMO_OPS_KEY"], raw=csv, ctype="text/csv")[:2])
print()
print("  %-40s %-6s %s" % ("request", "status", "result"))
for w, st, d in rows:
    print("  %-40s %-6s %s" % (w, st, d))
PY
echo
say "Kafka topics now hold the events: kcat -b $KASIR_KAFKA_BROKERS -C -t kasir.payments.requested -e -q | wc -l"
say "try it (the keys are in var/demo.env):"
cat <<CURL

  set -a; . var/demo.env; set +a
  curl -s -u "\$KASIR_DEMO_KEY_A:" -H 'Content-Type: application/json' \\
       -H "Idempotency-Key: key-\$(date +%s%N)" "\$KASIR_URL/v1/payments" \\
       -d '{"buyer":{"id":"buyer-1"},"checkout_id":"checkout-'\$(date +%s%N)'","payment_orders":[{"seller_id":"seller-1","amount":"150000.00","currency":"IDR","method":"qris"}]}'

  API: \$KASIR_URL/openapi.json   metrics: \$KASIR_ADMIN_URL/metrics   stop: make down (services.sh stop)
CURL
