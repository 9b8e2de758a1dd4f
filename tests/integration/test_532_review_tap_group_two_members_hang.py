"""532 (review): two kasir-tap runs of one --group hung forever.

A run reads until every partition of its topics reached the end it planned at start, but
with a group it is given only the partitions the group assigns it. Two runs of the same
group at once (an hourly export whose previous run is still going: cron overlap) split the
partitions, each waited for the end of partitions it would never read, and neither ended;
every later run joined the group and hung too. Expected: each run reads the partitions the
group gives it and ends; between them every message is written, and the group's offsets
are committed, so a third run writes nothing."""
import json
import subprocess

from conftest import bin_path, unique
from runtime_util import Run, produce
from tools_util import tap


def test_two_members_of_one_group_both_end(tmp_path):
    run = Run("t532", partitions=4)
    produce([run.event(i, partition=i % 4) for i in range(4000)])
    g = unique("t532g")
    files = [tmp_path / ("out%d.jsonl" % k) for k in range(2)]
    ps = [subprocess.Popen([bin_path("tap"), "--group", g, "--output", str(f), run.topic],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for f in files]
    try:
        for p in ps:
            _, err = p.communicate(timeout=90)
            assert p.returncode == 0, (p.returncode, err.decode()[-500:])
    except subprocess.TimeoutExpired:
        raise AssertionError("a run of the group did not end")
    finally:
        for p in ps:
            if p.poll() is None:
                p.kill()
                p.wait()
    outs = [f.read_bytes() for f in files]
    seen = set()
    for out in outs:
        for l in out.decode().splitlines():
            d = json.loads(l)
            seen.add((d["partition"], d["offset"]))
    assert len(seen) == 4000, len(seen)
    p = tap("--group", g, run.topic)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "", len(p.stdout.splitlines())
