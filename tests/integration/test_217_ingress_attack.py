"""217: the attack of issue 12, bounded, on loopback (tests/attack/ingress_attack.py).

10 unauthenticated 60 MiB uploads, 2,000 slow connections and a flood of made-up keys
(1,000/s), for 20 s, while a legitimate client pays: its p99 stays under 100 ms, every one of its
payments is accepted, /healthz answers, and the server stays under 200 MB.

The 100 ms hold on a machine with cores to spare. On a machine that is already busy (load
average above its cores: other builds and tests) the same client's p99 without any attack
is measured first, and the attack may not make it more than twice that (nor above 100 ms
when that baseline is below 50 ms)."""
import json
import os
import subprocess
import sys

from conftest import TOP
from ingress_util import Partner, new_key, start_ingress

SCRIPT = os.path.join(TOP, "tests", "attack", "ingress_attack.py")


def run(ing, p, seconds, *extra):
    out = subprocess.run([sys.executable, SCRIPT, "--port", str(ing.port), "--key", p.api_key,
                          "--pid", str(ing.daemon.proc.pid), "--seconds", str(seconds), *extra],
                         capture_output=True, text=True, timeout=seconds + 100)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_attack_on_loopback():
    ing = start_ingress()
    p = Partner("atk-" + new_key()[-6:])
    try:
        # the key is cached before the attack starts, as a busy partner's would be
        assert ing.request("GET", "/v1/payments?ids=pay_x", auth=p).status == 200
        base = run(ing, p, 8, "--uploads", "0", "--slow", "0", "--flood-threads", "0")
        res = run(ing, p, 20)
        print(json.dumps({"baseline": base["legit"], "attack": res}, indent=1))
        legit = res["legit"]
        assert legit["requests"] >= 500 and legit["codes"] == {"202": legit["requests"]}, legit
        if os.getloadavg()[0] < os.cpu_count():
            bound = 100
        else:
            bound = 100 if base["legit"]["p99_ms"] < 50 else 2 * base["legit"]["p99_ms"]
        assert legit["p99_ms"] < bound, (legit, base["legit"], os.getloadavg())
        assert res["rss_peak_mb"] < 200, res
        assert res["healthz"]["unanswered"] == 0 and res["healthz"]["worst_ms"] < 500, res["healthz"]
        # the attacks ran, and got nowhere
        assert res["uploads"]["attempts"] >= 100 and res["uploads"]["max_bytes_sent"] < 16 << 20, res
        assert res["slow"]["opened"] >= 2000, res["slow"]
        flood = res["flood"]
        assert sum(flood.values()) >= 10000 and flood.get("429", 0) > 0.9 * sum(flood.values()), flood
        assert ing.admin("/healthz")[0] == 200
        assert ing.daemon.proc.poll() is None
    finally:
        assert ing.daemon.term() == 0
