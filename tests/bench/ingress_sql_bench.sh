#!/usr/bin/env bash
# ingress_batch() alone: PostgreSQL backend CPU per payment, without HTTP, Kafka or the load
# generator. Two psql sessions (the two group-commit writers) call the function in autocommit,
# each call carrying B new payments' claims (the ingress's batch at a steady rate: a claim per
# payment; its rows are kasir-risk's since session 29), as text cast to jsonb as the ingress
# sends it. CPU from /proc/<backend>/stat around the calls.
#   INGRESS_SQL_BATCHES="12 24" (payments per call) INGRESS_SQL_PAYMENTS=12000 (per run)
#   INGRESS_SQL_ROUNDS=3
#   INGRESS_SQL_FINISHES=1: each call also carries the finishes of the B payments claimed two
#   calls before, with their rows, as an ingress before session 29 sent them (for a function
#   file of that time)
#   INGRESS_SQL_FILES="old.sql new.sql": each file's ingress_batch() is installed under a
#   scratch name and the files alternate, run by run (A/B of the function; the repository's
#   deploy/migrations/functions/ingress_batch.sql by default)
# The top-level SELECT that fetches a batch is parsed and planned per call (~10 % of the
# figure, the same for every variant); the ingress uses a prepared statement.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
set -a; . "$top/var/stack.env"; set +a
batches=${INGRESS_SQL_BATCHES:-"12 24"}
total=${INGRESS_SQL_PAYMENTS:-12000}
rounds=${INGRESS_SQL_ROUNDS:-3}
files=${INGRESS_SQL_FILES:-$top/deploy/migrations/functions/ingress_batch.sql}
work=$(mktemp -d)
# the scratch functions too, every form of each (a leftover of another form would make the
# calls ambiguous)
drop_functions() {
    psql "$KASIR_PG_DSN" -qX >/dev/null 2>&1 <<'SQL' || true
SELECT format('DROP FUNCTION %s CASCADE', oid::regprocedure) FROM pg_proc
 WHERE proname ~ '^ingress_sql_bench_[0-9]+$' \gexec
SQL
}
trap 'rm -rf "$work"; drop_functions; psql "$KASIR_PG_DSN" -qc "DROP TABLE IF EXISTS ingress_sql_bench" -c "DROP SEQUENCE IF EXISTS ingress_sql_bench_seq" >/dev/null 2>&1 || true' EXIT
drop_functions
q() { psql "$KASIR_PG_DSN" -qtAX -v ON_ERROR_STOP=1 "$@"; }
partner=$(q -c "SELECT partner_id FROM partners ORDER BY created_at LIMIT 1")
[ -n "$partner" ] || partner=$("$top/build/bin/kasir-ingress" partner add "bench-sql-$(date +%s)" | sed -n 's/^partner_id=//p')
n=0
read -r -a flist <<<"$files"
for f in "${flist[@]}"; do
    n=$((n + 1))
    # both forms of a file renamed, the four-argument one calling its own five-argument one
    sed -e "s/FUNCTION ingress_batch(/FUNCTION ingress_sql_bench_$n(/" \
        -e "s/FROM ingress_batch(/FROM ingress_sql_bench_$n(/" "$f" > "$work/f$n.sql"
    q -f "$work/f$n.sql" >/dev/null
done
echo "| function | payments per call | backend CPU µs per payment | load avg |"
echo "|---|---|---|---|"
for _ in $(seq 1 "$rounds"); do
for b in $batches; do
for i in $(seq 1 "$n"); do
    calls=$((total / b / 2)) run=r$(date +%s%N | tail -c 9)
    # 2 * calls + 2 batches of b payments: batch k claims k's payments and finishes those of
    # k - 2 (two calls back, so that a finish never commits before its claim ran)
    q -v b="$b" -v nb=$((2 * calls + 2)) -v run="$run" -v partner="$partner" \
      -v fin="${INGRESS_SQL_FINISHES:-0}" >/dev/null <<'EOF'
SET client_min_messages = warning;
DROP TABLE IF EXISTS ingress_sql_bench;
CREATE UNLOGGED TABLE ingress_sql_bench (id bigint PRIMARY KEY, fin text, claims text,
                                         claims_b text, bodies bytea[]);
CREATE SEQUENCE IF NOT EXISTS ingress_sql_bench_seq;
SELECT setval('ingress_sql_bench_seq', 1, false);
WITH p AS (
  SELECT n, n / :b AS k, encode(sha256(convert_to(:'run' || 'k' || n, 'UTF8')), 'hex') AS key,
         encode(sha256(convert_to(:'run' || 'f' || n, 'UTF8')), 'hex') AS fp,
         'pay_' || :'run' || '_' || n AS rid, 'chk_' || :'run' || '_' || n AS checkout
    FROM generate_series(0, :nb * :b - 1) n),
