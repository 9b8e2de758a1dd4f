"""540 (review): kasir-dlq exited 0 when its standard output could not be written (a full
disk, /dev/full): a script reading `list --output json > file` took an empty or cut list
for the whole one. The answer is the product: a write failure is exit 1 with a message."""
import subprocess

from conftest import bin_path
from runtime_util import Run, produce
from tools_util import dead_letter, dlq


def test_unwritable_output_is_a_failure():
    run = Run("t540", partitions=1)
    produce([dead_letter(run, i) for i in range(20)])
    assert len(dlq("list", "--dlq", run.dlq).stdout.splitlines()) == 21
    for args in (["list", "--output", "json"], ["show"], ["stats"],
                 ["replay", "--dry-run"], ["audit"]):
        if args[0] != "audit":
            args = args + ["--dlq", run.dlq]
        with open("/dev/full", "w") as full:
            p = subprocess.run([bin_path("dlq"), *args], stdout=full, stderr=subprocess.PIPE,
                               text=True, timeout=120)
        assert p.returncode == 1 and "could not write the output" in p.stderr, \
            (args, p.returncode, p.stderr)
