# ingress_start.sh - sourced by the ingress benches (ingress_bench.sh, ingress_timeline.sh):
# a kasir-ingress of their own on two free ports, for a partner without a practical rate
# limit.
#   ingress_start NAME LOG BIN   creates the partner (NAME-<time>), starts BIN serve with its
#                                output in LOG; sets port, aport, mport, key, partner, pid
#   ingress_ready                waits for /readyz and puts the key in the credential cache
# The caller sets its own EXIT trap (kill $pid) right after ingress_start.
. "$top/deploy/local/roles.sh" # daemon_dsn
ingress_start() {
    local out
    read -r port aport < <(python3 -c 'import socket; a=socket.socket(); b=socket.socket(); a.bind(("",0)); b.bind(("",0)); print(a.getsockname()[1], b.getsockname()[1])')
    mport=$aport # /readyz and /metrics: the admin listener (http.admin_port) since issue 12
    out=$("$3" partner add "$1-$(date +%s)" --rps 1000000)
    key=$(sed -n 's/^api_key=//p' <<<"$out")
    partner=$(sed -n 's/^partner_id=//p' <<<"$out")
    # the ingress's own role (migration 952); the partner above is the operator's
    KASIR_PG_DSN=$(daemon_dsn ingress) \
    KASIR_HTTP_PORT=$port KASIR_HTTP_ADMIN_PORT=$aport KASIR_AUTH_JWT_SECRET=$(openssl rand -hex 32) \
        "$3" serve >"$2" 2>&1 &
    pid=$!
}

ingress_ready() {
    # an ingress from before issue 12 (INGRESS_BIN, A/B runs) has no admin listener: its
    # probes and metrics are on the API port
    for _ in $(seq 1 100); do
        curl -fs "http://127.0.0.1:$aport/readyz" >/dev/null 2>&1 && break
        curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && { mport=$port; break; }
        sleep 0.2
    done
    # the key into the ingress's credential cache first: 128 connections opening at once on
    # a cold cache each cost the address a token of its unauthenticated bucket
    # (auth.ip_burst, 50) while the first look-up runs, and past it the answer is a 429 that
    # closes the connection, which ends the load generator
    curl -s -o /dev/null -u "$key:" "http://127.0.0.1:$port/v1/payments?ids=pay_warm" || true
}
