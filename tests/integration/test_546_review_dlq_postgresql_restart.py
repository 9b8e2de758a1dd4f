"""546 (review): PostgreSQL restarted in the middle of a replay. The replay cannot record its
marks and stops (exit 1, saying why); copies Kafka had confirmed but whose marks were lost
with the connection were sent a second time by the rerun (150 of 897 in one run). Now the
rerun finds them (the killed-replay path of test 543: the failed replay's record is still
'running' and its lock went with its connection): every message exactly once on the origin."""
import os
import subprocess
import time

from conftest import TOP, bin_path, psql_one
from runtime_util import Run, produce, wait_until
from tools_util import dead_letter, dlq, topic_records

N = 2000


def stack(cmd):
    subprocess.run(["bash", os.path.join(TOP, "deploy/local/stack.sh"), cmd], check=True,
                   capture_output=True, timeout=120)


def test_postgresql_restart_mid_replay():
    run = Run("t546", partitions=1)
    produce([dead_letter(run, i, cls="failed") for i in range(N)])
    p = subprocess.Popen([bin_path("dlq"), "replay", "--dlq", run.dlq, "--rate", "300"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: int(psql_one("SELECT count(*) FROM kasir_dlq_replayed_messages "
                                    "WHERE topic = '%s'" % run.dlq)) >= 300,
               timeout=60, step=0.1, what="the replay under way")
    stack("pg-stop")
    try:
        time.sleep(2)
    finally:
        stack("pg-start")
    out, err = p.communicate(timeout=120)
    assert p.returncode == 1 and "could not" in err, (p.returncode, err)
    wait_until(lambda: psql_one("SELECT 1") == "1", timeout=60, what="PostgreSQL back")
    r = dlq("replay", "--dlq", run.dlq)
    ids = [c["headers"]["kasir.message_id"] for c in topic_records(run.topic)]
    assert len(set(ids)) == N, len(set(ids))
    assert len(ids) == N, ("copies sent twice", len(ids) - N, r.stderr)
