#!/usr/bin/env bash
# The local stack: a single-node Apache Kafka 3.9.1 (KRaft, broker+controller) and a
# PostgreSQL 15 cluster, both with data and logs under the git-ignored var/.
#   stack.sh up | down | status | env | pg-stop | pg-start | kafka-stop | kafka-start | migrate | topics
# `up` twice is harmless; `down` stops only the processes `up` started, by their pid files.
# PostgreSQL refuses to run as root: when the caller is root it runs as the `postgres` user.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
var="$top/var"
bin="$top/build/bin"
KAFKA_PORT=${KASIR_STACK_KAFKA_PORT:-9092}
CTRL_PORT=${KASIR_STACK_CONTROLLER_PORT:-9093}
PG_PORT=${KASIR_STACK_PG_PORT:-55432}
PGBIN=/usr/lib/postgresql/15/bin
# one socket dir per checkout, short enough for the 107-byte socket path limit
tag=$(printf '%s' "$top" | sha256sum | cut -c1-8)
PG_SOCK="/tmp/kasir-pg-$tag"
PG_DSN="host=$PG_SOCK port=$PG_PORT dbname=kasir user=kasir"
PG_MIN_WAL_MB=4096
BROKERS="127.0.0.1:$KAFKA_PORT"

log() { printf 'stack: %s\n' "$*"; }
die() { printf 'stack: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
# seconds since t0 (a now() value), one decimal
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }

as_pg() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# PostgreSQL's data dir must be reachable by the user it runs as; a checkout under a
# private home (0700) is not, so the data then lives in /var/tmp and var/pg links to it.
pg_dir() {
    if [ -e "$var/pg" ]; then readlink -f "$var/pg"; return; fi
    mkdir -p "$var"
    if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$var"; then
        local d="/var/tmp/kasir-pg-$tag"
        mkdir -p "$d"; ln -sfn "$d" "$var/pg"
    else
        mkdir -p "$var/pg"
    fi
    readlink -f "$var/pg"
}

pg_running() { [ -n "$(pg_pid)" ]; }
pg_pid() {
    local d; d=$(readlink -f "$var/pg" 2>/dev/null) || return 0
    [ -f "$d/data/postmaster.pid" ] || return 0
    local p; p=$(head -1 "$d/data/postmaster.pid")
    kill -0 "$p" 2>/dev/null && echo "$p" || true
}

pg_start() {
    local d; d=$(pg_dir)
    if [ "$(id -u)" -eq 0 ]; then chown postgres: "$d"; fi
    if [ ! -f "$d/data/PG_VERSION" ]; then
        log "initialising postgresql cluster in $d/data"
        as_pg "$PGBIN/initdb" -D "$d/data" -U kasir -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
        cat >> "$d/data/postgresql.conf" <<CONF
# kasir local stack
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_SOCK'
max_connections = 300
shared_buffers = 512MB
wal_buffers = 16MB
# checkpoints by time, not by WAL volume: at 5,000 payments/s the ingress writes ~13 MB/s
# of WAL, which with 2GB forced a checkpoint about every minute
max_wal_size = 8GB
# and segments are recycled, not removed: a backend that has to create a new 16 MB segment
# stalls 30-60 ms (IO/WALInitWrite), which was the ingress's worst tail at 5,000/s
# (pg_wal_prealloc gives a new cluster these segments up front)
min_wal_size = ${PG_MIN_WAL_MB}MB
checkpoint_timeout = 15min
wal_compression = lz4
# durability stays on: a commit is on disk before a worker acknowledges it
synchronous_commit = on
commit_delay = 0
# the working set is in memory (or on SSD): an index probe costs about what a sequential
# page read does. With the default of 4 the planner hashed whole tables that grow during a
# run (a worker's dedup probe of 500 ids against 150,000 applied rows became a hash join
# over all of them), measured: 20 % of the runtime's PostgreSQL CPU (docs/BENCHMARKS.md)
random_page_cost = 1.1
# every autovacuum and autoanalyze in postgresql.log with its CPU and pages: on a new
# cluster the ingress's tables grow past autovacuum's 20 % every naptime for minutes, and
# these lines are how a slow window is matched to one (tests/bench/ingress_timeline.sh)
log_autovacuum_min_duration = 0
logging_collector = off
CONF
        pg_wal_prealloc "$d/data/pg_wal"
    fi
    if pg_running; then return 0; fi
    mkdir -p "$PG_SOCK"; [ "$(id -u)" -eq 0 ] && chown postgres: "$PG_SOCK"
    as_pg "$PGBIN/pg_ctl" -D "$d/data" -l "$d/postgresql.log" -w -t 60 start >/dev/null ||
        { tail -20 "$d/postgresql.log" >&2; die "postgresql did not start"; }
    as_pg "$PGBIN/psql" -h "$PG_SOCK" -p "$PG_PORT" -U kasir -d postgres -qtAc \
        "SELECT 1 FROM pg_database WHERE datname='kasir'" | grep -q 1 ||
        as_pg "$PGBIN/psql" -h "$PG_SOCK" -p "$PG_PORT" -U kasir -d postgres -qc "CREATE DATABASE kasir" >/dev/null
}

