#!/usr/bin/env bash
# make demo (after make up): the whole pipeline on the local stack.
#   1. var/demo.env: ports, URLs and secrets generated once (services.sh init);
#   2. the sandbox PSP, kasir-ingress, -risk, -executor, -ledger and -webhooks started in the
#      background (services.sh start: pid files in var/run, logs in var/log), wired together;
#      a daemon whose binary is not built fails the demo, naming it;
#   3. two demo partners and an operator key (kept in var/demo.env across runs), a fee plan;
#   4. the load, the wait until the pipeline is quiet, and the summary (demo_load.py);
#   5. a ready-to-paste curl. Nothing is stopped at the end: `make down` stops it all.
# KASIR_DEMO_PORT moves every port (base, base+1 ... base+6; default 8080 or var/demo.env's).
# KASIR_DEMO_DAEMONS (development only) starts a subset and says what the load cannot show.
# KASIR_DEMO_PAYMENTS sets the burst (1,000 card payments).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
say() { printf 'demo: %s\n' "$*"; }
svc() { bash "$top/deploy/local/services.sh" "$@"; }
export KASIR_SERVICES_ENV="$top/var/demo.env"
export KASIR_SERVICES_RUN="$top/var/run" KASIR_SERVICES_LOG="$top/var/log"
bin="$top/build/bin"

svc init ${KASIR_DEMO_PORT:+--port-base "$KASIR_DEMO_PORT"}
# every daemon of the pipeline, or a loud failure naming those missing
svc check
if [ -n "${KASIR_DEMO_DAEMONS:-}" ]; then
    say "KASIR_DEMO_DAEMONS: only '$KASIR_DEMO_DAEMONS' (development); the load says what it cannot show"
fi
svc start
set -a; . "$KASIR_SERVICES_ENV"; set +a

# --- partners A and B, an operator key ---------------------------------------------------------
status_of() { curl -s -o /dev/null -w '%{http_code}' -u "$1:" "$KASIR_URL/v1/payments?ids=pay_x"; }
seed() {  # name [scopes] -> sets KEY, KEY_ID, PARTNER
    local out; out=$("$bin/kasir-ingress" partner add "$1" --rps 100000 --burst 100000 ${2:+--scopes "$2"})
    PARTNER=$(sed -n 's/^partner_id=//p' <<<"$out"); KEY_ID=$(sed -n 's/^key_id=//p' <<<"$out")
    KEY=$(sed -n 's/^api_key=//p' <<<"$out")
}
if [ -z "${KASIR_DEMO_KEY_A:-}" ] || [ "$(status_of "$KASIR_DEMO_KEY_A")" != 200 ]; then
    seed "Demo Marketplace A"
    svc set "KASIR_DEMO_KEY_A=$KEY" "KASIR_DEMO_KEY_ID_A=$KEY_ID" "KASIR_DEMO_PARTNER_A=$PARTNER"
    say "seeded partner A ($PARTNER)"
fi
if [ -z "${KASIR_DEMO_KEY_B:-}" ] || [ "$(status_of "$KASIR_DEMO_KEY_B")" != 200 ]; then
    seed "Demo Platform B"
    svc set "KASIR_DEMO_KEY_B=$KEY" "KASIR_DEMO_KEY_ID_B=$KEY_ID" "KASIR_DEMO_PARTNER_B=$PARTNER"
    say "seeded partner B ($PARTNER)"
fi
# settlement files are PSP data: an operator's key (scope settlements:write) uploads them
if [ -z "${KASIR_DEMO_OPS_KEY:-}" ] || [ "$(status_of "$KASIR_DEMO_OPS_KEY")" != 403 ]; then
    seed "Demo Operator" "settlements:write"
    svc set "KASIR_DEMO_OPS_KEY=$KEY"
    say "seeded an operator key ($KEY_ID)"
fi
set -a; . "$KASIR_SERVICES_ENV"; set +a
# platform fees: 1 % for A, 2.5 % + Rp 500 for B (docs/LEDGER.md, ledger_fee_plans)
psql "$KASIR_PG_DSN" -qX -v ON_ERROR_STOP=1 -c "INSERT INTO ledger_fee_plans VALUES
    ('$KASIR_DEMO_PARTNER_A', 'IDR', 100, 0), ('$KASIR_DEMO_PARTNER_B', 'IDR', 250, 50000)
    ON CONFLICT DO NOTHING" >/dev/null
say "wrote var/demo.env (KASIR_URL, KASIR_DEMO_KEY_A/B, KASIR_KAFKA_BROKERS, KASIR_PG_DSN, webhook secrets)"

# --- the load and the summary ----------------------------------------------------------------
rc=0
/usr/bin/python3 "$top/deploy/local/demo_load.py" || rc=$?

echo
say "try it (the keys are in var/demo.env):"
cat <<CURL

  set -a; . var/demo.env; set +a
  curl -s -u "\$KASIR_DEMO_KEY_A:" -H 'Content-Type: application/json' \\
       -H "Idempotency-Key: key-\$(date +%s%N)" "\$KASIR_URL/v1/payments" \\
       -d '{"buyer":{"id":"buyer-1"},"checkout_id":"checkout-'\$(date +%s%N)'","payment_orders":[{"seller_id":"seller-1","amount":"150000.00","currency":"IDR","method":"card","payment_token":"tok_sandbox_visa"}]}'
  curl -s -u "\$KASIR_DEMO_KEY_A:" "\$KASIR_URL/v1/payments/<payment_id from above>"

  API: \$KASIR_URL/openapi.json   metrics: \$KASIR_ADMIN_URL/metrics   daemons: bash deploy/local/services.sh status
  logs: var/log/kasir-*.log       stop everything (daemons, Kafka, PostgreSQL): make down
CURL
if [ "$rc" -ne 0 ]; then
    say "FAILED: the ledger did not verify or the pipeline did not become quiet (see above)" >&2
fi
exit "$rc"
