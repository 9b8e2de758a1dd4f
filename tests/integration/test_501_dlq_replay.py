"""501: kasir-dlq over 10,000 dead letters of mixed error classes: stats count them right; a
dry run changes nothing (Kafka and PostgreSQL); a replay killed with kill -9 half way and
rerun delivers every selected message exactly once to its origin (the rerun finds and
records the killed replay's copies that Kafka had and its marks lacked: test 543), the demo
worker (message-id dedup on) applies each once; replaying the same selection again sends
nothing, and forcing it with --again applies nothing."""
import subprocess
import time

from conftest import bin_path, psql_one
from runtime_util import Run, check_balances, produce, wait_until
from tools_util import dead_letter, dlq, dlq_json, topic_records

N = 10000


def processed_to_end(run):
    """the demo's stored positions cover every message now in its input topic"""
    total = len(topic_records(run.topic))
    pos = psql_one("SELECT coalesce(sum(next_offset), 0) FROM kasir_offsets "
                   "WHERE group_id = '%s' AND topic = '%s' AND next_offset >= 0"
                   % (run.group, run.topic))
    return int(pos) >= total


def test_dlq_replay_kill9_exactly_once(daemons):
    run = Run("t501", partitions=3)
    produce([dead_letter(run, i) for i in range(N)])

    # stats: counts by class, origin and status
    st = dlq_json("stats", "--dlq", run.dlq)
    assert len(st) == 1
    st = st[0]
    assert st["total"] == N
    assert st["by_class"] == {c: N // 4 for c in ("poison", "invalid", "failed", "exhausted")}
    assert st["by_origin"] == {run.topic: N}
    assert st["by_status"] == {"open": N}
    assert st["by_dlq"] == {run.dlq: N}

    # a dry run prints what would go where, and changes nothing
    lines = dlq_json("replay", "--dlq", run.dlq, "--error", "failed", "--limit", "100",
                     "--dry-run")
    assert len(lines) == 101 and lines[-1]["dry_run"] is True and lines[-1]["selected"] == 100
    assert all(l["target"] == run.topic and l["class"] == "failed" for l in lines[:100])
    assert topic_records(run.topic) == []
    assert len(topic_records(run.dlq)) == N
    assert psql_one("SELECT count(*) FROM kasir_dlq_replayed_messages WHERE topic = '%s'" % run.dlq) == "0"
    assert psql_one("SELECT count(*) FROM kasir_dlq_resolved WHERE topic = '%s'" % run.dlq) == "0"
    assert psql_one("SELECT count(*) FROM kasir_dlq_audit WHERE filters->'dlq' ? '%s'"
                    % run.dlq) == "0"

    # replay failed + exhausted (5,000), killed half way, then rerun
    sel = N // 2
    p = subprocess.Popen([bin_path("dlq"), "replay", "--dlq", run.dlq, "--error",
                          "failed,exhausted", "--rate", "1500", "--batch", "200", "--by",
                          "t501-operator"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    recorded = lambda: int(psql_one("SELECT count(*) FROM kasir_dlq_replayed_messages WHERE topic = '%s'"
                                    % run.dlq))
    wait_until(lambda: recorded() >= 1000, timeout=30, step=0.05, what="half the replay")
    p.kill()
    p.wait()
    first = recorded()
    assert 1000 <= first < sel, first
    r = dlq_json("replay", "--dlq", run.dlq, "--error", "failed,exhausted", "--by",
                 "t501-operator")[-1]
    assert r["failed"] == 0
    killed_done = int(psql_one("SELECT done FROM kasir_dlq_audit WHERE status = 'interrupted' "
                               "AND filters->'dlq' ? '%s'" % run.dlq))
    assert first <= killed_done < sel and killed_done + r["replayed"] == sel, (first, killed_done, r)
    assert int(psql_one("SELECT count(DISTINCT (partition, off)) FROM kasir_dlq_replayed_messages "
                        "WHERE topic = '%s'" % run.dlq)) == sel

    # every selected message reached the origin exactly once
    copies = topic_records(run.topic)
    want = {"%s-m%d" % (run.name, i) for i in range(N) if i % 4 in (2, 3)}
    ids = [c["headers"]["kasir.message_id"] for c in copies]
    print("killed after %d recorded, %d copies found by the rerun" % (first, killed_done))
    assert set(ids) == want and len(ids) == len(want), (len(ids), len(want))
    for c in copies[:50]:
        h = c["headers"]
        assert h["kasir.replay.id"].startswith("rpl_") and h["kasir.replay.by"] == "t501-operator"
        assert int(h["kasir.replay.at"]) > 1700000000000
        assert h["traceparent"] and h["kasir.producer"] == "test"
        assert not [k for k in h if k.startswith(("kasir.error.", "kasir.origin.", "kasir.retry."))
                    or k == "kasir.attempt"]

    # the demo worker, with message-id dedup, applies each once
    d = daemons("demo", env=run.env(KASIR_DEMO_DEDUP="true"))
    run.wait_applied(sel, timeout=90)
    wait_until(lambda: processed_to_end(run), timeout=60, what="demo read to the end")
    assert run.applied() == sel
    assert run.seen() == (sel, sel)  # demo_seen counts every processing
    check_balances(run)

    # the same selection again: nothing is open, nothing sent
    r = dlq_json("replay", "--dlq", run.dlq, "--error", "failed,exhausted")[-1]
    assert (r["selected"], r["replayed"]) == (0, 0)
    assert len(topic_records(run.topic)) == len(copies)

    # forced with --again: every copy sent once more, and the worker applies nothing
    r = dlq_json("replay", "--dlq", run.dlq, "--error", "failed,exhausted", "--again")[-1]
    assert (r["selected"], r["replayed"], r["failed"]) == (sel, sel, 0)
    wait_until(lambda: processed_to_end(run), timeout=60, what="demo read the second replay")
    assert run.applied() == sel
    assert run.seen() == (sel, sel)
    check_balances(run)

    # status and audit
    st = dlq_json("stats", "--dlq", run.dlq)[0]
    assert st["by_status"] == {"open": N - sel, "replayed": sel}
    audit = [a for a in dlq_json("audit", "--limit", "200") if a["filters"].get("dlq") == [run.dlq]]
    assert len(audit) == 4, audit
    killed, rerun, empty, again = sorted(audit, key=lambda a: a["started_at"])
    assert killed["status"] == "interrupted" and killed["done"] == killed_done  # finished by the rerun
    assert rerun["status"] == "done" and rerun["done"] == sel - killed_done
    assert (empty["selected"], empty["done"]) == (0, 0)
    assert again["filters"]["again"] is True and again["done"] == sel
    for a in audit:
        assert a["actor"] in ("t501-operator",) or "@" in a["actor"]
        assert a["filters"]["error"] == ["failed", "exhausted"]
    assert d.term() == 0
