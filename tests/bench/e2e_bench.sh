#!/usr/bin/env bash
# End to end, HTTP accept -> ledger posted (SPEC 8: >= 2,500 payments/s, p99 <= 150 ms, the
# sandbox PSP at 0 ms, every daemon, Kafka and PostgreSQL on the one machine).
# Starts the whole pipeline with deploy/local/services.sh (the demo's wiring; its own env
# file, ports and consumer groups under var/tmp/bench-e2e), drives POST /v1/payments with
# card orders through tests/bench/ingress_load.c (open loop, fixed offered rate), waits until
# the pipeline is quiet, and reads from PostgreSQL, for this run's payments:
#   e2e payments/s  captures posted / (last capture posted - first payment accepted)
#   e2e p50, p99    capture entry's posted_at - payment row's created_at (the event's
#                   occurred_at: the ingress's clock when it built the event, after the
#                   claim's commit and before Kafka confirmed it; the 2xx leaves at that
#                   confirmation, a few ms later)
#   CPU µs/payment  per process (/proc/<pid>/stat, user+system) over the run and its drain:
#                   each daemon, PostgreSQL (the whole cluster), the Kafka broker and the
#                   load generator; "idle" is what the pipeline burns per second with no
#                   traffic (fetch polls, sweeps), measured before the load, so a reader
#                   can tell it from the per-payment work
#   steal %, calib  the host's share over the run and its drain (steal, % of both cores'
#                   time) and how fast a core ran just before it (build/bench/calib's loop,
#                   ns): a run on a slow or crowded host is that host's figure
#   on stderr, per run: PostgreSQL's CPU per payment by the role of its client backends
#                   (one role per daemon; backends alive before and after the run only),
#                   to tell which daemon's statements the cluster's CPU goes to; and the
#                   e2e time hop by hop (stages(), below), and the run's stalls (stalls())
# The risk rules are deploy/risk/rules.json without its velocity rules: the generator reuses
# 1,000 buyer ids, which velocity would hold for review.
#   E2E_RATES="2500" E2E_SECONDS=20 E2E_CONNS=64 E2E_WARMUP=5 E2E_DRAIN=300 (seconds to quiet)
#   E2E_IDLE=10        seconds of the idle measurement (0: none)
#   E2E_HOG="SHARE[:PERIOD_US]"  less spare CPU: build/bench/hog asks SHARE of every core
#                      (each PERIOD_US, default 200) from before the pipeline starts to the
#                      end, at the pipeline's priority: it gets what it asks only while the
#                      box has it to spare, so each run prints (on stderr) the share of every
#                      core's time it really took, over the run and its drain. Not a slower
#                      core: calib's one-core loop does not show it (its every-core figure does)
#   E2E_SANDBOX_EVENTS the sandbox's webhook subscription (webhook.sandbox_events), default
#                      the events the executor cannot learn from the API's answer: a card
#                      charge is decided in the answer, so its charge.succeeded/.failed is not
#                      sent (a merchant's choice, as Stripe's enabled_events); "*" for all;
#                      printed before the table; E2E_ENV_A/B may set KASIR_SANDBOX_EVENTS apart
# Side by side (SPEC 8: a hot-path change against the old binary, in one run):
#   E2E_BIN_B=DIR      variant B runs the daemons from DIR (a copy of an older build/bin);
#                      E2E_BIN_A the same for A (default build/bin)
#   E2E_ENV_B="K=V.."  variant B's pipeline env file gets these lines as well (a setting
#                      under test; deploy/local/services.sh passes KASIR_PIPELINE_KAFKA_* to every
#                      daemon, KASIR_PIPELINE_WORKER_* to every worker and
#                      KASIR_PIPELINE_STORE_* to the ingress (its store.* settings); a daemon's own
#                      setting, KASIR_WORKER_BATCH_WAIT=.., reaches no daemon);
#                      E2E_ENV_A the same for variant A
#   E2E_SQL_A="SQL"    run on the stack's database (as its owner) before variant A's
#                      pipeline starts (a table setting under test, e.g. a fillfactor);
#                      E2E_SQL_B the same for B; either one alone makes a variant B.
#                      Nothing is undone after a variant, so set both (the change and
#                      its undoing): with one alone, the other variant runs on what it left
#   ROUNDS=n           rounds of A then B (B then A on even rounds), each on a fresh pipeline
#   E2E_PERF=1         perf record -g of every daemon during each measured load, to
#                      var/bench/e2e-perf-<variant><round>.data (perf report -i ... --sort comm,dso,sym)
# With pg_stat_statements in the cluster (shared_preload_libraries; never in the stack's
# own configuration, it costs every statement), the statements of each measured run, per
# payment, are written to var/bench/e2e-statements-<variant><round>.txt.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
set -a; . "$top/var/stack.env"; set +a
rates=${E2E_RATES:-2500}
secs=${E2E_SECONDS:-20}
conns=${E2E_CONNS:-64}
warmup=${E2E_WARMUP:-5}
drain=${E2E_DRAIN:-300}
idle=${E2E_IDLE:-10}
rounds=${ROUNDS:-1}
hz=$(getconf CLK_TCK)
make -s -C "$top" build/bench/ingress_load build/bench/calib build/bench/hog
dir="$top/var/tmp/bench-e2e"
mkdir -p "$top/var/log/bench-e2e" "$top/var/bench"
export KASIR_SERVICES_LOG="$top/var/log/bench-e2e"
unset KASIR_DEMO_DAEMONS
async="charge.pending,charge.expired"
for m in virtual_account qris ewallet bank_transfer; do async="$async,charge.succeeded:$m,charge.failed:$m"; done
sandbox_events=${E2E_SANDBOX_EVENTS:-$async,refund.succeeded,payout.paid,payout.failed}
variants=A; [ -n "${E2E_BIN_B:-}${E2E_ENV_B:-}${E2E_ENV_A:-}${E2E_SQL_A:-}${E2E_SQL_B:-}" ] && variants="A B"

