#!/usr/bin/env bash
# Installs what Kasir needs on Debian 12 and fetches the Kafka jars. Idempotent: a second
# run checks, finds everything present, and returns in well under a second.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
pkgs=(build-essential pkg-config librdkafka-dev libpq-dev libavro-dev libcurl4-openssl-dev
      libssl-dev libjansson-dev libmicrohttpd-dev postgresql-15 postgresql-contrib kcat
      python3-avro python3-pytest python3-venv clang libclang-rt-14-dev wrk maven openjdk-17-jre-headless curl bc)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "deps: installing ${missing[*]}"
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
    export DEBIAN_FRONTEND=noninteractive
    # apt lists older than a day, or absent, are refreshed; otherwise install straight away
    if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -1)" ]; then
        $sudo apt-get update -q
    fi
    $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" ||
        { $sudo apt-get update -q && $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"; }
    # Debian starts a cluster of its own on 5432; Kasir runs its own under var/, so stop it
    if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql/15/main ]; then
        $sudo pg_ctlcluster 15 main stop 2>/dev/null || true
    fi
fi
# Kafka 3.9.1 and a logging backend from Maven Central, into a git-ignored cache
libs="$top/var/cache/kafka-libs"
if [ ! -f "$libs/.complete" ]; then
    mkdir -p "$libs"
    echo "deps: fetching Apache Kafka 3.9.1 jars from Maven Central"
    mvn -q -B -f "$top/deploy/maven/pom.xml" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$libs"
    ls "$libs"/kafka_2.13-3.9.1.jar >/dev/null
    touch "$libs/.complete"
fi
# The PSPs' own Python SDKs, pinned, in a venv under var/: tests 320-322 drive the PSP
# sandbox with them to show that a client written against the real APIs works unchanged.
# Not a runtime dependency; when PyPI cannot be reached the tests that need them skip.
venv="$top/var/venv-psp"
psp_sdks=(stripe==16.1.0 midtransclient==1.4.2 xendit-python==0.2.2)
if [ ! -f "$venv/.complete-1" ]; then
    echo "deps: installing the PSP SDKs (${psp_sdks[*]}) into var/venv-psp"
    if { [ -x "$venv/bin/pip" ] || /usr/bin/python3 -m venv "$venv"; } &&
        "$venv/bin/pip" install -q --disable-pip-version-check "${psp_sdks[@]}"; then
        touch "$venv/.complete-1"
    else
        echo "deps: could not install the PSP SDKs; the SDK tests will be skipped" >&2
    fi
fi
