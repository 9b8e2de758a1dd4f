#!/usr/bin/env bash
# Runs the numbered integration tests (pytest) against the stack `make up` started.
# Extra arguments go to pytest (e.g. -k 101, -x).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
set -a; . "$top/var/stack.env"; set +a
mkdir -p "$top/var/log/tests"
# the demo's daemons (make demo) would act on every test's traffic: stopped first
bash "$top/deploy/local/services.sh" stop
# Debian's python3 carries python3-pytest and python3-avro (deploy/deps.sh installs both)
# the slowest tests are listed at the end: make test is to stay under ~20 minutes
exec /usr/bin/python3 -m pytest -q -p no:cacheprovider --durations=25 "$top/tests/integration" "$@"
