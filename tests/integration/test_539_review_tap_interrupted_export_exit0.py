"""539 (review): an export stopped before the end exited 0, as if complete.

Without --follow kasir-tap reads each partition to the end it had at start. SIGTERM or
SIGINT (a job runner's deadline, systemd stopping it, an operator) ended the loop, and the
run then flushed what it had and exited 0, "done": a script that runs
`kasir-tap ... --output ledger.csv && upload ledger.csv` ships a truncated ledger export.
(With --follow, a signal is how a run ends: 0 there is right.) Expected: an interrupted run
that had not reached the end says so on stderr and exits 3 (not everything was written);
the file it wrote is still well formed."""
import os
import signal
import subprocess
import time

from conftest import BROKERS, bin_path, kcat_messages
from runtime_util import Run, produce


def test_interrupted_export_is_not_done(tmp_path):
    run = Run("t539", partitions=1)
    produce([run.event(0)])
    _, v = kcat_messages(run.topic)[0]
    # 12,000 copies, one per batch, read with small fetches: a scan of some seconds
    sep = b"\x1d\x1e\x1f"
    p = subprocess.run(["kcat", "-b", BROKERS, "-P", "-t", run.topic, "-p", "0", "-D", sep.decode(),
                        "-X", "linger.ms=0", "-X", "batch.num.messages=1"],
                       input=b"".join(v + sep for _ in range(12000)), capture_output=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    env = dict(os.environ, KASIR_KAFKA_FETCH_MAX_BYTES="1000", KASIR_KAFKA_MESSAGE_MAX_BYTES="1000",
               KASIR_KAFKA_MAX_PARTITION_FETCH_BYTES="1")
    out = tmp_path / "out.csv"
    t = subprocess.Popen([bin_path("tap"), "--format", "csv", "--output", str(out), run.topic],
                         env=env, stderr=subprocess.PIPE)
    time.sleep(1.5)
    t.send_signal(signal.SIGTERM)
    err = t.communicate(timeout=60)[1].decode()
    rows = out.read_bytes().split(b"\r\n")
    assert len(rows) - 2 < 12001, "the run ended before the signal: nothing to check"
    assert t.returncode == 3, (t.returncode, err)
    assert "interrupted" in err, err
    assert rows[-1] == b"" and all(r.count(b",") >= 5 for r in rows[:-1])  # whole rows
