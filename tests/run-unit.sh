#!/usr/bin/env bash
# Runs each unit test binary given; prints its own line per binary and one total line.
# A binary that runs longer than KS_UNIT_TIMEOUT seconds (default 300) is killed and fails:
# once, test_kafka hung for 15 minutes inside rd_kafka_destroy (a failed KT_INTEQ evaluated
# ks_kafka_producer_close a second time: a destroyed handle destroyed again; ktest.h now
# evaluates once, session 13), and a hang would otherwise hold CI until its own limit.
set -u
limit=${KS_UNIT_TIMEOUT:-300}
pass=0; fail=0; bad=()
for t in "$@"; do
    out=$(timeout -k 5 "$limit" "$t" 2>&1); rc=$?
    [ $rc -eq 124 ] && out="$out
$(basename "$t"): timed out after $limit s"
    line=$(printf '%s\n' "$out" | tail -n 1)
    p=$(sed -nE 's/.* ([0-9]+) passed, ([0-9]+) failed$/\1/p' <<<"$line")
    f=$(sed -nE 's/.* ([0-9]+) passed, ([0-9]+) failed$/\2/p' <<<"$line")
    if [ $rc -ne 0 ] || [ -z "$p" ]; then
        printf '%s\n' "$out" | tail -n 30
        bad+=("$t"); fail=$((fail + ${f:-1}))
    fi
    pass=$((pass + ${p:-0}))
    printf '  %-48s %s\n' "$(basename "$t")" "${line##*: }"
done
echo "unit: $pass passed, $fail failed"
[ ${#bad[@]} -eq 0 ]
