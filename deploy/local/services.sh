#!/usr/bin/env bash
# Kasir's daemons on the local stack, wired into one pipeline: the one place that says which
# setting of which daemon comes from where. `make demo`, the end-to-end test
# (tests/integration/pipeline_util.py) and the end-to-end bench all start the pipeline here,
# each from its own env file.
#
#   services.sh init [--port-base N]  writes what the env file lacks: ports, URLs, and secrets
#                                     generated once (values already there are kept)
#   services.sh set NAME=VALUE ...    sets variables in the env file (demo partner keys)
#   services.sh check [name...]       exits 1 naming every daemon whose binary is not built
#   services.sh start [name...]       starts them (default: the whole pipeline) in the
#                                     background, each once: pid in <run>/kasir-<name>.pid, log
#                                     in <log>/kasir-<name>.log; waits until each is healthy
#   services.sh stop [name...]        stops them (default: every pid file under <run>): TERM,
#                                     then KILL after 20 s
#   services.sh status                lists them
#
# Environment: KASIR_SERVICES_ENV (the env file, default var/demo.env), KASIR_SERVICES_RUN
# (pid files, default var/run), KASIR_SERVICES_LOG (logs, default var/log), KASIR_SERVICES_BIN
# (the programs, default build/bin), KASIR_DEMO_DAEMONS (the daemons `start` starts when none
# is named; for development before every daemon exists).
# Only processes named by our own pid files, running one of our own build/bin programs, are
# ever signalled.
set -euo pipefail
# the env file holds secrets: everything written here is the user's alone
umask 077
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/deploy/local/roles.sh" # daemon_dsn
envf=${KASIR_SERVICES_ENV:-$top/var/demo.env}
run=${KASIR_SERVICES_RUN:-$top/var/run}
logs=${KASIR_SERVICES_LOG:-$top/var/log}
bin=${KASIR_SERVICES_BIN:-$top/build/bin}
# start order: the PSP first (the executor calls it), the ingress before the sandbox can
# deliver webhooks to it, the workers in the order a payment meets them
PIPELINE="psp-sandbox ingress risk executor ledger webhooks"
say() { printf 'services: %s\n' "$*"; }
die() { printf 'services: %s\n' "$*" >&2; exit 1; }

load_env() {
    [ -f "$envf" ] || die "no $envf: run 'services.sh init' first"
    # not exported: each daemon gets exactly its own wiring (wire_<name>), no other secret
    # shellcheck disable=SC1090
    . "$envf"
}

# --- the wiring --------------------------------------------------------------------------
# port of each daemon: KASIR_PORT_BASE + offset (the ingress's admin listener is base + 1)
port_of() {
    case "$1" in
    ingress) echo $((KASIR_PORT_BASE + 0)) ;;
    psp-sandbox) echo $((KASIR_PORT_BASE + 2)) ;;
    risk) echo $((KASIR_PORT_BASE + 3)) ;;
    executor) echo $((KASIR_PORT_BASE + 4)) ;;
    ledger) echo $((KASIR_PORT_BASE + 5)) ;;
    webhooks) echo $((KASIR_PORT_BASE + 6)) ;;
    *) die "unknown daemon '$1' (known: $PIPELINE)" ;;
    esac
}
health_url() {
    case "$1" in
    ingress) echo "http://127.0.0.1:$((KASIR_PORT_BASE + 1))/readyz" ;;
    *) echo "http://127.0.0.1:$(port_of "$1")/healthz" ;;
    esac
}
# a worker's consumer group, and the topics it reads (its retry topics are added by the
# runtime from worker.retry.delays)
group_of() { echo "kasir-$1${KASIR_GROUP_SUFFIX:-}"; }
inputs_of() {
    case "$1" in
    risk) echo "kasir.payments.requested kasir.payouts.requested" ;;
    executor) echo "kasir.psp.commands kasir.refunds.requested" ;;
    ledger) echo "kasir.psp.outcomes" ;;
    webhooks) echo "kasir.webhooks.received" ;;
    esac
}
args_of() { case "$1" in ingress) echo serve ;; esac; }