# A new cluster has one WAL segment. Each further 16 MB of WAL is then a new file, which
# the backend that needs it writes full of zeros and fsyncs while it holds the WAL write
# lock: every commit waits 20-50 ms behind it. At 5,000 payments/s (~13 MB of WAL a
# second) that was once a second, for as long as no checkpoint had recycled segments -
# with checkpoint_timeout at 15 min, the whole of a benchmark on a freshly set-up stack
# (docs/ARCHITECTURE.md, "Ingress"). So the new cluster gets, before its first start, the
# segments that min_wal_size keeps on a warm one: zero-filled files under the names of the
# segments to come, which PostgreSQL opens and uses as they are, as it does a recycled
# segment. Real zeros (O_DIRECT, ~0.5 GB/s here), not a sparse or fallocate'd file: a
# write into a hole or an unwritten extent would add a journal commit to every WAL fsync.
# KASIR_STACK_PG_WAL_PREALLOC_MB (default: min_wal_size) sets how much; 0: none.
pg_wal_prealloc() {
    local w=$1 mb=${KASIR_STACK_PG_WAL_PREALLOC_MB:-$PG_MIN_WAL_MB} last tli seg n i t0
    case "$mb" in ''|*[!0-9]*) log "KASIR_STACK_PG_WAL_PREALLOC_MB=$mb is not a number of MB: no WAL preallocated"; return 0 ;; esac
    n=$((mb / 16))
    last=$(ls "$w" | grep -E '^[0-9A-F]{24}$' | sort | tail -1 || true)
    [ "$n" -gt 0 ] && [ -n "$last" ] || return 0
    t0=$(now)
    tli=${last:0:8}
    # a segment's name: timeline, then its number in two halves of 256 segments (16 MB each)
    seg=$(( 16#${last:8:8} * 256 + 16#${last:16:8} ))
    local direct=oflag=direct f files=()
    for i in $(seq 1 "$n"); do
        f="$w/$(printf '%s%08X%08X' "$tli" $(((seg + i) / 256)) $(((seg + i) % 256)))"
        # without O_DIRECT (tmpfs) through the page cache, synced below
        (umask 077; dd if=/dev/zero of="$f" bs=16M count=1 $direct status=none 2>/dev/null) ||
            { [ "$i" -eq 1 ] && direct= && (umask 077; dd if=/dev/zero of="$f" bs=16M count=1 status=none 2>/dev/null); } || {
            rm -f "$f"
            log "WAL preallocation stopped after $((i - 1)) segments (disk full?): the first minutes under load will be slower"
            break
        }
        files+=("$f")
    done
    # written by the caller (one process, not one runuser a file), owned by the server's user
    [ "${#files[@]}" -eq 0 ] || [ "$(id -u)" -ne 0 ] || chown postgres: "${files[@]}"
    sync "$w"
    log "preallocated $n WAL segments ($mb MB) in $(since "$t0") s"
}

pg_stop() {
    local d; d=$(readlink -f "$var/pg" 2>/dev/null) || return 0
    pg_running || return 0
    as_pg "$PGBIN/pg_ctl" -D "$d/data" -m fast -w -t 60 stop >/dev/null
}

kafka_pid() {
    local f="$var/kafka/kafka.pid"
    [ -f "$f" ] || return 0
    local p; p=$(cat "$f")
    kill -0 "$p" 2>/dev/null && echo "$p" || true
}

kafka_ready() { kcat -b "$BROKERS" -L -m 2 >/dev/null 2>&1; }

kafka_start() {
    local libs="$var/cache/kafka-libs" k="$var/kafka"
    [ -f "$libs/.complete" ] || die "kafka jars missing: run make deps"
    mkdir -p "$k/data" "$k/logs"
    if [ -z "$(kafka_pid)" ]; then
        cat > "$k/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$CTRL_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$CTRL_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$CTRL_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$k/data
num.partitions=3
offsets.topic.replication.factor=1
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
log.retention.hours=168
num.network.threads=2
num.io.threads=4
PROPS
        cat > "$k/log4j.properties" <<L4J
log4j.rootLogger=WARN, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=$k/logs/server.log
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=INFO
L4J
        # KASIR_KAFKA_GC replaces the collector flags (A/B runs of the bench)
        local gc; read -r -a gc <<<"${KASIR_KAFKA_GC:--XX:+UseG1GC -XX:MaxGCPauseMillis=5 -XX:InitiatingHeapOccupancyPercent=35}"
        local jvm=(-Xmx1G -Xms1G -server "${gc[@]}" -Djava.awt.headless=true
                   "-Dlog4j.configuration=file:$k/log4j.properties" -cp "$libs/*")
        if [ ! -f "$k/data/meta.properties" ]; then
            log "formatting kafka storage"
            local id; id=$(java "${jvm[@]}" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)
            java "${jvm[@]}" kafka.tools.StorageTool format -t "$id" -c "$k/server.properties" \
                --standalone >"$k/logs/format.log" 2>&1 ||
                { cat "$k/logs/format.log" >&2; die "kafka storage format failed"; }
        fi
        nohup java "${jvm[@]}" "-Xlog:gc:file=$k/logs/gc.log:time,uptime:filecount=3,filesize=10M" \
            kafka.Kafka "$k/server.properties" \
            >"$k/logs/stdout.log" 2>&1 < /dev/null &
        echo $! > "$k/kafka.pid"
        kafka_new_jvm=1
    fi
    local i
    for i in $(seq 1 240); do
        kafka_ready && return 0
        [ -n "$(kafka_pid)" ] || { tail -30 "$k/logs/stdout.log" "$k/logs/server.log" >&2 || true; die "kafka exited"; }
        sleep 0.25
    done
    die "kafka not ready after 60 s"
}

# A new broker JVM runs its request path interpreted until the JIT has compiled it: under
# the ingress's first load at 5,000/s its compiler threads took ~6 s of CPU in the first
# 15 s, on a machine whose 2 cores the load nearly fills, and the requests queued behind
# them took a minute or more to drain (p99 in seconds; docs/ARCHITECTURE.md, "Ingress"). `up`
# therefore runs the produce path once before it says the stack is up: idempotent, acks=all,
# headers, one message per request uncompressed (as the ingress produces) and then batches
# in lz4 (as the workers' outboxes do), into a topic of its own (kasir.stack.warmup), read
# meanwhile by four consumers (below), then reads it back in a consumer group (no service
# reads that topic). ~13 s here, only when `up` started the broker; KASIR_STACK_KAFKA_WARM=0 skips it. A broker that
# `kafka-start` restarts (the failover tests) comes back cold, as a restarted one would.
KAFKA_WARM_TOPIC=kasir.stack.warmup
kafka_warm() {
    local n=${KASIR_STACK_KAFKA_WARM:-60000} t0; t0=$(now)
    case "$n" in ''|*[!0-9]*) log "KASIR_STACK_KAFKA_WARM=$n is not a message count: broker not warmed"; return 0 ;; esac
    [ "$n" -gt 0 ] || return 0
    "$bin/kasir-topics" --brokers "$BROKERS" "$KAFKA_WARM_TOPIC:6" >/dev/null ||
        { log "could not create $KAFKA_WARM_TOPIC: broker not warmed"; return 0; }
    local p=(-P -b "$BROKERS" -t "$KAFKA_WARM_TOPIC" -K: -X enable.idempotence=true -X acks=all
             -X linger.ms=0 -X log_level=3
             -H "traceparent=00-00000000000000000000000000000001-0000000000000001-01"
             -H kasir.message_id=warmup -H kasir.producer=stack)
    # keys spread the messages over the partitions; ~600-byte values, an event's size; the
    # lz4 batches linger 2 ms, as the workers' relays do (lib/kafka.c)
    warm_lines() { awk -v n="$1" 'BEGIN { for (i = 0; i < n; i++) printf "k%d:%0600d\n", i, i }'; }
    # while both write, four consumers read the topic as the workers do, so the fetch path
    # is compiled on the same request mix: long polls that a produce completes (the workers'
    # fetch.min.bytes and fetch.wait.max.ms, lib/kafka.c) and short ones, thousands of
    # fetches; without them a bench's first minute still compiled ~900 of the broker's
    # methods (FetchRequest.parse among them) and made the produce path's compiled code not
    # entrant (docs/BENCHMARKS.md, session 37)
    local c=() i
    for i in 65536:20 65536:20 1:5 1:5; do
        timeout 120 kcat -C -b "$BROKERS" -t "$KAFKA_WARM_TOPIC" -o end -X log_level=3 -q -f '' \
            -X fetch.min.bytes="${i%%:*}" -X fetch.wait.max.ms="${i##*:}" >/dev/null 2>&1 & c+=($!)
    done
    # timeout runs each in a process group of its own, out of reach of a Ctrl-C of `make up`:
    # an interrupted warm-up kills them itself rather than leave them fetching for 2 minutes
    trap 'kill "${c[@]}" 2>/dev/null || true' EXIT
    # then read it all back in a consumer group: the group's path is compiled too, and the
    # group coordinator's topic (__consumer_offsets) exists before the first worker joins
    # (a worker's first drain on a fresh stack lost ~1.5 s to both)
    local ok=0
    warm_lines "$n" | kcat "${p[@]}" -X compression.codec=none -X batch.num.messages=1 &&
        warm_lines "$((n * 5 / 3))" | kcat "${p[@]}" -X compression.codec=lz4 -X linger.ms=2 && ok=1
    kill "${c[@]}" 2>/dev/null || true; wait "${c[@]}" 2>/dev/null || true
    trap - EXIT
    if [ "$ok" = 1 ] &&
       timeout 120 kcat -b "$BROKERS" -G kasir-stack-warmup -X auto.offset.reset=earliest \
           -X log_level=3 -q -e -f '' "$KAFKA_WARM_TOPIC" >/dev/null; then
        log "broker warmed up in $(since "$t0") s ($n single-message produce requests, then $((n * 5 / 3)) messages in batches, read by 4 consumers meanwhile and all read back in a group)"
    else
        log "broker warm-up failed: the first minute under load will be slower"
    fi
}

