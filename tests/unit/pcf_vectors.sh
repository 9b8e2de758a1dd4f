#!/usr/bin/env bash
# Checks lib/serde.c's Parsing Canonical Forms of every catalogue schema against
# python3-avro's (schemas/canonical_forms.py), by running a test_serde binary with
# KS_PCF_VECTORS set. Usage: tests/unit/pcf_vectors.sh [test binary]
# (default build/tests/test_serde; build/asan/tests/test_serde works too).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${1:-build/tests/test_serde}
[ -x "$bin" ] || make --no-print-directory "$bin"
vectors=$(mktemp)
trap 'rm -f "$vectors"' EXIT
/usr/bin/python3 schemas/canonical_forms.py > "$vectors"
KS_PCF_VECTORS="$vectors" "$bin"
