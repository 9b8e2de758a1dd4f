"""545 (review): a time before 1970 parsed to negative milliseconds, and -1 is how the tools
say "no filter": `resolve --error failed --until 1969-12-31T23:59:59Z` (a typo for 2026)
resolved every failed dead letter instead of none, and kasir-tap `--from
1969-12-31T23:59:59.999Z` asked librdkafka for offset -1, "latest", and started at the
end; so did a duration reaching back before 1970 ("30000d"). No Kafka record has such a timestamp: both tools refuse it (exit 2), as they refuse
a fraction without digits ("22:00:00.Z")."""
from runtime_util import Run, produce
from tools_util import dead_letter, dlq, dlq_json, tap


def test_dates_before_1970_are_refused():
    run = Run("t545", partitions=1)
    produce([dead_letter(run, i, cls="failed") for i in range(4)])
    for when in ("1969-12-31T23:59:59Z", "1950-01-01", "1970-01-01T07:00:00+07:01",
                 "2026-12-01T22:00:00.Z", "30000d"):
        for cmd in (["resolve", "--dlq", run.dlq, "--error", "failed", "--until", when],
                    ["replay", "--dlq", run.dlq, "--error", "failed", "--until", when],
                    ["list", "--dlq", run.dlq, "--since", when]):
            p = dlq(*cmd, check=False)
            assert p.returncode == 2 and "bad time" in p.stderr, (cmd, p.returncode, p.stderr)
        p = tap("--from", when, run.dlq)
        assert p.returncode == 2 and "--from" in p.stderr, (when, p.returncode, p.stderr)
    assert [l["status"] for l in dlq_json("list", "--dlq", run.dlq)] == ["open"] * 4
    # the epoch itself is a time, and selects everything written since
    assert len(dlq_json("list", "--dlq", run.dlq, "--since", "1970-01-01")) == 4
