#!/usr/bin/env python3
"""A bounded attack on a kasir-ingress running on this machine, loopback only.

For --seconds, at once:
  - 10 unauthenticated uploads of 60 MiB to /v1/settlements/sandbox, each started again as
    soon as the server cuts it (from 127.0.0.13);
  - 2,000 slow connections that trickle a request one byte every 5 s, reopened when the
    server closes them (from 127.0.0.2-127.0.0.11, 200 each);
  - a flood of requests with made-up API keys, 1,000/s (from 127.0.0.12);
while a legitimate client pays at --rate payments/s over keep-alive connections (from
127.0.0.1) and /healthz is probed once a second. Prints one JSON object: the legitimate
client's answers and latency (p50, p99, max), /healthz's worst latency, the server's peak
resident memory (--pid), and what each attack achieved.

  python3 tests/attack/ingress_attack.py --port 8080 --key ksk_... --pid 1234 --seconds 20

Only 127.0.0.1 is attacked (the target is not an option); every loop ends at the deadline."""
import argparse
import base64
import http.client
import json
import multiprocessing
import os
import random
import resource
import secrets
import select
import socket
import threading
import time
import uuid

MiB = 1 << 20


def percentile(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


class Attack:
    def __init__(self, a):
        self.a = a
        self.deadline = time.time() + a.seconds
        self.lock = threading.Lock()
        self.legit = []          # (status, latency ms)
        self.health = []         # latency ms (None: no answer)
        self.upload_attempts = 0
        self.upload_max_sent = 0
        self.slow_opened = 0
        self.slow_reopened = 0
        self.slow_open_peak = 0
        self.flood = {}
        self.rss_peak_kb = 0

    def live(self):
        return time.time() < self.deadline

    # --- 10 unauthenticated 60 MiB uploads ---------------------------------------------
    def upload(self):
        head = ("POST /v1/settlements/sandbox HTTP/1.1\r\nHost: attack\r\nContent-Type: text/csv\r\n"
                "Content-Length: %d\r\n\r\n" % (60 * MiB)).encode()
        chunk = b"x" * MiB
        while self.live():
            sent = 0
            try:
                s = socket.create_connection(("127.0.0.1", self.a.port), timeout=5,
                                             source_address=("127.0.0.13", 0))
                s.sendall(head)
                while sent < 60 * MiB and self.live():
                    s.sendall(chunk)
                    sent += len(chunk)
            except OSError:
                pass
            finally:
                try:
                    s.close()
                except Exception:
                    pass
            with self.lock:
                self.upload_attempts += 1
                self.upload_max_sent = max(self.upload_max_sent, sent)
            time.sleep(0.5)

    # --- 2,000 slow connections --------------------------------------------------------
    def slow(self):
        n = self.a.slow
        socks = {}  # index -> [socket, next send time, bytes sent]
        by_fd = {}
        poller = select.poll()

        def open_one(i):
            try:
                s = socket.socket()
                s.setblocking(False)
                s.bind(("127.0.0.%d" % (2 + i % 10), 0))
                s.connect_ex(("127.0.0.1", self.a.port))
            except OSError:
                return False
            socks[i] = [s, time.time() + random.uniform(0, 5), 0]
            by_fd[s.fileno()] = i
            poller.register(s, select.POLLIN)
            return True

        def close_one(i):
            s = socks.pop(i)[0]
            by_fd.pop(s.fileno(), None)
            try:
                poller.unregister(s)
            except (KeyError, ValueError):
                pass
            s.close()

        for i in range(n):
            if open_one(i):
                self.slow_opened += 1
        line = b"POST /v1/payments HTTP/1.1\r\nHost: attack\r\nX-Slow: "
        while self.live():
            now = time.time()
            for i, v in list(socks.items()):
                if now < v[1]:
                    continue
                try:
                    v[0].send(line if v[2] == 0 else b"x")
                    v[1], v[2] = now + 5, v[2] + 1
                except (BlockingIOError, InterruptedError):
                    v[1] = now + 1
                except OSError:
                    close_one(i)
                    if open_one(i):
                        self.slow_reopened += 1
            # closed by the server: readable, with EOF or a reset
            for fd, ev in poller.poll(0):
                i = by_fd.get(fd)
                if i is None:
                    continue
                try:
                    if socks[i][0].recv(4096):
                        continue
                except BlockingIOError:
                    continue
                except OSError:
                    pass
                close_one(i)
                if open_one(i):
                    self.slow_reopened += 1
            self.slow_open_peak = max(self.slow_open_peak, len(socks))
            time.sleep(0.1)
        for i in list(socks):
            close_one(i)

    # --- a flood of made-up keys -------------------------------------------------------
    def flood_one(self):
        c = None
        rate = self.a.flood_rate / max(1, self.a.flood_threads)
        next_t = time.time()
        while self.live():
            # a fixed rate: a flood as fast as Python goes would take a core of this
            # machine from the server it attacks, which is not what is measured
            next_t += 1.0 / rate
            time.sleep(max(0.0, next_t - time.time()))
            try:
                if c is None:
                    c = http.client.HTTPConnection("127.0.0.1", self.a.port, timeout=5,
                                                   source_address=("127.0.0.12", 0))
                key = "ksk_" + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
                auth = "Basic " + base64.b64encode((key + ":").encode()).decode()
                c.request("GET", "/v1/payments?ids=pay_x", headers={"Authorization": auth})
                r = c.getresponse()
                r.read()
                st = r.status
                if (r.getheader("Connection") or "").lower() == "close":
                    c.close()
                    c = None
            except (OSError, http.client.HTTPException):
                st = -1
                if c is not None:
                    c.close()
                c = None
            with self.lock:
                self.flood[st] = self.flood.get(st, 0) + 1

    # --- the legitimate client ---------------------------------------------------------
    def legit_one(self, rate):
        c = None
        auth = "Basic " + base64.b64encode((self.a.key + ":").encode()).decode()
        next_t = time.time()
        while self.live():
            next_t += 1.0 / rate
            h = uuid.uuid4().hex
            body = {"buyer": {"id": "buyer-" + h[:8]},
                    "checkout_id": "atk-" + "x".join(h[i:i + 8] for i in range(0, 32, 8)),
                    "payment_orders": [{"seller_id": "seller-1", "amount": "150000.00",
                                        "currency": "IDR", "method": "qris"}]}
            t0 = time.time()
            try:
                if c is None:
                    c = http.client.HTTPConnection("127.0.0.1", self.a.port, timeout=10)
                c.request("POST", "/v1/payments", body=json.dumps(body),
                          headers={"Authorization": auth, "Idempotency-Key": str(uuid.uuid4()),
                                   "Content-Type": "application/json"})
                r = c.getresponse()
                r.read()
                st = r.status
            except (OSError, http.client.HTTPException):
                st = -1
                if c is not None:
                    c.close()
                c = None
            with self.lock:
                self.legit.append((st, (time.time() - t0) * 1000))
            time.sleep(max(0.0, next_t - time.time()))

    def probe_health(self):
        while self.live():
            t0 = time.time()
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.a.port, timeout=5)
                c.request("GET", "/healthz")
                ok = c.getresponse().status == 200
                c.close()
                self.health.append((time.time() - t0) * 1000 if ok else None)
            except (OSError, http.client.HTTPException):
                self.health.append(None)
            time.sleep(1)

    def sample_rss(self):
        while self.live():
            try:
                with open("/proc/%d/status" % self.a.pid) as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            self.rss_peak_kb = max(self.rss_peak_kb, int(line.split()[1]))
            except OSError:
                pass
            time.sleep(0.1)

    def run_part(self, part, q):
        """One part of the attack, in a process of its own (the GIL of a shared process
        would add the attackers' time to the legitimate client's latency)."""
        if part == "uploads":
            ts = [threading.Thread(target=self.upload) for _ in range(self.a.uploads)]
        elif part == "slow":
            ts = [threading.Thread(target=self.slow)]
        elif part == "flood":
            ts = [threading.Thread(target=self.flood_one)]
        elif part == "legit":
            ts = [threading.Thread(target=self.legit_one, args=(self.a.rate / 2.0,)) for _ in range(2)]
        elif part == "watch":
            ts = [threading.Thread(target=self.probe_health)]
            if self.a.pid:
                ts.append(threading.Thread(target=self.sample_rss))
        for t in ts:
            t.daemon = True
            t.start()
        for t in ts:
            t.join(self.a.seconds + 30)
        q.put((part, {"legit": self.legit, "health": self.health,
                      "upload_attempts": self.upload_attempts,
                      "upload_max_sent": self.upload_max_sent, "slow_opened": self.slow_opened,
                      "slow_reopened": self.slow_reopened, "slow_open_peak": self.slow_open_peak,
                      "flood": self.flood, "rss_peak_kb": self.rss_peak_kb}))

    def run(self):
        parts = ["uploads", "slow", "legit", "watch"] + ["flood"] * self.a.flood_threads
        q = multiprocessing.Queue()
        procs = [multiprocessing.Process(target=self.run_part, args=(part, q)) for part in parts]
        for pr in procs:
            pr.start()
        got = [q.get(timeout=self.a.seconds + 60) for _ in procs]
        for pr in procs:
            pr.join(10)
        for part, r in got:
            self.legit += r["legit"]
            self.health += r["health"]
            self.upload_attempts += r["upload_attempts"]
            self.upload_max_sent = max(self.upload_max_sent, r["upload_max_sent"])
            self.slow_opened += r["slow_opened"]
            self.slow_reopened += r["slow_reopened"]
            self.slow_open_peak = max(self.slow_open_peak, r["slow_open_peak"])
            for k, v in r["flood"].items():
                self.flood[k] = self.flood.get(k, 0) + v
            self.rss_peak_kb = max(self.rss_peak_kb, r["rss_peak_kb"])
        lat = [ms for st, ms in self.legit if st == 202]
        codes = {}
        for st, _ in self.legit:
            codes[st] = codes.get(st, 0) + 1
        return {
            "seconds": self.a.seconds,
            "legit": {"requests": len(self.legit), "codes": codes,
                      "p50_ms": percentile(lat, 50), "p99_ms": percentile(lat, 99),
                      "max_ms": max(lat) if lat else None},
            "healthz": {"probes": len(self.health),
                        "unanswered": sum(1 for h in self.health if h is None),
                        "worst_ms": max((h for h in self.health if h is not None), default=None)},
            "rss_peak_mb": round(self.rss_peak_kb / 1024.0, 1) if self.a.pid else None,
            "uploads": {"attempts": self.upload_attempts, "max_bytes_sent": self.upload_max_sent},
            "slow": {"opened": self.slow_opened, "reopened": self.slow_reopened,
                     "open_peak": self.slow_open_peak},
            "flood": self.flood,
        }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True, help="the ingress's API port on 127.0.0.1")
    ap.add_argument("--key", required=True, help="a partner's API key (payments:write)")
    ap.add_argument("--pid", type=int, default=0, help="the ingress's pid (peak memory)")
    ap.add_argument("--seconds", type=float, default=20, help="duration, at most 120")
    ap.add_argument("--rate", type=float, default=40, help="legitimate payments per second")
    ap.add_argument("--uploads", type=int, default=10)
    ap.add_argument("--slow", type=int, default=2000)
    ap.add_argument("--flood-threads", type=int, default=1, help="processes of the flood")
    ap.add_argument("--flood-rate", type=float, default=1000,
                    help="made-up keys per second, in all")
    a = ap.parse_args()
    a.seconds = min(a.seconds, 120)
    a.slow = min(a.slow, 4000)
    a.uploads = min(a.uploads, 20)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, a.slow + 512) if hard != resource.RLIM_INFINITY else a.slow + 512
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    print(json.dumps(Attack(a).run()))


if __name__ == "__main__":
    main()
