"""502: kasir-dlq's filters, show, resolve, --to, --rate, Ctrl-C, and its refusals: --rate 500 holds
the rate within 10 % (measured on the copies' own produce timestamps); every filter
selects what it says; show decodes the payload and lists every header; resolve marks
without touching the topic; bad arguments exit 2 with a message, --help exits 0."""
import json
import os
import signal
import subprocess
import time

from conftest import bin_path, create_topics, psql_one, unique
from runtime_util import Run, produce, wait_until
from tools_util import dead_letter, dlq, dlq_json, topic_records


def test_dlq_rate_500():
    run = Run("t502r", partitions=1)
    produce([dead_letter(run, i, cls="failed") for i in range(1000)])
    r = dlq_json("replay", "--dlq", run.dlq, "--rate", "500", "--quiet")[-1]
    assert (r["selected"], r["replayed"]) == (1000, 1000)
    ts = sorted(c["timestamp"] for c in topic_records(run.topic))
    assert len(ts) == 1000
    rate = 999 / ((ts[-1] - ts[0]) / 1000.0)
    print("measured %.1f msg/s" % rate)
    assert 450 <= rate <= 550, rate


def test_dlq_filters_show_resolve():
    run = Run("t502f", partitions=3)
    t0 = int(time.time() * 1000)
    lines = [dead_letter(run, i) for i in range(40)]
    lines[7]["headers"]["x-tenant"] = "acme"
    lines[9]["headers"]["x-tenant"] = "acme"
    lines[9]["headers"]["kasir.origin.topic"] = run.name + ".other"
    produce(lines[:20])
    time.sleep(1.2)
    t_mid = int(time.time() * 1000)
    produce(lines[20:])

    def refs(*args):
        return sorted(l["offset"] for l in dlq_json("list", "--dlq", run.dlq, *args))

    assert refs() == list(range(40))
    assert refs("--error", "poison") == list(range(0, 40, 4))
    assert refs("--error", "poison,invalid") == sorted(list(range(0, 40, 4)) + list(range(1, 40, 4)))
    assert refs("--key", "%s-a5" % run.name) == [5]
    assert refs("--header", "x-tenant=acme") == [7, 9]
    assert refs("--header", "x-tenant=acme", "--header", "kasir.error.class=exhausted") == [7]
    assert refs("--topic", run.name + ".other") == [9]
    assert refs("--since", str(t_mid)) == list(range(20, 40))
    assert refs("--until", str(t_mid)) == list(range(20))
    assert refs("--since", str(t0 - 60000), "--until", str(t_mid)) == list(range(20))
    assert refs("--limit", "3") == [0, 1, 2]
    assert refs("%s:0:5" % run.dlq, "%s:0:33" % run.dlq) == [5, 33]

    # show: decoded payload, every header, origin, attempts; --raw adds the bytes
    s = dlq_json("show", "%s:0:7" % run.dlq, "--raw")
    assert len(s) == 1
    s = s[0]
    assert s["schema"] == "kasir.demo.DemoEvent"
    assert s["value"]["event_id"] == "%s-7" % run.name and s["value"]["amount_minor"] == 107
    assert s["headers"]["x-tenant"] == "acme" and s["headers"]["kasir.error.class"] == "exhausted"
    assert len(s["headers"]) == 17
    assert s["origin"] == {"topic": run.topic, "partition": 1, "offset": 7,
                           "timestamp": 1700000000000}
    assert s["error"]["class"] == "exhausted" and s["error"]["message"] == "test failure 7"
    assert s["attempts"] == 3 and s["message_id"] == "%s-m7" % run.name
    assert s["value_base64"]
    human = dlq("show", "%s:0:7" % run.dlq).stdout
    assert "test failure 7" in human and '"event_id": "%s-7"' % run.name in human

    # an undecodable dead letter is shown with its bytes, not hidden
    produce([{"topic": run.dlq, "key": "k", "raw_base64": "AAEC"}])
    s = dlq_json("show", "%s:0:40" % run.dlq)[0]
    assert s["value"] is None and "decode_error" in s and s["value_base64"] == "AAEC"

    # resolve marks (never deletes); resolved ones are not replayed
    before = len(topic_records(run.dlq))
    r = dlq_json("resolve", "--dlq", run.dlq, "--error", "invalid", "--note", "fixed by hand")[-1]
    assert r["resolved"] == 10
    assert len(topic_records(run.dlq)) == before
    assert refs("--status", "resolved") == list(range(1, 40, 4))
    assert refs("--status", "open") == sorted(set(range(41)) - set(range(1, 40, 4)))
    r = dlq_json("resolve", "--dlq", run.dlq, "--error", "invalid")[-1]
    assert r["resolved"] == 0  # already resolved
    a = [a for a in dlq_json("audit") if a["action"] == "resolve" and a["filters"].get("dlq") == [run.dlq]]
    assert [x["done"] for x in a] == [0, 10] and a[1]["note"] == "fixed by hand"

    # --to: another topic; resolved messages are left alone
    other = unique("t502to")
    create_topics(other + ":1")
    r = dlq_json("replay", "--dlq", run.dlq, "--to", other, "--error", "invalid,poison")[-1]
    assert (r["selected"], r["replayed"]) == (10, 10)
    got = sorted(int(c["value"]["seq"]) for c in topic_records(other))
    assert got == list(range(0, 40, 4))
    assert psql_one("SELECT count(*) FROM kasir_dlq_replayed_messages WHERE topic = '%s' AND target = '%s'"
                    % (run.dlq, other)) == "10"

    # a target topic that does not exist: reported, left open, exit 1
    p = dlq("replay", "%s:0:2" % run.dlq, "--to", unique("t502missing"), check=False)
    assert p.returncode == 1 and "does not exist" in p.stderr
    assert refs("--status", "open", "--error", "failed") == list(range(2, 40, 4))