c AS (SELECT k, jsonb_agg(jsonb_build_object('route', 'payments', 'partner', :'partner', 'key', key,
          'fp', fp, 'rid', rid, 'checkout', checkout, 'status', 202) ORDER BY key) AS cl,
             array_agg(convert_to(repeat('{"payment_id":"' || rid || '"}', 8), 'UTF8')
                       ORDER BY key) AS bodies
        FROM p GROUP BY k),
f AS (SELECT k + 2 AS k, jsonb_agg(jsonb_build_object('op', 'complete', 'partner', :'partner',
          'key', key, 'route', 'payments', 'rid', rid, 'orders', jsonb_build_array(jsonb_build_object(
          'n', 0, 'oid', 'ord_' || rid, 'seller', 'seller-' || n % 50, 'amt', 15000000,
          'cur', 'IDR', 'method', 'QRIS')), 'checkout', checkout, 'buyer', 'buyer-' || n % 1000)) AS fi
        FROM p WHERE :fin = 1 GROUP BY k)
INSERT INTO ingress_sql_bench
SELECT c.k, coalesce(f.fi, '[]')::text,
       -- the same claims, each answer inline as base64 (a four-argument function) or
       -- naming its element of bodies
       (SELECT jsonb_agg(e || jsonb_build_object('i', o - 1, 'body',
                   translate(encode(c.bodies[o], 'base64'), E'\n', '')) ORDER BY o)
          FROM jsonb_array_elements(c.cl) WITH ORDINALITY AS t(e, o))::text,
       (SELECT jsonb_agg(e || jsonb_build_object('i', o - 1, 'b', o) ORDER BY o)
          FROM jsonb_array_elements(c.cl) WITH ORDINALITY AS t(e, o))::text,
       c.bodies
  FROM c LEFT JOIN f USING (k);
CHECKPOINT;
EOF
    # the 202 bodies as a bytea[] argument when the function takes one (as the ingress sends
    # them since session 19), else base64 inside the claims
    if [ "$(q -c "SELECT bool_or(pronargs = 5) FROM pg_proc WHERE proname = 'ingress_sql_bench_$i'")" = t ]; then
        args="x.fin::jsonb, x.claims_b::jsonb, '30 seconds', '86400 seconds', x.bodies"
    else
        args="x.fin::jsonb, x.claims::jsonb, '30 seconds', '86400 seconds'"
    fi
    # each session: its backend's CPU before and after its calls, through \! and $PID
    for s in 1 2; do
        { echo "SELECT pg_backend_pid() AS pid \\gset"
          echo "\\setenv PID :pid"
          echo "\\o /dev/null"
          echo "SELECT 1 FROM ingress_sql_bench_$i('[]', '[]', '30 s', '1 day');"
          echo "\\! sed 's/^.*) //' /proc/\$PID/stat | awk '{print \$12 + \$13}' > $work/t0-$s"
          for _ in $(seq 1 "$calls"); do
              echo "SELECT count(*) FROM ingress_sql_bench x, ingress_sql_bench_$i($args) WHERE x.id = (SELECT nextval('ingress_sql_bench_seq') - 1);"
          done
          echo "\\! sed 's/^.*) //' /proc/\$PID/stat | awk '{print \$12 + \$13}' > $work/t1-$s"
        } > "$work/s$s.sql"
    done
    q -f "$work/s1.sql" & q -f "$work/s2.sql"; wait
    ticks=$(( $(cat "$work/t1-1") - $(cat "$work/t0-1") + $(cat "$work/t1-2") - $(cat "$work/t0-2") ))
    awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" -v p=$((2 * calls * b)) -v f="$i: $(basename "${flist[$((i - 1))]}")" \
        -v b="$b" -v l="$(cut -d' ' -f1 /proc/loadavg)" \
        'BEGIN { printf "| %s | %d | %.1f | %s |\n", f, b, t * 1e6 / hz / p, l }'
    q -c "DELETE FROM payment_orders WHERE order_id LIKE 'ord_pay_${run}_%'" \
      -c "DELETE FROM payments WHERE payment_id LIKE 'pay_${run}_%'" \
      -c "DELETE FROM idempotency_keys WHERE resource_id LIKE 'pay_${run}_%'" >/dev/null
done
done
done
