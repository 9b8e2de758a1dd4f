#!/usr/bin/env bash
# kasir-psp-sandbox benchmark (not a test): N card charges through the sandbox's own API
# (POST /sandbox/v1/charges, each with its Idempotency-Key and reference, 0 ms latency, no
# webhooks), from 4 keep-alive clients, in chunks of 10,000. Prints, per binary, the
# sandbox's CPU per charge and the slowest call of each chunk: the store's maps grow with
# every charge (objects, references, idempotency records), so a map that grows all at once
# shows as one slow chunk at 65,536 / 131,072 ... records (docs/BENCHMARKS.md, session 38).
#   tests/bench/sandbox_bench.sh [N]   (default 150000; env SANDBOX_BIN_B: another
#   kasir-psp-sandbox binary, run A B B A beside this tree's)
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
N=${1:-${N:-150000}}
a="$top/build/bin/kasir-psp-sandbox"
order="A"; [ -n "${SANDBOX_BIN_B:-}" ] && order="A B B A"

run() { # label binary
    python3 - "$1" "$2" "$N" <<'PY'
import http.client, json, os, socket, subprocess, sys, threading, time, uuid
label, binary, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
chunk, clients = 10000, 4
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
key = "sbx_" + uuid.uuid4().hex
env = dict(os.environ, KASIR_HTTP_PORT=str(port), KASIR_SANDBOX_API_KEY=key,
           KASIR_LOG_LEVEL="warn", KASIR_FAULT_LATENCY="0ms", KASIR_HTTP_THREADS="2",
           KASIR_SANDBOX_EVENTS="async")
p = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    for _ in range(100):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/healthz"); c.getresponse().read(); break
        except OSError:
            time.sleep(0.1)
    def cpu():
        f = open("/proc/%d/stat" % p.pid).read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    cpus, worst = [], []
    for k in range(n // chunk):
        c0, slow, bad = cpu(), [0.0], []
        def work(t):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            for i in range(chunk // clients):
                j = k * chunk + t * (chunk // clients) + i
                body = json.dumps({"reference": "ord_%09d" % j, "amount": "150000.00",
                                   "currency": "IDR", "method": "card", "payment_token": "tok_visa"})
                t0 = time.monotonic()
                c.request("POST", "/sandbox/v1/charges", body,
                          {"Authorization": "Bearer " + key, "Content-Type": "application/json",
                           "Idempotency-Key": "k-%09d" % j})
                r = c.getresponse(); r.read()
                slow[0] = max(slow[0], time.monotonic() - t0)
                if r.status != 201:
                    bad.append(r.status)
        th = [threading.Thread(target=work, args=(t,)) for t in range(clients)]
        [t.start() for t in th]; [t.join() for t in th]
        if bad:
            sys.exit("sandbox bench: %d charges refused (%s)" % (len(bad), bad[0]))
        cpus.append((cpu() - c0) * 1e6 / chunk); worst.append(slow[0] * 1000)
finally:
    p.terminate(); p.wait()
cpus_s = sorted(cpus)
print("| %s | %d | %.1f | %.1f | %.0f | %s |" % (label, n, sum(cpus) / len(cpus),
      cpus_s[len(cpus_s) // 2], max(worst), " ".join("%.0f" % w for w in worst)))
PY
}

echo "| binary | charges | sandbox CPU µs/charge, mean | median of chunks | slowest call ms | slowest call of each 10,000 ms |"
echo "|---|---|---|---|---|---|"
for v in $order; do
    if [ "$v" = B ]; then run "B ($SANDBOX_BIN_B)" "$SANDBOX_BIN_B"; else run A "$a"; fi
done
