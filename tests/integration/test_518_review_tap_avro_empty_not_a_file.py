"""518 (review): kasir-tap --format avro writes a 0-byte file, exit 0, when nothing matches.

The container is opened only when the first written message fixes the schema
(consumers/tap/main.c schema_ok, and the end-of-run open at main.c:564 only with --schema).
A filter that matches nothing (or a quiet hour on a topic: `--from 1h`) leaves the --output
file empty: not an Avro object container file (no magic, no schema), and the run exits 0,
so a nightly export job hands its loader a file no Avro library opens. Expected: a valid
empty container (the schema of the messages read, or of the topic's catalogue entry), or a
clear message and a non-zero exit."""
import avro.datafile
import avro.io

from runtime_util import Run, produce
from tools_util import tap
import pytest

# An open finding of the hostile review of issue 15, not fixed yet: the test shows the
# wrong behaviour and is expected to fail until it is (then drop this mark).
pytestmark = pytest.mark.xfail(strict=False, reason="open finding: 518 (review): kasir-tap --format avro writes a 0-byte file, exit 0, when nothing matches.")


def test_tap_avro_no_match_is_still_a_container(tmp_path):
    run = Run("t518", partitions=1)
    produce([run.event(i) for i in range(3)])
    f = tmp_path / "out.avro"
    p = tap("--format", "avro", "--output", str(f), "--key", "no-such-key", run.topic)
    print(p.returncode, p.stderr)
    if p.returncode != 0:
        assert p.stderr.strip()
        return
    assert f.stat().st_size > 0, "exit 0 but the Avro output file is empty (0 bytes)"
    with open(f, "rb") as fh:
        assert list(avro.datafile.DataFileReader(fh, avro.io.DatumReader())) == []
