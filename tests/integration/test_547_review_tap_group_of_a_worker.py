"""547 (review): `kasir-tap --group G` joined whatever group G names. An analyst naming a
worker's group (kasir-ledger's, say, with --follow) joined it: the rebalance took
partitions from the running workers, which stalled on them for as long as the tap ran, and
the tap committed offsets in the worker's name. A tap joins a group only if every member it
has is a kasir-tap (client.id kasir-tap); otherwise it refuses (exit 2) and names a member."""
import time

from runtime_util import Run, produce
from tools_util import tap


def test_tap_refuses_a_workers_group(daemons):
    run = Run("t547", partitions=3)
    produce([run.event(i) for i in range(30)])
    d = daemons("demo", env=run.env())
    run.wait_applied(30, timeout=60)
    deadline = time.time() + 60
    while True:  # the worker's group has its member once it joined
        p = tap("--group", run.group, run.topic, timeout=60)
        if p.returncode == 2 or time.time() > deadline:
            break
        time.sleep(1)
    assert p.returncode == 2 and "is not a kasir-tap" in p.stderr, (p.returncode, p.stderr)
    assert p.stdout == ""
    # the worker kept its partitions: what comes next is applied
    produce([run.event(i) for i in range(30, 40)])
    run.wait_applied(40, timeout=60)
    # a group of taps only is still a tap's to join
    g = run.name + "-taps"
    assert tap("--group", g, run.topic).returncode == 0
    assert d.term() == 0
