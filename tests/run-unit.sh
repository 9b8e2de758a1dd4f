#!/usr/bin/env bash
# Runs each unit test binary given; prints its own line per binary and one total line.
set -u
pass=0; fail=0; bad=()
for t in "$@"; do
    out=$("$t" 2>&1); rc=$?
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
