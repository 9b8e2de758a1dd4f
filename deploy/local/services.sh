#!/usr/bin/env bash
# Kasir's own daemons started by the local scripts (make demo): each writes var/run/<name>.pid.
#   services.sh stop     stops every process named by a pid file under var/run/ (TERM, then
#                        KILL after 20 s) and removes the pid files
#   services.sh status   lists them
# Only processes whose pid file we wrote are touched. `make down` should call `stop` first.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
run="$top/var/run"
cmd=${1:-status}
shopt -s nullglob
case "$cmd" in
stop)
    for f in "$run"/*.pid; do
        pid=$(cat "$f" 2>/dev/null || true)
        name=$(basename "$f" .pid)
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 1 80); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
            if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
            echo "services: stopped $name ($pid)"
        fi
        rm -f "$f"
    done
    ;;
status)
    for f in "$run"/*.pid; do
        pid=$(cat "$f" 2>/dev/null || true)
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then s=running; else s=stopped; fi
        printf '%-24s %-8s %s\n' "$(basename "$f" .pid)" "$pid" "$s"
    done
    ;;
*)
    echo "usage: services.sh stop|status" >&2; exit 2 ;;
esac
