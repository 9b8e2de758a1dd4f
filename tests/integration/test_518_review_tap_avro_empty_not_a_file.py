"""518 (review): kasir-tap --format avro writes a 0-byte file, exit 0, when nothing matches.

The container is opened only when the first written message fixes the schema
(consumers/tap/main.c schema_ok, and the end-of-run open at main.c:564 only with --schema).
A filter that matches nothing (or a quiet hour on a topic: `--from 1h`) leaves the --output
file empty: not an Avro object container file (no magic, no schema), and the run exits 0,
so a nightly export job hands its loader a file no Avro library opens. Expected: a valid
empty container (the schema of the messages read, or of the topic's catalogue entry), or a
clear message and a non-zero exit.

The contract: with no message written the file is still a valid container (header, the
schema of --schema or of the first message read, no block), and a CSV still has its header
line; with no message read at all and no --schema there is no schema to write: exit 1, a
message naming --schema, and no file left behind."""
import json
import time

import avro.datafile
import avro.io

from runtime_util import Run, produce
from tools_util import tap


def test_tap_avro_no_match_is_still_a_container(tmp_path):
    run = Run("t518", partitions=1)
    produce([run.event(i) for i in range(3)])
    f = tmp_path / "out.avro"
    p = tap("--format", "avro", "--output", str(f), "--key", "no-such-key", run.topic)
    print(p.returncode, p.stderr)
    assert p.returncode == 0, p.stderr
    assert f.stat().st_size > 0, "exit 0 but the Avro output file is empty (0 bytes)"
    with open(f, "rb") as fh:
        r = avro.datafile.DataFileReader(fh, avro.io.DatumReader())
        assert json.loads(r.meta["avro.schema"])["name"] == "DemoEvent", r.meta
        assert list(r) == []
    # CSV: the header line all the same
    c = tmp_path / "out.csv"
    p = tap("--format", "csv", "--output", str(c), "--field", "seq=99", run.topic)
    assert p.returncode == 0, p.stderr
    assert c.read_bytes().startswith(b"message_id,occurred_at,event_id,"), c.read_bytes()


def test_tap_avro_empty_topic(tmp_path):
    run = Run("t518e", partitions=1)  # nothing in it
    for _ in range(50):  # a new topic answers offset requests once its leader is elected
        if tap(run.topic).returncode == 0:
            break
        time.sleep(0.2)
    f = tmp_path / "none.avro"
    p = tap("--format", "avro", "--output", str(f), run.topic)
    assert p.returncode == 1 and "--schema" in p.stderr, (p.returncode, p.stderr)
    assert not f.exists()
    p = tap("--format", "avro", "--output", str(f), "--schema", "kasir.demo.DemoEvent", run.topic)
    assert p.returncode == 0, p.stderr
    with open(f, "rb") as fh:
        assert list(avro.datafile.DataFileReader(fh, avro.io.DatumReader())) == []
