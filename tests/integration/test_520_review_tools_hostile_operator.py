"""520 (review of the 513-519 fixes, as a hostile operator would use the tools).

- `replay --again` sent a dead letter that had been replayed and then resolved: the state
  filter let it through as "replayed", and the README says resolved messages are never
  replayed. (A hand-handled payment, replayed once, resolved, then caught by a later
  `--again` replay of the same selection.)
- A replay stopped with Ctrl-Z (or stuck on a full producer queue) while it holds the
  resolve lock must not hang every `resolve`: resolve waits at most 10 s, then fails with
  a message that says why, and marks nothing.
- `--note` / `--by` that are not UTF-8 are refused at once (exit 2, naming the option), not
  half way through, by PostgreSQL.
- kasir-tap --format avro with no schema to write removes the file it would have left
  empty, but only a regular file: `--output` may name a pipe or /dev/null."""
import json
import os
import subprocess
import threading
import time

from conftest import PG_DSN, bin_path
from runtime_util import Run, produce
from tools_util import dead_letter, dlq, dlq_json, tap, topic_records


def test_again_never_sends_a_resolved_message():
    run = Run("t520a", partitions=1)
    produce([dead_letter(run, i, cls="failed") for i in range(3)])
    dlq("replay", "--dlq", run.dlq, "--quiet")
    assert len(topic_records(run.topic)) == 3
    dlq("resolve", "%s:0:1" % run.dlq, "--note", "refunded by hand")
    out = dlq_json("replay", "--dlq", run.dlq, "--again", "--quiet")
    assert out[-1]["selected"] == 2 and out[-1]["replayed"] == 2, out
    ids = sorted(c["headers"]["kasir.message_id"] for c in topic_records(run.topic))
    assert ids == sorted(["%s-m0" % run.name, "%s-m1" % run.name, "%s-m2" % run.name,
                          "%s-m0" % run.name, "%s-m2" % run.name]), ids


def test_resolve_does_not_hang_behind_a_stopped_replay():
    run = Run("t520b", partitions=1)
    produce([dead_letter(run, i) for i in range(2)])
    # a session holding the lock shared, as a replay stopped inside a chunk does
    holder = subprocess.Popen(["psql", PG_DSN, "-qtAX"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        holder.stdin.write("SELECT pg_advisory_lock_shared(hashtext('kasir-dlq resolve gate'));\n"
                           "\\echo held\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() in ("", "held")
        t0 = time.monotonic()
        r = dlq("resolve", "%s:0:0" % run.dlq, check=False, timeout=60)
        took = time.monotonic() - t0
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    print(r.returncode, r.stderr, took)
    assert r.returncode == 1 and "resolve lock" in r.stderr, (r.returncode, r.stderr)
    assert took < 30, took
    st = {d["offset"]: d["status"] for d in dlq_json("list", "--dlq", run.dlq)}
    assert st == {0: "open", 1: "open"}, st
    # once the lock is free, the same resolve goes through
    dlq("resolve", "%s:0:0" % run.dlq)


def test_non_utf8_note_and_by_refused():
    run = Run("t520c", partitions=1)
    produce([dead_letter(run, 0)])
    for opt in (b"--note", b"--by"):
        p = subprocess.run([os.fsencode(bin_path("dlq")), b"resolve", b"--dlq", run.dlq.encode(),
                            b"--all", opt, b"caf\xe9"], capture_output=True, timeout=60)
        assert p.returncode == 2 and opt in p.stderr, (opt, p.returncode, p.stderr)
    assert dlq_json("list", "--dlq", run.dlq)[0]["status"] == "open"


def test_tap_avro_leaves_a_pipe_alone(tmp_path):
    run = Run("t520d", partitions=1)  # empty: no schema to write
    for _ in range(50):  # a new topic answers offset requests once its leader is elected
        if tap(run.topic).returncode == 0:
            break
        time.sleep(0.2)
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    reader.start()
    p = tap("--format", "avro", "--output", str(fifo), run.topic)
    reader.join(timeout=30)
    assert p.returncode == 1 and "--schema" in p.stderr, (p.returncode, p.stderr)
    assert fifo.exists() and got == [b""]


def test_garbage_dead_letters_replay_without_an_empty_id():
    """A dead letter with no headers at all (hand-made, or from another tool) has no message
    id and no origin position: its copy must not carry an empty kasir.message_id (two such
    copies would share the id ""); without the header the worker takes the payload's id, as
    it did for the original, or one from the copy's position."""
    run = Run("t520e", partitions=1)
    ev = run.event(7)
    ev["topic"] = run.dlq
    produce([ev, {"topic": run.dlq, "key": "g", "raw_base64": "/wBnYXJiYWdl"}])
    assert [l["status"] for l in dlq_json("list", "--dlq", run.dlq)] == ["open", "open"]
    dlq("replay", "--dlq", run.dlq, "--quiet")
    copies = topic_records(run.topic)
    assert len(copies) == 2
    for c in copies:
        assert "kasir.message_id" not in c["headers"], c["headers"]
        assert c["headers"]["kasir.replay.id"].startswith("rpl_")
    assert copies[0]["value"]["message_id"] == "%s-m7" % run.name