# wire_<name>: the daemon's settings as NAME=VALUE lines (docs/CONFIG.md names them)
wire_common() {
    # each daemon's own role: no superuser, no owner, only the privileges its statements
    # need (deploy/local/roles.sh); a DSN it cannot be set in stops the start
    local dsn
    dsn=$(daemon_dsn "$1") || exit 1
    echo "KASIR_PG_DSN=$dsn"
    echo "KASIR_KAFKA_BROKERS=$KASIR_KAFKA_BROKERS"
    echo "KASIR_HTTP_PORT=$(port_of "$1")"
    echo "KASIR_LOG_LEVEL=${KASIR_SERVICES_LOG_LEVEL:-info}"
    # Kafka client properties for every daemon of this pipeline (a bench's setting under
    # test): KASIR_PIPELINE_KAFKA_FETCH_MIN_BYTES=N in the env file is the daemons'
    # KASIR_KAFKA_FETCH_MIN_BYTES, i.e. fetch.min.bytes
    local v
    for v in $(compgen -v KASIR_PIPELINE_KAFKA_ || true); do echo "KASIR_${v#KASIR_PIPELINE_}=${!v}"; done
}
wire_worker() {
    wire_common "$1"
    echo "KASIR_WORKER_GROUP=$(group_of "$1")"
    # static membership: a daemon restarted after kill -9 gets its partitions back at once
    echo "KASIR_INSTANCE_ID=kasir-$1-1${KASIR_GROUP_SUFFIX:-}"
    echo "KASIR_WORKER_RETRY_DELAYS=$KASIR_RETRY_DELAYS"
    echo "KASIR_WORKER_RETRY_MAX_ATTEMPTS=${KASIR_RETRY_MAX_ATTEMPTS:-4}"
    echo "KASIR_WORKER_OUTBOX_SWEEP=${KASIR_OUTBOX_SWEEP:-5s}"
    # worker settings for every worker of this pipeline (a bench's setting under test):
    # KASIR_PIPELINE_WORKER_BATCH_WAIT=5ms in the env file is KASIR_WORKER_BATCH_WAIT
    local v
    for v in $(compgen -v KASIR_PIPELINE_WORKER_ || true); do echo "KASIR_${v#KASIR_PIPELINE_}=${!v}"; done
}
wire_psp-sandbox() {
    # a PSP: neither Kafka nor PostgreSQL
    echo "KASIR_HTTP_PORT=$(port_of psp-sandbox)"
    echo "KASIR_LOG_LEVEL=${KASIR_SERVICES_LOG_LEVEL:-info}"
    echo "KASIR_STRIPE_SECRET_KEY=$KASIR_STRIPE_SECRET_KEY"
    echo "KASIR_STRIPE_WEBHOOK_SECRET=$KASIR_STRIPE_WEBHOOK_SECRET"
    echo "KASIR_XENDIT_SECRET_KEY=$KASIR_XENDIT_SECRET_KEY"
    echo "KASIR_XENDIT_CALLBACK_TOKEN=$KASIR_XENDIT_CALLBACK_TOKEN"
    echo "KASIR_MIDTRANS_SERVER_KEY=$KASIR_MIDTRANS_SERVER_KEY"
    echo "KASIR_IRIS_API_KEY=$KASIR_IRIS_API_KEY"
    echo "KASIR_IRIS_MERCHANT_KEY=$KASIR_IRIS_MERCHANT_KEY"
    echo "KASIR_SANDBOX_API_KEY=$KASIR_SANDBOX_API_KEY"
    echo "KASIR_SANDBOX_WEBHOOK_SECRET=$KASIR_SANDBOX_WEBHOOK_SECRET"
    # every PSP's notifications go to the ingress, which verifies them
    echo "KASIR_WEBHOOK_BASE=$KASIR_URL/v1/webhooks"
    echo "KASIR_HTTP_THREADS=${KASIR_SANDBOX_THREADS:-2}"
    echo "KASIR_PAYOUT_DELAY=${KASIR_SANDBOX_PAYOUT_DELAY:-200ms}"
    echo "KASIR_FAULT_LATENCY=${KASIR_SANDBOX_LATENCY:-0}"
    # the events its own API's endpoint subscribes to (webhook.sandbox_events; default all)
    echo "KASIR_WEBHOOK_SANDBOX_EVENTS=${KASIR_SANDBOX_EVENTS:-*}"
}
wire_ingress() {
    wire_common ingress
    echo "KASIR_HTTP_ADMIN_PORT=$((KASIR_PORT_BASE + 1))"
    # the ingress's store settings for this pipeline (a bench's setting under test):
    # KASIR_PIPELINE_STORE_GATHER_US=1000 in the env file is its KASIR_STORE_GATHER_US
    # (store.*, the group commit's; nothing else of the wiring can be overridden)
    local v
    for v in $(compgen -v KASIR_PIPELINE_STORE_ || true); do echo "KASIR_${v#KASIR_PIPELINE_}=${!v}"; done
    echo "KASIR_AUTH_JWT_SECRET=$KASIR_AUTH_JWT_SECRET"
    echo "KASIR_PSP_SANDBOX=true"
    echo "KASIR_WEBHOOK_SANDBOX_SECRET=$KASIR_SANDBOX_WEBHOOK_SECRET"
    echo "KASIR_WEBHOOK_STRIPE_SECRET=$KASIR_STRIPE_WEBHOOK_SECRET"
    echo "KASIR_WEBHOOK_XENDIT_TOKEN=$KASIR_XENDIT_CALLBACK_TOKEN"
    echo "KASIR_WEBHOOK_MIDTRANS_SERVER_KEY=$KASIR_MIDTRANS_SERVER_KEY"
    echo "KASIR_WEBHOOK_IRIS_MERCHANT_KEY=$KASIR_IRIS_MERCHANT_KEY"
}
wire_risk() {
    wire_worker risk
    echo "KASIR_RISK_RULES=$KASIR_RISK_RULES_FILE"
}
wire_executor() {
    wire_worker executor
    # every PSP is the sandbox, on each PSP's own paths and credentials
    echo "KASIR_EXECUTOR_SANDBOX_URL=$KASIR_SANDBOX_URL"
    echo "KASIR_EXECUTOR_SANDBOX_SECRET=$KASIR_SANDBOX_API_KEY"
    echo "KASIR_EXECUTOR_STRIPE_URL=$KASIR_SANDBOX_URL"
    echo "KASIR_EXECUTOR_STRIPE_SECRET=$KASIR_STRIPE_SECRET_KEY"
    echo "KASIR_EXECUTOR_XENDIT_URL=$KASIR_SANDBOX_URL"
    echo "KASIR_EXECUTOR_XENDIT_SECRET=$KASIR_XENDIT_SECRET_KEY"
    echo "KASIR_EXECUTOR_MIDTRANS_URL=$KASIR_SANDBOX_URL"
    echo "KASIR_EXECUTOR_MIDTRANS_SECRET=$KASIR_MIDTRANS_SERVER_KEY"
    echo "KASIR_EXECUTOR_MIDTRANS_PAYOUT_URL=$KASIR_SANDBOX_URL/iris"
    echo "KASIR_EXECUTOR_MIDTRANS_PAYOUT_SECRET=$KASIR_IRIS_API_KEY"
}
wire_ledger() {
    wire_worker ledger
}
wire_webhooks() {
    wire_worker webhooks
}