kafka_stop() {
    local p; p=$(kafka_pid)
    [ -n "$p" ] || return 0
    kill "$p"
    local i
    for i in $(seq 1 120); do kill -0 "$p" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$p" 2>/dev/null && kill -9 "$p" || true
    rm -f "$var/kafka/kafka.pid"
}

write_env() {
    cat > "$var/stack.env" <<ENV
KASIR_PG_DSN="$PG_DSN"
KASIR_KAFKA_BROKERS="$BROKERS"
KASIR_TOP="$top"
ENV
}

psql_kasir() { PGOPTIONS="-c client_min_messages=warning" PGCONNECT_TIMEOUT=5 psql "$PG_DSN" -v ON_ERROR_STOP=1 -qtAX "$@"; }

# the one migration runner (deploy/migrations/README.md has the rules)
migrate() { bash "$top/deploy/migrate.sh" "$PG_DSN" | sed 's/^migrate: /stack: /'; }

topics() { "$bin/kasir-topics" --brokers "$BROKERS" --manifest "$top/deploy/topics.tsv"; }

. "$top/deploy/local/writeback.sh" # writeback_tune, writeback_restore

cmd=${1:-status}
case "$cmd" in
up)
    t0=$(now)
    writeback_tune
    pg_start & pgjob=$!
    kafka_start
    wait $pgjob || die "postgresql failed"
    write_env
    migrate
    topics
    [ -z "${kafka_new_jvm:-}" ] || kafka_warm
    log "up in $(since "$t0") s: kafka $BROKERS, postgresql $PG_DSN"
    ;;
down)  writeback_restore; kafka_stop; pg_stop; log "down" ;;
status)
    p=$(kafka_pid); q=$(pg_pid)
    echo "kafka:      $([ -n "$p" ] && echo "running pid $p" || echo stopped) ($BROKERS)"
    echo "postgresql: $([ -n "$q" ] && echo "running pid $q" || echo stopped) ($PG_DSN)"
    [ -n "$p" ] && [ -n "$q" ]
    ;;
env)         write_env; cat "$var/stack.env" ;;
pg-stop)     pg_stop ;;
pg-start)    pg_start ;;
kafka-stop)  kafka_stop ;;
kafka-start) kafka_start ;;
migrate)     migrate ;;
topics)      topics ;;
*) die "usage: stack.sh up|down|status|env|pg-stop|pg-start|kafka-stop|kafka-start|migrate|topics" ;;
esac
