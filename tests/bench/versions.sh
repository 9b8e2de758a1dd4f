#!/usr/bin/env bash
# Prints the versions a benchmark ran with, as a Markdown table.
top=$(cd "$(dirname "$0")/../.." && pwd)
v() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo "?"; }
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')
echo "| component | version |"
echo "|---|---|"
echo "| kasir | $(git -C "$top" rev-parse --short HEAD 2>/dev/null) |"
echo "| machine | $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $cpu |"
echo "| kernel | $(uname -r) |"
echo "| gcc | $(gcc -dumpfullversion) |"
echo "| librdkafka | $(v librdkafka-dev) |"
echo "| libpq / PostgreSQL server | $(v libpq-dev) / $(v postgresql-15) |"
echo "| Apache Kafka | 3.9.1 (KRaft, single node, Java $(java -version 2>&1 | awk -F'"' '/version/{print $2}')) |"
echo "| avro-c | $(v libavro-dev) |"
echo "| libmicrohttpd | $(v libmicrohttpd-dev) |"
echo "| jansson | $(v libjansson-dev) |"
# how fast the machine is right now (tests/bench/calib.c): run.sh prints it again at the end
[ -x "$top/build/bench/calib" ] && "$top/build/bench/calib" "machine speed (start)"