# --- the env file ------------------------------------------------------------------------
rnd() { openssl rand -hex "$1"; }
set_vars() { # NAME=VALUE...: replaces or appends each line of the env file
    local kv name tmp
    mkdir -p "$(dirname "$envf")"
    touch "$envf"; chmod 600 "$envf"
    tmp="$envf.tmp.$$"
    cp "$envf" "$tmp"
    for kv in "$@"; do
        name=${kv%%=*}
        grep -v "^$name=" "$tmp" > "$tmp.2" || true
        printf '%s="%s"\n' "$name" "${kv#*=}" >> "$tmp.2"
        mv "$tmp.2" "$tmp"
    done
    mv "$tmp" "$envf"
    chmod 600 "$envf"
}
cmd_init() {
    local base=""
    if [ "${1:-}" = "--port-base" ]; then base=$2; fi
    [ -f "$top/var/stack.env" ] || die "no var/stack.env: the stack is not up (make up)"
    # shellcheck disable=SC1091
    . "$top/var/stack.env"
    local KASIR_PG_DSN_STACK=$KASIR_PG_DSN KASIR_KAFKA_BROKERS_STACK=$KASIR_KAFKA_BROKERS
    if [ -f "$envf" ]; then . "$envf"; fi
    : "${base:=${KASIR_PORT_BASE:-8080}}"
    [ -f "$envf" ] || : > "$envf"
    if [ "$(head -1 "$envf")" != "# Kasir's local pipeline (deploy/local/services.sh); secrets for local use only" ]; then
        { echo "# Kasir's local pipeline (deploy/local/services.sh); secrets for local use only"
          cat "$envf"; } > "$envf.tmp.$$" && mv "$envf.tmp.$$" "$envf"
    fi
    set_vars "KASIR_PORT_BASE=$base" \
        "KASIR_URL=http://127.0.0.1:$base" \
        "KASIR_ADMIN_URL=http://127.0.0.1:$((base + 1))" \
        "KASIR_SANDBOX_URL=http://127.0.0.1:$((base + 2))" \
        "KASIR_KAFKA_BROKERS=$KASIR_KAFKA_BROKERS_STACK" \
        "KASIR_PG_DSN=$KASIR_PG_DSN_STACK" \
        "KASIR_GROUP_SUFFIX=${KASIR_GROUP_SUFFIX:-}" \
        "KASIR_RETRY_DELAYS=${KASIR_RETRY_DELAYS:-5s,1m,10m}" \
        "KASIR_RETRY_MAX_ATTEMPTS=${KASIR_RETRY_MAX_ATTEMPTS:-4}" \
        "KASIR_RISK_RULES_FILE=${KASIR_RISK_RULES_FILE:-$top/deploy/risk/rules.json}" \
        "KASIR_SANDBOX_WEBHOOK_SECRET=${KASIR_SANDBOX_WEBHOOK_SECRET:-whsec_$(openssl rand -base64 24)}" \
        "KASIR_STRIPE_WEBHOOK_SECRET=${KASIR_STRIPE_WEBHOOK_SECRET:-whsec_$(rnd 16)}" \
        "KASIR_XENDIT_CALLBACK_TOKEN=${KASIR_XENDIT_CALLBACK_TOKEN:-$(rnd 24)}" \
        "KASIR_MIDTRANS_SERVER_KEY=${KASIR_MIDTRANS_SERVER_KEY:-SB-Mid-server-$(rnd 12)}" \
        "KASIR_IRIS_MERCHANT_KEY=${KASIR_IRIS_MERCHANT_KEY:-IRIS-MK-$(rnd 12)}" \
        "KASIR_AUTH_JWT_SECRET=${KASIR_AUTH_JWT_SECRET:-$(rnd 32)}" \
        "KASIR_STRIPE_SECRET_KEY=${KASIR_STRIPE_SECRET_KEY:-sk_test_$(rnd 12)}" \
        "KASIR_XENDIT_SECRET_KEY=${KASIR_XENDIT_SECRET_KEY:-xnd_development_$(rnd 16)}" \
        "KASIR_IRIS_API_KEY=${KASIR_IRIS_API_KEY:-IRIS-$(rnd 12)}" \
        "KASIR_SANDBOX_API_KEY=${KASIR_SANDBOX_API_KEY:-sbx_$(rnd 16)}"
}

