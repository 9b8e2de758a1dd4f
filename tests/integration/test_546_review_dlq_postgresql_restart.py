"""546 (review): PostgreSQL restarted in the middle of a replay. The replay cannot record its
marks and stops (exit 1, saying why); copies Kafka had confirmed but whose marks were lost
with the connection were sent a second time by the rerun (150 of 897 in one run). Now the
rerun finds them (the killed-replay path of test 543: the failed replay's record is still
'running' and its lock went with its connection): every message exactly once on the origin."""
import os
import subprocess
import time

from conftest import TOP, psql_one
from runtime_util import Run, wait_until
from tools_util import dlq, replay_under_way, topic_records

N = 2000


def stack(cmd):
    subprocess.run(["bash", os.path.join(TOP, "deploy/local/stack.sh"), cmd], check=True,
                   capture_output=True, timeout=120)


def test_postgresql_restart_mid_replay():
    run = Run("t546", partitions=1)
    p = replay_under_way(run, N, 300, 300)
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
