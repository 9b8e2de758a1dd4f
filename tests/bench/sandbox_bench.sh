#!/usr/bin/env bash
# kasir-psp-sandbox benchmark (not a test): N card charges through the sandbox's own API
# (POST /sandbox/v1/charges, each with its Idempotency-Key and reference; 0 ms latency, no
# webhook URL), from 4 keep-alive clients in chunks of 10,000, then a refund of each of the
# first 10,000 charges (POST /sandbox/v1/refunds) with the ledger N charges long. Prints,
# per binary, the sandbox's CPU per call (its /proc ticks: ~1 µs a call of resolution) and
# the slowest call of each chunk as the clients saw it (Python threads: a few ms is their
# floor). The store's maps grow with every charge, so a map that grows all at once shows
# as one slow chunk at 32,768, 65,536, 131,072 ... records (docs/BENCHMARKS.md, session 38).
#   tests/bench/sandbox_bench.sh [N]   (charges, a multiple of 10,000, default 150000; env
#   SANDBOX_BIN_B: another kasir-psp-sandbox binary, run A B B A beside this tree's)
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
N=${1:-${N:-150000}}
[[ "$N" =~ ^[0-9]+$ ]] || { echo "sandbox bench: N must be a number of charges, not '$N'" >&2; exit 2; }
N=$((N / 10000 * 10000)); [ "$N" -ge 10000 ] || N=10000
make -s -C "$top" build/bin/kasir-psp-sandbox
a="$top/build/bin/kasir-psp-sandbox"
order="A"; [ -n "${SANDBOX_BIN_B:-}" ] && order="A B B A"

run() { # label binary; in the background, so a TERM to this script is handled at once
    python3 - "$1" "$2" "$N" <<'PY' &
import http.client, json, os, signal, socket, subprocess, sys, threading, time, uuid
label, binary, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
chunk, clients = 10000, 4
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
key = "sbx_" + uuid.uuid4().hex
env = dict(os.environ, KASIR_HTTP_PORT=str(port), KASIR_SANDBOX_API_KEY=key,
           KASIR_HTTP_BIND="127.0.0.1", KASIR_LOG_LEVEL="warn", KASIR_FAULT_LATENCY="0ms",
           KASIR_HTTP_THREADS="2",
           KASIR_WEBHOOK_BASE="", KASIR_WEBHOOK_SANDBOX_URL="")
signal.signal(signal.SIGTERM, lambda *_: sys.exit("sandbox bench: terminated"))
p = None

def cpu():
    f = open("/proc/%d/stat" % p.pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

def calls(make, count):
    """count calls of make(i) -> (path, body dict, idempotency key), spread over the
    clients; returns (sandbox CPU µs a call, slowest call ms, the answers' JSON)."""
    slow, bad, done, out = [0.0], [], [0], [None] * count
    lock = threading.Lock()
    def work(t):
        path = "(before the first call)"
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            for i in range(t, count, clients):
                path, body, idem = make(i)
                t0 = time.monotonic()
                c.request("POST", path, json.dumps(body),
                          {"Authorization": "Bearer " + key,
                           "Content-Type": "application/json", "Idempotency-Key": idem})
                r = c.getresponse(); text = r.read()
                with lock:
                    slow[0] = max(slow[0], time.monotonic() - t0)
                    if r.status != 201:
                        bad.append("%s %d %s" % (path, r.status, text[:200]))
                        return
                    out[i] = text; done[0] += 1
        except Exception as e:  # a refused or dropped connection fails the bench too
            with lock:
                bad.append("%s: %r" % (path, e))
    c0 = cpu()
    th = [threading.Thread(target=work, args=(t,)) for t in range(clients)]
    [t.start() for t in th]; [t.join() for t in th]
    if bad or done[0] != count:
        sys.exit("sandbox bench: %d of %d calls answered 201; first failure: %s"
                 % (done[0], count, bad[0] if bad else "none"))
    return (cpu() - c0) * 1e6 / count, slow[0] * 1000, out

try:
    p = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/healthz"); c.getresponse().read(); break
        except OSError:
            time.sleep(0.1)
    else:
        sys.exit("sandbox bench: %s never answered /healthz on 127.0.0.1:%d" % (binary, port))
    cpus, worst, ids = [], [], []
    for k in range(n // chunk):
        u, w, out = calls(lambda i: ("/sandbox/v1/charges",
                                     {"reference": "ord_%09d" % (k * chunk + i),
                                      "amount": "150000.00", "currency": "IDR",
                                      "method": "card", "payment_token": "tok_visa"},
                                     "k-%09d" % (k * chunk + i)), chunk)
        cpus.append(u); worst.append(w)
        if k == 0:
            ids = [json.loads(t)["id"] for t in out]
    ru, rw, _ = calls(lambda i: ("/sandbox/v1/refunds",
                                 {"charge": ids[i], "amount": "50000.00",
                                  "reference": "rf_%09d" % i}, "rf-%09d" % i), chunk)
finally:
    if p:
        p.terminate(); p.wait()
med = sorted(cpus)[len(cpus) // 2]
print("| %s | %.1f (%.1f) | %.0f | %s | %.1f | %.0f |" % (label, sum(cpus) / len(cpus), med,
      max(worst), " ".join("%.0f" % w for w in worst), ru, rw))
PY
    wait $!
}

# a TERM to this script reaches the run in progress (its Python stops its sandbox)
trap 'pkill -TERM -P $$ 2>/dev/null; exit 143' TERM INT
echo "$N charges, then 10,000 refunds, per run"
echo "| binary | sandbox CPU µs/charge, mean (median of 10,000-chunks) | slowest charge ms | slowest charge of each 10,000, ms | sandbox CPU µs/refund | slowest refund ms |"
echo "|---|---|---|---|---|---|"
for v in $order; do
    if [ "$v" = B ]; then run "B ($SANDBOX_BIN_B)" "$SANDBOX_BIN_B"; else run A "$a"; fi
done