svc() { bash "$top/deploy/local/services.sh" "$@"; }
hog_pid=""
trap '[ -z "$hog_pid" ] || kill "$hog_pid" 2>/dev/null || true; svc stop >/dev/null 2>&1 || true' EXIT
if [ -n "${E2E_HOG:-}" ]; then
    if ! [[ $E2E_HOG =~ ^(0?\.[0-9]+)(:([1-9][0-9]*))?$ ]]; then
        echo "e2e: E2E_HOG must be SHARE[:PERIOD_US], SHARE above 0 and below 1 (0.2, 0.2:200), not '$E2E_HOG'" >&2
        exit 2
    fi
    share=${BASH_REMATCH[1]}; period=${BASH_REMATCH[3]:-200}
    echo "e2e: less spare CPU: build/bench/hog asks $share of every core (period $period µs) until the end" >&2
    # it ends with this script however this one ends (PR_SET_PDEATHSIG), and by a day at most
    HOG_PARENT=$$ "$top/build/bench/hog" "$share" 86400 "$period" & hog_pid=$!
    sleep 0.2
    kill -0 "$hog_pid" 2>/dev/null || { echo "e2e: build/bench/hog did not start" >&2; hog_pid=""; exit 1; }
fi
. "$top/tests/bench/cpu.sh" # ticks PID..., pg_ticks
kafka_pid=$(cat "$top/var/kafka/kafka.pid" 2>/dev/null || true)
pid_of() { cat "$KASIR_SERVICES_RUN/kasir-$1.pid"; }
# where a payment's time goes, hop by hop (stderr, per run): p50 / p99 ms from the accept
# (the payment's created_at, the event's occurred_at: the ingress's clock when it built the
# event, so this hop holds the ingress's publish too) to risk's decision
# (risk_payments.decided_at), from there to the executor's journal of the order's first
# attempt (executor_attempts.created_at), from there to the ledger's entry (posted_at; a
# retried call's later attempts fall in this hop). Those three are now() of a transaction,
# i.e. its start: risk's and the ledger's are their batch's, begun after the fetch, so a hop
# holds the batch before it (its handler, commit and relay to Kafka) and this one's fetch
# wait; the journal commits on its own connection after the batch's look-up, and the
# executor's verdict is written in the batch's transaction, begun before the journal, so the
# PSP calls fall in the last hop
# the run's payments accepted since $1, each with its end-to-end time t and its three hops
# a, b, c (seconds), as SQL for stages and stalls
hop_rows() {
    echo "SELECT p.created_at,
                 extract(epoch FROM e.posted_at - p.created_at) AS t,
                 extract(epoch FROM r.decided_at - p.created_at) AS a,
                 extract(epoch FROM a.created_at - r.decided_at) AS b,
                 extract(epoch FROM e.posted_at - a.created_at) AS c
            FROM payments p
            JOIN risk_payments r ON r.partner_id = p.partner_id AND r.checkout_id = p.checkout_id
            JOIN payment_orders o ON o.payment_id = p.payment_id
            JOIN executor_attempts a ON a.object_id = o.order_id AND a.kind = 'CHARGE'
                                     AND a.attempt = 1
            JOIN ledger_entries e ON e.source_key = 'capture:' || o.order_id
           WHERE p.partner_id = '$partner' AND p.created_at >= '$1'"
}
stages() {
    psqlq -F ' ' -c "
        WITH x AS ($(hop_rows "$1"))
        SELECT 'hops p50 / p99 ms: accept to risk ' || f[1] || ', risk to journal ' || f[2]
               || ', journal to posted ' || f[3]
          FROM (SELECT array_agg(t ORDER BY k) AS f
                  FROM (SELECT k, round(1000 * percentile_cont(0.5) WITHIN GROUP (ORDER BY v))
                                  || ' / ' || round(1000 * percentile_cont(0.99)
                                                    WITHIN GROUP (ORDER BY v)) AS t
                          FROM x, LATERAL (VALUES (1, a), (2, b), (3, c)) AS u(k, v)
                         GROUP BY k) y) l" 2>&1 | head -1
}
# the run's stalls (stderr, per run): the 100 ms windows of accepts whose median e2e time is
# over twice the run's, at most 8, each with its hops' medians (ms), to be matched against
# the broker's GC log and PostgreSQL's (autovacuum, checkpoints): a stall in one hop only
# points at its worker, one in every hop at the box or the broker
stalls() {
    psqlq -F ' ' -c "
        WITH x AS ($(hop_rows "$1")),
             m AS (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY t) AS med FROM x),
             w AS (SELECT to_timestamp(floor(extract(epoch FROM created_at) * 10) / 10) AS at,
                          percentile_cont(0.5) WITHIN GROUP (ORDER BY t) AS t,
                          percentile_cont(0.5) WITHIN GROUP (ORDER BY a) AS a,
                          percentile_cont(0.5) WITHIN GROUP (ORDER BY b) AS b,
                          percentile_cont(0.5) WITHIN GROUP (ORDER BY c) AS c
                     FROM x GROUP BY 1)
        SELECT coalesce(string_agg(to_char(at AT TIME ZONE 'UTC', 'HH24:MI:SS.MS') || ' '
                                   || round(1000 * t) || ' (' || round(1000 * a) || ', '
                                   || round(1000 * b) || ', ' || round(1000 * c) || ')',
                                   '; ' ORDER BY at), 'none')
          FROM (SELECT w.* FROM w, m WHERE w.t > 2 * m.med ORDER BY w.t DESC LIMIT 8) s" 2>&1 | head -1
}
daemons="ingress risk executor ledger webhooks psp-sandbox"
psqlq() { psql "$KASIR_PG_DSN" -tAXq "$@"; }
pgss=0
[ "$(psqlq -c "SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'")" = 1 ] && pgss=1
# updates and HOT updates of the tables a payment's rows are updated in, so far
# (pg_stat_user_tables): "rel,upd,hot,rel,upd,hot,..." in hot_tables' order
hot_tables="payment_orders payments executor_attempts"
hot_updates() {
    psqlq -c "SELECT string_agg(relname || ',' || n_tup_upd || ',' || n_tup_hot_upd, ','
                                ORDER BY array_position(string_to_array('$hot_tables', ' '), relname::text))
                FROM pg_stat_user_tables WHERE relname = ANY (string_to_array('$hot_tables', ' '))"
}
hot_ratio() { # before after: "HOT updates: payment_orders x % of n, payments y % of m, ..."
    local -a a b; IFS=, read -r -a a <<<"$1"; IFS=, read -r -a b <<<"$2"
    local -A upd0=() hot0=()
    local i n out=""
    for ((i = 0; i + 2 < ${#a[@]}; i += 3)); do upd0[${a[i]}]=${a[i + 1]}; hot0[${a[i]}]=${a[i + 2]}; done
    for ((i = 0; i + 2 < ${#b[@]}; i += 3)); do # paired by table name: one may be new
        n=$((b[i + 1] - ${upd0[${b[i]}]:-0}))
        out="$out${out:+, }${b[i]} $(( (b[i + 2] - ${hot0[${b[i]}]:-0}) * 100 / (n > 0 ? n : 1) )) % of $n"
    done
    echo "HOT updates: ${out:-none of $hot_tables in pg_stat_user_tables}"
}
us_per() { echo $(( $1 * 1000000 / hz / ($2 > 0 ? $2 : 1) )); } # ticks, payments

# one variant's pipeline: fresh env file, groups and partner; sets bin, key, partner, groups
pipeline_up() { # variant
    local v=$1 base out
    rm -rf "$dir/$v"; mkdir -p "$dir/$v/run"
    export KASIR_SERVICES_ENV="$dir/$v/pipeline.env" KASIR_SERVICES_RUN="$dir/$v/run"
    export KASIR_GROUP_SUFFIX="-bench-$v-$(date +%s)"
    export KASIR_RETRY_DELAYS="5s,1m,10m" KASIR_RISK_RULES_FILE="$dir/rules.json"
    if [ "$v" = B ] && [ -n "${E2E_BIN_B:-}" ]; then export KASIR_SERVICES_BIN=$E2E_BIN_B; else export KASIR_SERVICES_BIN=${E2E_BIN_A:-$top/build/bin}; fi
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
    # the previous variant's dead rows and dirty pages are cleaned now, not by autovacuum
    # and the checkpointer during this variant's load (PostgreSQL's CPU is the cluster's)
    psqlq -c "VACUUM (ANALYZE)" -c "CHECKPOINT" >/dev/null
    local sql; if [ "$v" = B ]; then sql=${E2E_SQL_B:-}; else sql=${E2E_SQL_A:-}; fi
    if [ -n "$sql" ]; then psqlq -v ON_ERROR_STOP=1 -c "$sql" >&2; fi
    svc init --port-base "$base" >/dev/null
    svc set "KASIR_SANDBOX_EVENTS=$sandbox_events"
    local extra; if [ "$v" = B ]; then extra=${E2E_ENV_B:-}; else extra=${E2E_ENV_A:-}; fi
    # shellcheck disable=SC2086
    if [ -n "$extra" ]; then svc set $extra; fi
    svc start >&2
    groups=$(for w in risk executor ledger webhooks; do printf 'kasir-%s%s ' "$w" "$KASIR_GROUP_SUFFIX"; done)
    out=$("$KASIR_SERVICES_BIN/kasir-ingress" partner add "bench-e2e-$v-$(date +%s)" --rps 1000000 --burst 1000000)
    key=$(sed -n 's/^api_key=//p' <<<"$out")
    partner=$(sed -n 's/^partner_id=//p' <<<"$out")
    port=$base
}
quiet() { /usr/bin/python3 "$top/deploy/local/pipeline.py" quiet --timeout "$1" $groups >/dev/null; }
# the load generator, its CPU ticks appended to its result line as loadgen_ticks=N
load() {
    local out
    out=$( { INGRESS_METHOD=card INGRESS_KEY=$key INGRESS_TIMELINE= \
             /usr/bin/time -f 'loadgen_cpu=%U+%S' \
             "$top/build/bench/ingress_load" 127.0.0.1 "$port" - "$@"; } 2>&1 )
    local cpu; cpu=$(sed -n 's/^loadgen_cpu=//p' <<<"$out")
    local t; t=$(/usr/bin/python3 -c "import sys; print(round(eval(sys.argv[1]) * $hz))" "${cpu:-0}")
    echo "$(grep -m1 '^offered=' <<<"$out") loadgen_ticks=$t"
}
# PostgreSQL's CPU by the role of its client backends (each daemon connects as its own,
# deploy/local/roles.sh): pg_roles_mark notes this database's backends, their start times
# and ticks before a run; pg_roles_after sums each role's ticks since, right after it, over
# the backends alive at both ends (a pid whose start time changed is another process);
# pg_roles_note N prints them as µs per payment. The rest of the PostgreSQL column is the
# postmaster, WAL writer, checkpointer, background writer, autovacuum, and backends that
# came or went (the bench's own psql sessions among them).
declare -A pg_t0 pg_role pg_start pg_used
pg_roles_mark() {
    local u p
    pg_t0=(); pg_role=(); pg_start=()
    while read -r p u; do
        [ -n "$u" ] || continue
        pg_role[$p]=$u; pg_start[$p]=$(starttime "$p"); pg_t0[$p]=$(ticks "$p")
    done < <(psqlq -F ' ' -c "SELECT pid, usename FROM pg_stat_activity
                               WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
                                 AND datname = current_database()")
}
pg_roles_after() {
    local p u
    pg_used=()
    for p in "${!pg_role[@]}"; do
        [ "$(starttime "$p")" = "${pg_start[$p]}" ] || continue
        u=${pg_role[$p]}
        pg_used[$u]=$((${pg_used[$u]:-0} + $(ticks "$p") - pg_t0[$p]))
    done
}
pg_roles_note() {
    local u sum=0
    while IFS= read -r u; do
        [ -n "$u" ] || continue
        printf '%s %s, ' "$u" "$(us_per "${pg_used[$u]}" "$1")"; sum=$((sum + pg_used[$u]))
    done < <(printf '%s\n' "${!pg_used[@]}" | sort)
    printf 'all these backends %s' "$(us_per "$sum" "$1")"
}

# the hog's children (the processes that burn), in ticks; 0 without E2E_HOG
hog_ticks() { if [ -n "$hog_pid" ]; then ticks $(pgrep -P "$hog_pid"); else echo 0; fi; }
all_ticks() { # ingress risk executor ledger webhooks sandbox postgresql kafka
    local d
    for d in $daemons; do printf '%s ' "$(ticks "$(pid_of "$d")")"; done
    printf '%s %s\n' "$(pg_ticks)" "$(ticks $kafka_pid)"
}

/usr/bin/python3 - "$top/deploy/risk/rules.json" "$dir/rules.json" <<'PY'
import json, os, sys
r = json.load(open(sys.argv[1]))
r["rules"] = [x for x in r["rules"] if x["type"] != "velocity"]
os.makedirs(os.path.dirname(sys.argv[2]), exist_ok=True)
json.dump(r, open(sys.argv[2], "w"))
PY

echo "sandbox webhook subscription (webhook.sandbox_events): $sandbox_events${E2E_ENV_A:+; A: $E2E_ENV_A}${E2E_ENV_B:+; B: $E2E_ENV_B}"
echo "| variant | offered/s | accepted/s | HTTP p99 ms | e2e payments/s | e2e p50 ms | e2e p99 ms | CPU µs/payment: ingress, risk, executor, ledger, webhooks, sandbox, PostgreSQL, Kafka, load generator | total µs/payment | idle ms CPU/s: daemons, PostgreSQL, Kafka | load avg | steal %, calib ns |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
for round in $(seq 1 "$rounds"); do
    order=$variants
    [ "$variants" = "A B" ] && [ $((round % 2)) = 0 ] && order="B A"
    for v in $order; do
        pipeline_up "$v"
        # warm-up: connections, plan caches, the JIT of the broker; then the backlog drains
        if [ "$warmup" -gt 0 ]; then load "${rates%% *}" "$warmup" "$conns" >/dev/null; fi
        quiet "$drain" || echo "e2e: warm-up not drained in ${drain}s" >&2
        idle_note="-"
        if [ "$idle" -gt 0 ]; then
            read -r -a i0 <<<"$(all_ticks)"; sleep "$idle"; read -r -a i1 <<<"$(all_ticks)"
            dt=0; for k in 0 1 2 3 4 5; do dt=$((dt + i1[k] - i0[k])); done
            idle_note="$((dt * 1000 / hz / idle)), $(((i1[6] - i0[6]) * 1000 / hz / idle)), $(((i1[7] - i0[7]) * 1000 / hz / idle))"
        fi
        for r in $rates; do
            [ "$pgss" = 1 ] && psqlq -c "SELECT pg_stat_statements_reset()" >/dev/null
            read -r hot0 <<<"$(hot_updates)"
            cal=$(calib_loop); st0=$(steal); w0=$(date +%s%N)
            read -r -a t0 <<<"$(all_ticks)"; h0=$(hog_ticks)
            pg_roles_mark
            since=$(psqlq -c "SELECT now()")
            perf_pid=""
            if [ "${E2E_PERF:-0}" = 1 ]; then
                pids=$(for d in $daemons; do printf '%s,' "$(pid_of "$d")"; done)
                perf record -q -F 499 -g -o "$top/var/bench/e2e-perf-$v$round.data" -p "${pids%,}" \
                    -- sleep "$secs" >/dev/null 2>&1 & perf_pid=$!
            fi
            line=$(load "$r" "$secs" "$conns")
            [ -z "$perf_pid" ] || wait "$perf_pid" || true
            ok=1; quiet "$drain" || ok=0
            read -r -a t1 <<<"$(all_ticks)"; h1=$(hog_ticks)
            w=$(($(date +%s%N) - w0))
            sc="$(cores_pct "$(($(steal) - st0))" "$w"), ${cal:-?}"
            [ -z "$hog_pid" ] || echo "e2e: $v$round: the hog took $(cores_pct "$((h1 - h0))" "$w") % of the cores' time over the run and its drain" >&2
            if [ -n "$hog_pid" ] && ! kill -0 "$hog_pid" 2>/dev/null; then
                echo "e2e: $v$round: build/bench/hog has ended: this run was not under it all along, nor are the next ones" >&2
            fi
            pg_roles_after
            n=$(psqlq -c "SELECT count(*) FROM payments WHERE partner_id = '$partner' AND created_at >= '$since'")
            get() { sed -nE "s/.* $1=([^ ]+).*/\1/p" <<<" $line"; }
            cpu=""; tot=0
            for k in 0 1 2 3 4 5 6 7; do
                u=$(us_per $((t1[k] - t0[k])) "$n"); cpu="$cpu$u, "; tot=$((tot + u))
            done
            u=$(us_per "$(get loadgen_ticks)" "$n"); cpu="$cpu$u"; tot=$((tot + u))
            read -r posted rate p50 p99 < <(psqlq -F ' ' -c "
                WITH x AS (SELECT p.created_at, e.posted_at FROM payments p
                             JOIN payment_orders o USING (payment_id)
                             JOIN ledger_entries e ON e.source_key = 'capture:' || o.order_id
                            WHERE p.partner_id = '$partner' AND p.created_at >= '$since')
                SELECT count(*),
                       round(count(*) / greatest(extract(epoch FROM max(posted_at) - min(created_at)), 0.001)),
                       round(1000 * percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM posted_at - created_at))::numeric, 1),
                       round(1000 * percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM posted_at - created_at))::numeric, 1)
                  FROM x")
            if [ "$pgss" = 1 ]; then
                psql "$KASIR_PG_DSN" -X -c "
                    SELECT toplevel AS top, round(calls::numeric / $n, 3) AS calls_per_payment,
                           round((total_exec_time * 1000 / $n)::numeric) AS exec_us_per_payment,
                           round(rows::numeric / greatest(calls, 1)) AS rows_per_call,
                           round(shared_blks_hit::numeric / $n, 1) AS buf_hits_per_payment,
                           round(wal_records::numeric / $n, 1) AS wal_recs_per_payment,
                           left(regexp_replace(query, '\s+', ' ', 'g'), 140) AS statement
                      FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 30" \
                    > "$top/var/bench/e2e-statements-$v$round-$r.txt" 2>&1 || true
            fi
            note=""; [ "$ok" = 1 ] || note=" (not quiet after ${drain}s)"
            [ "$posted" = "$n" ] || note="$note ($posted of $n payments posted)"
            echo "| $v$round | $r | $(get accepted_per_s) | $(get p99_ms) | $rate$note | $p50 | $p99 | $cpu | $tot | $idle_note | $(cut -d' ' -f1-3 /proc/loadavg) | $sc |"
            echo "e2e: $v$round: ingress_load: $line" >&2
            echo "e2e: $v$round: $(hot_ratio "$hot0" "$(hot_updates)")" >&2
            echo "e2e: $v$round: PostgreSQL µs/payment by client role: $(pg_roles_note "$n")" >&2
            echo "e2e: $v$round: $(stages "$since")" >&2
            echo "e2e: $v$round: stalls, 100 ms of accepts at over twice the median e2e time (UTC, median ms (accept to risk, risk to journal, journal to posted)): $(stalls "$since")" >&2
        done
        svc stop >/dev/null 2>&1 || true
    done
done
