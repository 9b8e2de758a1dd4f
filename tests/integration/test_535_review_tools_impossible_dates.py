"""535 (review): impossible dates were taken as other days.

ks_scan_parse_time checked a day against 31 whatever the month, and an offset's hours and
minutes not at all: `--since 2026-11-31` (November has 30 days) silently meant December 1,
`--until 2026-02-29` (2026 is no leap year) March 1, and `+24:00` shifted by a day. An
operator who mistypes a date at 3 a.m. then replays or resolves a selection a day off,
with no word. Expected: exit 2 with a message naming the option, as for any other bad
time; real dates (a leap day of a leap year, the 31st of a 31-day month) still work."""
from runtime_util import Run, produce
from tools_util import dead_letter, dlq, tap


def test_impossible_dates_refused():
    run = Run("t535", partitions=1)
    produce([dead_letter(run, 0)])
    for bad in ("2026-11-31", "2026-02-29", "2026-04-31T10:00:00Z", "2026-12-01T10:00:00+24:00",
                "2026-12-01T10:00:00+05:60", "2026-00-10", "2026-12-00"):
        for opt in ("--since", "--until"):
            p = dlq("list", "--dlq", run.dlq, opt, bad, check=False)
            assert p.returncode == 2 and opt in p.stderr, (opt, bad, p.returncode, p.stderr)
        p = tap("--from", bad, run.dlq)
        assert p.returncode == 2 and "--from" in p.stderr, (bad, p.returncode, p.stderr)
    for good in ("2028-02-29", "2026-12-31", "2026-01-31T23:59:59.999+14:00",
                 "2026-12-01T10:00:00-12:00"):
        dlq("list", "--dlq", run.dlq, "--since", good)
        p = tap("--from", good, run.dlq)
        assert p.returncode == 0, (good, p.stderr)
