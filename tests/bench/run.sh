#!/usr/bin/env bash
# make bench: runs every tests/bench/*_bench.sh (or only those named in BENCH=...), each
# printing a Markdown table row set; results are collected in var/bench/ and printed with
# the versions they were measured on. docs/BENCHMARKS.md is updated by hand from this output
# (figures are reviewed before they are published).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
set -a; . "$top/var/stack.env"; set +a
out="$top/var/bench"; mkdir -p "$out"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
report="$out/bench-$stamp.md"
bash "$top/tests/bench/versions.sh" > "$report"
for b in "$top"/tests/bench/*_bench.sh; do
    name=$(basename "$b" _bench.sh)
    if [ -n "${BENCH:-}" ] && ! grep -qw "$name" <<<"$BENCH"; then continue; fi
    echo "bench: $name"
    { echo; echo "### $name"; echo; bash "$b"; } | tee -a "$report"
done
{ echo; echo "| at the end | |"; echo "|---|---|"; "$top/build/bench/calib" "machine speed (end)"; } | tee -a "$report"
echo "bench: report in $report"
