"""544 (review): PostgreSQL hanging (the server stopped with SIGSTOP, as a frozen VM or a
network that drops packets looks) in the middle of a replay: the replay waited in libpq
without a word, and Ctrl-C did nothing (libpq's wait ignores signals) until the server
answered again. Now it says on stderr that PostgreSQL has not answered, a second Ctrl-C
stops it at once (exit 3), and the rerun, once PostgreSQL is back, sends the rest: every
message exactly once on the origin topic, nothing lost."""
import os
import signal
import subprocess
import time

from conftest import TOP
from runtime_util import Run
from tools_util import dlq, replay_under_way, topic_records

N = 2000


def pg_pids():
    with open(os.path.join(TOP, "var", "pg", "data", "postmaster.pid")) as f:
        pm = int(f.readline())
    kids = subprocess.run(["pgrep", "-P", str(pm)], capture_output=True, text=True).stdout.split()
    return [pm] + [int(k) for k in kids]


def signal_all(pids, sig):
    """sig to each of pids; one that has ended since pg_pids (an autovacuum worker, a
    backend) is skipped: raising there left the server stopped for every later test"""
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def test_replay_while_postgresql_hangs():
    run = Run("t544", partitions=1)
    p = replay_under_way(run, N, 200, 100)
    pids = pg_pids()
    # the replay says so after 15 s of waiting; on a loaded machine it may reach its wait
    # later than the SIGSTOP: read its stderr until it has (at most 60 s), then Ctrl-C twice
    said = b""
    try:
        signal_all(pids, signal.SIGSTOP)
        fd = p.stderr.fileno()
        os.set_blocking(fd, False)
        deadline = time.time() + 60
        while b"PostgreSQL has not answered" not in said and time.time() < deadline:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                chunk = None
            if chunk:
                said += chunk
            else:
                time.sleep(0.2)
        p.send_signal(signal.SIGINT)
        time.sleep(1)
        p.send_signal(signal.SIGINT)
        try:
            out, err = p.communicate(timeout=10)
            stopped = True
        except subprocess.TimeoutExpired:
            stopped = False
    finally:
        signal_all(pids, signal.SIGCONT)
    if not stopped:
        p.kill()
        out, err = p.communicate()
    assert stopped, "the replay ignored two Ctrl-C while PostgreSQL hung"
    assert p.returncode == 3, (p.returncode, err)
    err = said.decode(errors="replace") + err
    assert "PostgreSQL has not answered" in err, err

    # PostgreSQL is back: the dead replay's backend lets go of its locks, the rerun carries on
    deadline = time.time() + 60
    while True:
        r = dlq("replay", "--dlq", run.dlq, "--quiet", check=False)
        if r.returncode == 0 or time.time() > deadline:
            break
        assert "another replay is reading" in r.stderr, r.stderr
        time.sleep(1)
    assert r.returncode == 0, r.stderr
    ids = [c["headers"]["kasir.message_id"] for c in topic_records(run.topic)]
    assert len(ids) == N and len(set(ids)) == N, (len(ids), len(set(ids)))