# --- processes ---------------------------------------------------------------------------
ours() { # pid: alive and running one of this checkout's build/bin programs
    [ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 1
    local exe; exe=$(readlink "/proc/$1/exe" 2>/dev/null || true)
    case "$exe" in "$bin"/kasir-*) return 0 ;; *) return 1 ;; esac
}
missing_of() { # the named daemons whose binary is not built
    local n out=""
    for n in "$@"; do [ -x "$bin/kasir-$n" ] || out="$out kasir-$n"; done
    echo "${out# }"
}
cmd_check() {
    local miss; miss=$(missing_of "$@")
    [ -z "$miss" ] || die "not built: $miss (no such program in $bin: is its branch merged? 'make' builds what exists)"
}
# A worker started here begins at the end of its topics (KASIR_JOIN_AT_END=1, the default):
# the local stack is shared with the tests and benches, whose traffic (hundreds of thousands
# of payments after a bench) is not the demo's to execute, nor a test's pipeline the traffic
# of the tests before it. Only a stopped group is moved (the runtime reads its positions at
# assignment); a production deployment never moves a position but with the effects.
join_at_end() {
    local name=$1 topics="" t d
    for t in $(inputs_of "$name"); do
        topics="$topics $t"
        for d in ${KASIR_RETRY_DELAYS//,/ }; do topics="$topics $t.retry.$d"; done
    done
    [ -n "$topics" ] || return 0
    KASIR_PG_DSN=$KASIR_PG_DSN KASIR_KAFKA_BROKERS=$KASIR_KAFKA_BROKERS \
        /usr/bin/python3 "$top/deploy/local/pipeline.py" join-at-end "$(group_of "$name")" $topics
}
start_one() {
    local name=$1 pidf="$run/kasir-$1.pid" log="$logs/kasir-$1.log" url pid wiring
    if [ -f "$pidf" ] && ours "$(cat "$pidf")"; then
        say "kasir-$name already running (pid $(cat "$pidf"))"
        return 0
    fi
    if [ "${KASIR_JOIN_AT_END:-1}" = 1 ]; then join_at_end "$name"; fi
    wiring=$("wire_$name")
    # the daemon sees no KASIR_* variable but its own wiring
    # shellcheck disable=SC2046
    (
        for v in $(compgen -e | grep '^KASIR_' || true); do unset "$v"; done
        while IFS= read -r kv; do export "${kv?}"; done <<<"$wiring"
        # shellcheck disable=SC2086
        exec nohup "$bin/kasir-$name" $(args_of "$name") >>"$log" 2>&1 </dev/null
    ) &
    pid=$!
    echo "$pid" > "$pidf"
    url=$(health_url "$name")
    for _ in $(seq 1 200); do
        curl -fsS -o /dev/null "$url" 2>/dev/null && break
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -20 "$log" >&2
            die "kasir-$name exited at start (log $log)"
        fi
        sleep 0.15
    done
    curl -fsS -o /dev/null "$url" 2>/dev/null || die "kasir-$name not healthy after 30 s ($url, log $log)"
    say "kasir-$name started (pid $pid, port $(port_of "$name"), log ${log#"$top"/})"
}
cmd_start() {
    load_env
    local names=("$@") n
    if [ ${#names[@]} -eq 0 ]; then read -r -a names <<<"${KASIR_DEMO_DAEMONS:-$PIPELINE}"; fi
    for n in "${names[@]}"; do port_of "$n" >/dev/null; done
    cmd_check "${names[@]}"
    mkdir -p "$run" "$logs"
    for n in $PIPELINE; do
        case " ${names[*]} " in *" $n "*) start_one "$n" ;; esac
    done
}
cmd_stop() {
    shopt -s nullglob
    local files=() f pid stopped=()
    if [ $# -gt 0 ]; then
        for n in "$@"; do [ -f "$run/kasir-$n.pid" ] && files+=("$run/kasir-$n.pid"); done
    else
        files=("$run"/*.pid)
    fi
    # TERM to all first (each drains on its own), then wait for each
    for f in "${files[@]}"; do
        pid=$(cat "$f" 2>/dev/null || true)
        if ours "$pid"; then kill -TERM "$pid" 2>/dev/null || true; stopped+=("$f:$pid"); fi
    done
    for s in "${stopped[@]}"; do
        f=${s%:*}; pid=${s##*:}
        for _ in $(seq 1 80); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
        echo "services: stopped $(basename "$f" .pid) ($pid)"
    done
    for f in "${files[@]}"; do rm -f "$f"; done
}
cmd_status() {
    shopt -s nullglob
    for f in "$run"/*.pid; do
        pid=$(cat "$f" 2>/dev/null || true)
        if ours "$pid"; then s=running; else s=stopped; fi
        printf '%-24s %-8s %s\n' "$(basename "$f" .pid)" "$pid" "$s"
    done
}

cmd=${1:-status}
[ $# -gt 0 ] && shift
case "$cmd" in
init) cmd_init "$@" ;;
set) set_vars "$@" ;;
check) load_env; if [ $# -gt 0 ]; then cmd_check "$@"; else cmd_check ${KASIR_DEMO_DAEMONS:-$PIPELINE}; fi ;;
start) cmd_start "$@" ;;
stop) cmd_stop "$@" ;;
status) cmd_status ;;
*) echo "usage: services.sh init|set|check|start|stop|status [name...]" >&2; exit 2 ;;
esac
