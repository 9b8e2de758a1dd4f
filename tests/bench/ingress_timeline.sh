#!/usr/bin/env bash
# The ingress's latency over time, window by window, beside what the stack was doing: for
# "why are the first minutes of a fresh stack slower" (run it right after `make up` on a
# new var/). Unlike ingress_bench.sh it does not VACUUM, ANALYZE or CHECKPOINT first and
# does not warm up: it measures the stack as a deployment would meet its first traffic.
#   INGRESS_TL_RATE=5000 INGRESS_TL_SECONDS=300 INGRESS_TL_WINDOW=5 INGRESS_CONNS=128
#   INGRESS_BIN=path
# One row per window: p50/p99/max of the requests scheduled in it (from the load generator's
# INGRESS_TIMELINE), CPU % of the ingress, PostgreSQL (all of it) and the broker, the
# machine's steal and iowait (% of all CPU time, /proc/stat), the autovacuum/autoanalyze
# runs that ended (pg_stat_user_tables of the three ingress tables) or were running (pg_stat_activity, sampled each second), checkpoints, the broker's GC
# pauses (var/kafka/logs/gc.log: count, sum and longest) and the load average.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
set -a; . "$top/var/stack.env"; set +a
mkdir -p "$top/build/bench" "$top/var/log"
make -s -C "$top" build/bench/ingress_load
rate=${INGRESS_TL_RATE:-5000}
secs=${INGRESS_TL_SECONDS:-300}
win=${INGRESS_TL_WINDOW:-5}
conns=${INGRESS_CONNS:-128}
bin=${INGRESS_BIN:-$top/build/bin/kasir-ingress}
. "$top/tests/bench/cpu.sh"
work=$(mktemp -d)
. "$top/tests/bench/ingress_start.sh" # ingress_start, ingress_ready
log="$top/var/log/bench-ingress-timeline.log"
ingress_start timeline "$log" "$bin"
spid=
cleanup() {
    [ -n "$spid" ] && kill "$spid" 2>/dev/null
    kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
ingress_ready
kpid=$(cat "$top/var/kafka/kafka.pid" 2>/dev/null || true)
# the sampler: one line a second (epoch, CPU ticks, what autovacuum runs, counters)
sampler() {
    while kill -0 "$pid" 2>/dev/null; do
        printf 'T %s %s %s %s %s %s\n' "$(date +%s)" "$(ticks "$pid")" "$(pg_ticks)" "$(ticks $kpid)" \
            "$(cut -d' ' -f1 /proc/loadavg)" "$(awk '/^cpu /{print $9, $6, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat)"
        psql "$KASIR_PG_DSN" -qtAX -F ' ' -c "
            SELECT 'A', regexp_replace(query, '^autovacuum: ([A-Z ]+) public\.(\S+).*', '\1 \2')
              FROM pg_stat_activity WHERE backend_type = 'autovacuum worker' AND query <> ''
            UNION ALL
            SELECT 'V', relname || ' vacuum=' || autovacuum_count || ' analyze=' || autoanalyze_count
              FROM pg_stat_user_tables
             WHERE relname IN ('idempotency_keys', 'payments', 'payment_orders')
            UNION ALL
            SELECT 'C', 'checkpoints=' || (checkpoints_timed + checkpoints_req) FROM pg_stat_bgwriter" \
            2>/dev/null || true
        sleep 1
    done
}
sampler >"$work/samples" &
spid=$!
t0=$(date +%s)
INGRESS_KEY=$key INGRESS_TIMELINE=1 "$top/build/bench/ingress_load" 127.0.0.1 "$port" - "$rate" "$secs" "$conns" 0 \
    >"$work/summary" 2>"$work/timeline" || true
kill "$spid" 2>/dev/null; spid=
gclog="$top/var/kafka/logs/gc.log"
# the GC pauses since t0: epoch and milliseconds
{ [ -r "$gclog" ] && grep 'Pause' "$gclog" || true; } | python3 -c '
import sys, datetime
for l in sys.stdin:
    try:
        ts = l[1:l.index("]")]
        t = datetime.datetime.strptime(ts[:23], "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=datetime.timezone.utc)
        ms = float(l.rstrip().rsplit(" ", 1)[1].rstrip("ms"))
    except (ValueError, IndexError):
        continue
    print("G", t.timestamp(), ms)' >"$work/gc"
echo "ingress timeline: $rate/s offered for $secs s, $conns connections, windows of $win s (start $(date -u -d "@$t0" +%H:%M:%S) UTC)"
echo
echo "| t s | requests | p50 ms | p99 ms | max ms | CPU % ingress, PG, Kafka | steal, iowait % | autovacuum | checkpoints | GC pauses (n, sum, max ms) | load |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
cat "$work/timeline" "$work/samples" "$work/gc" | awk -v t0="$t0" -v win="$win" -v hz="$(getconf CLK_TCK)" '
    /^t=/ { # t=Ns at=EPOCH n=.. p50_ms=.. p99_ms=.. max_ms=..
        split($2, a, "="); w = int((a[2] - t0) / win); if (w < 0) next
        split($3, n, "="); split($5, p, "="); split($4, m, "="); split($6, x, "=")
        reqs[w] += n[2]; if (p[2] > p99[w]) p99[w] = p[2]; if (x[2] > mx[w]) mx[w] = x[2]
        p50s[w] += m[2] * n[2]; if (w > last) last = w; next }
    /^T / { w = int(($2 - t0) / win); if (w < 0) next
        if (!(w in c0)) { c0[w] = $3; p0[w] = $4; k0[w] = $5; s0[w] = $2; st0[w] = $7; io0[w] = $8; to0[w] = $9 }
        c1[w] = $3; p1[w] = $4; k1[w] = $5; s1[w] = $2; ld[w] = $6; st1[w] = $7; io1[w] = $8; to1[w] = $9
        cur = w; next }
    /^A / { run = substr($0, 3); av[cur] = av[cur] (index(av[cur], run) ? "" : run "; "); next }
    /^V / { if (vs[$2] != "" && vs[$2] != $3 " " $4) ev[cur] = ev[cur] "done " $2 "; "; vs[$2] = $3 " " $4; next }
    /^C / { if (ck != "" && ck != $2) cp[cur]++; ck = $2; next }
    /^G / { w = int(($2 - t0) / win); if (w < 0) next
        gn[w]++; gs[w] += $3; if ($3 > gm[w]) gm[w] = $3; next }
    END {
        for (w = 0; w <= last; w++) {
            d = s1[w] - s0[w]
            cpu = d > 0 ? sprintf("%d, %d, %d", (c1[w] - c0[w]) * 100 / hz / d, (p1[w] - p0[w]) * 100 / hz / d, (k1[w] - k0[w]) * 100 / hz / d) : "?"
            dt = to1[w] - to0[w]
            sti = dt > 0 ? sprintf("%.1f, %.1f", (st1[w] - st0[w]) * 100 / dt, (io1[w] - io0[w]) * 100 / dt) : "?"
            printf "| %d | %d | %.2f | %.2f | %.2f | %s | %s | %s%s | %d | %d, %.0f, %.0f | %s |\n", w * win, reqs[w],
                reqs[w] ? p50s[w] / reqs[w] : 0, p99[w], mx[w], cpu, sti, av[w], ev[w], cp[w], gn[w], gs[w], gm[w], ld[w]
        }
    }'
echo
echo "(p50 is the mean of the per-second medians and p99 the worst per-second p99 of the window)"
cat "$work/summary"; echo
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
# the run's rows stay: a fresh stack's tables grow as they would in production
echo "partner $partner; ingress log: $log"