def test_dlq_bad_arguments():
    for args, msg in [
        (["frobnicate"], "unknown command"),
        (["list", "--error", "weird"], "--error weird"),
        (["list", "--since", "yesterday"], "bad time"),
        (["list", "--limit", "-3"], "--limit"),
        (["replay", "--rate", "0"], "--rate"),
        (["replay", "--rate", "fast"], "--rate"),
        (["list", "--to", "x"], "does not apply to list"),
        (["list", "--header", "novalue"], "name=value"),
        (["list", "not-a-ref"], "bad message ref"),
        (["resolve"], "needs refs, a filter or --all"),
        (["parked", "retry"], "needs refs, a filter or --all"),
        (["list", "--output", "xml"], "table or json"),
        (["list", "--since", "2026-01-02", "--until", "2026-01-01"], "later than"),
        (["list", "--dlq"], "needs a value"),
        ([], "usage"),
    ]:
        p = dlq(*args, check=False)
        assert p.returncode == 2, (args, p.returncode, p.stderr)
        assert msg in p.stderr, (args, p.stderr)
    p = dlq("list", "--dlq", unique("t502nosuch") + ".dlq", check=False)
    assert p.returncode == 2 and "does not exist" in p.stderr
    # the daemons' settings: a rejected kafka.* property or a bad value is exit 2 as well
    p = dlq("list", check=False, env=dict(os.environ, KASIR_KAFKA_SECURITY_PROTOCOL="bogus"))
    assert p.returncode == 2 and "security.protocol" in p.stderr
    p = dlq("stats", check=False, env=dict(os.environ, KASIR_DLQ_BATCH="many"))
    assert p.returncode == 2 and "dlq.batch" in p.stderr
    for cmd in (["list"], ["show"], ["stats"], ["replay"], ["resolve"], ["audit"], ["parked"],
                ["parked", "retry"], []):
        p = dlq(*cmd, "--help")
        assert p.stdout.startswith("usage: kasir-dlq"), cmd
    assert "--rate" in dlq("replay", "--help").stdout
    assert "--rate" not in dlq("list", "--help").stdout


def test_dlq_replay_sigint_loses_nothing():
    """Ctrl-C: the copies in flight get their reports and are recorded before the exit (3),
    so the rerun sends exactly the rest: no copy twice, none missing. While it runs, a second
    replay of the same DLQ is refused."""
    run = Run("t502i", partitions=3)
    produce([dead_letter(run, i, cls="failed") for i in range(2000)])
    # 500/s: 4 s for the lot, so the second replay below starts while the first still runs
    # on a loaded machine (at 1000/s it had sometimes finished)
    p = subprocess.Popen([bin_path("dlq"), "replay", "--dlq", run.dlq, "--rate", "500",
                          "--output", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    wait_until(lambda: int(psql_one("SELECT count(*) FROM kasir_dlq_replayed_messages "
                                    "WHERE topic = '%s'" % run.dlq)) >= 300,
               timeout=30, step=0.05, what="a third of the replay")
    # meanwhile a second replay of the same DLQ is refused (both would send the open ones)
    q = dlq("replay", "--dlq", run.dlq, check=False)
    assert q.returncode == 1 and "another replay is reading %s" % run.dlq in q.stderr
    assert dlq_json("replay", "--dlq", run.dlq, "--dry-run")[-1]["dry_run"] is True
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 3, (p.returncode, err)
    first = json.loads(out.splitlines()[-1])
    assert first["failed"] == 0 and 300 <= first["replayed"] < 2000
    assert len(topic_records(run.topic)) == first["replayed"]
    a = [x for x in dlq_json("audit") if x["filters"].get("dlq") == [run.dlq]]
    assert a[0]["status"] == "interrupted" and a[0]["done"] == first["replayed"]
    r = dlq_json("replay", "--dlq", run.dlq)[-1]
    assert r["replayed"] == 2000 - first["replayed"]
    ids = [c["headers"]["kasir.message_id"] for c in topic_records(run.topic)]
    assert len(ids) == 2000 and len(set(ids)) == 2000
