"""530 (review): an empty filter value selected every dead letter.

`--error ""`, `--topic ""` and `--dlq ""` (or a list of only commas) parsed to no filter
at all: `kasir-dlq replay --error "$CLASS"` with CLASS unset at 3 a.m. replayed every open
dead letter of every class of every DLQ topic, and `resolve --dlq D --error ""` resolved
all of D. An operator who names a filter means to narrow the selection. Expected: exit 2,
a message naming the option, nothing selected, nothing recorded."""
from runtime_util import Run, produce
from tools_util import dead_letter, dlq, dlq_json


def test_empty_filter_values_refused():
    run = Run("t530", partitions=1)
    produce([dead_letter(run, i) for i in range(8)])
    for cmd in (["replay"], ["replay", "--dry-run"], ["resolve"], ["list"], ["stats"]):
        for opt, val in (("--error", ""), ("--error", ","), ("--topic", ""),
                         ("--dlq", ""), ("--error", "failed,")):
            args = cmd + (["--dlq", run.dlq] if opt != "--dlq" else []) + [opt, val]
            p = dlq(*args, check=False)
            assert p.returncode == 2, (args, p.returncode, p.stdout, p.stderr)
            assert opt in p.stderr and "empty" in p.stderr, (args, p.stderr)
    st = {d["offset"]: d["status"] for d in dlq_json("list", "--dlq", run.dlq)}
    assert st == {i: "open" for i in range(8)}, st
