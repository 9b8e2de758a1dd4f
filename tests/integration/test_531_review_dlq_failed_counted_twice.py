"""531 (review): a copy that Kafka refused was counted as failed twice.

A delivery report with an error added one to the replay's failures, and the summary and
the audit then added "sent minus confirmed" on top, which counts the same copy again. A
broker that went away for the length of message.timeout.ms (stack.sh kafka-stop) made a
replay of 1500 report "818 replayed, 1364 failed", an audit record that says more messages
failed than were left open. The audit is the evidence of what a replay did. Here the
origin topic takes no message over 100 bytes, so each copy is refused at once.
Expected: failed == selected - replayed, in the JSON summary, the text summary and the
audit record, and every refused message still open."""
import os
import subprocess

from conftest import BROKERS, TOP
from runtime_util import Run, produce
from tools_util import dead_letter, dlq, dlq_json


def topic_config(topic, setting):
    libs = os.path.join(TOP, "var", "cache", "kafka-libs", "*")
    subprocess.run(["java", "-Xmx256m", "-cp", libs, "kafka.admin.ConfigCommand",
                    "--bootstrap-server", BROKERS, "--alter", "--entity-type", "topics",
                    "--entity-name", topic, "--add-config", setting],
                   check=True, capture_output=True, timeout=120)


def test_refused_copies_counted_once():
    run = Run("t531", partitions=1)
    produce([dead_letter(run, i, cls="failed") for i in range(10)])
    topic_config(run.topic, "max.message.bytes=100")
    out = dlq_json("replay", "--dlq", run.dlq, "--quiet", "--limit", "6", check=False)[-1]
    assert out["selected"] == 6 and out["replayed"] == 0, out
    assert out["failed"] == 6, out
    aud = dlq_json("audit", "--id", out["replay_id"])[0]
    assert (aud["status"], aud["selected"], aud["done"], aud["failed"]) == \
        ("failed", 6, 0, 6), aud
    p = dlq("replay", "--dlq", run.dlq, "--quiet", check=False)
    assert p.returncode == 1 and "10 selected, 0 replayed and recorded, 10 failed" in p.stdout, \
        p.stdout
    st = dlq_json("stats", "--dlq", run.dlq)[-1]["by_status"]
    assert st == {"open": 10}, st
