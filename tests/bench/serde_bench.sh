#!/usr/bin/env bash
# Avro single-object encode/decode throughput (lib/serde.c), one core.
top=$(cd "$(dirname "$0")/../.." && pwd)
"$top/build/bench/serde_bench" 500000
