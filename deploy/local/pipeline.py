#!/usr/bin/python3
"""What the local pipeline is doing, read from Kafka (kcat) and PostgreSQL (psql): consumer
lag of the workers' groups, unsent outbox rows, dead letters, payments by status, ledger
totals. Python standard library only; used by deploy/local/services.sh, demo.sh,
demo_load.py, the end-to-end test (tests/integration/pipeline_util.py) and the e2e bench.

    pipeline.py join-at-end GROUP TOPIC...   moves a stopped group's positions to the end
    pipeline.py lag GROUP...                 lag per group (positions in kasir_offsets)
    pipeline.py quiet [--timeout S] GROUP... waits until every group's lag is 0 and its
                                             outbox is empty; exit 1 on timeout

Settings: KASIR_KAFKA_BROKERS and KASIR_PG_DSN from the environment (var/stack.env's)."""
import json
import os
import subprocess
import sys
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BROKERS = os.environ.get("KASIR_KAFKA_BROKERS", "")
PG_DSN = os.environ.get("KASIR_PG_DSN", "")

# the pipeline's workers, their consumer groups (services.sh: kasir-<name><suffix>)
WORKERS = ("risk", "executor", "ledger", "webhooks")


def groups(suffix="", workers=WORKERS):
    return ["kasir-%s%s" % (w, suffix) for w in workers]


def psql(sql, dsn=None, timeout=60):
    """Rows of sql as lists of strings (psql -tA, unit separator between columns)."""
    p = subprocess.run(["psql", dsn or PG_DSN, "-v", "ON_ERROR_STOP=1", "-qtAX", "-F", "\x1f",
                        "-f", "-"], input=sql, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError("psql failed: %s\n%s" % (sql[:300], p.stderr.strip()))
    return [line.split("\x1f") for line in p.stdout.splitlines() if line != ""]


def sql_list(values):
    return "ARRAY[%s]::text[]" % ",".join("'%s'" % v.replace("'", "''") for v in values)


def partitions(topics=None):
    """{topic: partition count} of the topics that exist (all topics when None)."""
    args = ["kcat", "-b", BROKERS, "-L", "-J"]
    if topics is not None and len(topics) == 1:
        args += ["-t", topics[0]]
    p = subprocess.run(args, capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        raise RuntimeError("kcat -L failed: %s" % p.stderr.strip())
    out = {}
    for t in json.loads(p.stdout).get("topics", []):
        if t.get("error") or not t.get("partitions"):
            continue
        if topics is None or t["topic"] in topics:
            out[t["topic"]] = len(t["partitions"])
    return out


def _query(pairs, which):
    out = {}
    if not pairs:
        return out
    args = ["kcat", "-b", BROKERS, "-Q"]
    for t, p in pairs:
        args += ["-t", "%s:%d:%d" % (t, p, which)]
    # a broker that has just started answers "Not leader for partition" until its
    # partitions have leaders again: a few bounded tries, then the error
    for attempt in range(10):
        r = subprocess.run(args, capture_output=True, text=True, timeout=30)
        if r.returncode == 0 or "Not leader" not in r.stderr:
            break
        time.sleep(0.5)
    if r.returncode != 0:
        raise RuntimeError("kcat -Q failed: %s" % r.stderr.strip())
    for line in r.stdout.splitlines():
        # "<topic> [<partition>] offset <n>"
        parts = line.split()
        if len(parts) == 4 and parts[2] == "offset":
            out[(parts[0], int(parts[1].strip("[]")))] = int(parts[3])
    return out


def watermarks(topics):
    """{(topic, partition): (low, high)} of the topics that exist."""
    counts = partitions(None if len(topics) != 1 else list(topics))
    pairs = [(t, p) for t in topics if t in counts for p in range(counts[t])]
    low, high = _query(pairs, -2), _query(pairs, -1)
    return {k: (low.get(k, 0), high.get(k, 0)) for k in pairs}


def join_at_end(group, topics):
    """Moves group's positions on topics to their end (kasir_offsets rows at the high
    watermark, never backwards). Only for a group none of whose members runs: the runtime
    reads its positions when partitions are assigned. Returns the partitions moved."""
    wm = watermarks(topics)
    if not wm:
        return 0
    rows = ",".join("('%s','%s',%d,%d)" % (group.replace("'", "''"), t, p, hi)
                    for (t, p), (_, hi) in sorted(wm.items()))
    got = psql("WITH i AS (INSERT INTO kasir_offsets AS o (group_id, topic, partition, next_offset) "
               "VALUES %s ON CONFLICT (group_id, topic, partition) DO UPDATE "
               "SET next_offset = EXCLUDED.next_offset, updated_at = now() "
               "WHERE o.next_offset < EXCLUDED.next_offset RETURNING 1) SELECT count(*) FROM i" % rows)
    return int(got[0][0])


def lag(group_names):
    """{group: messages not yet processed} over every partition the group holds a position
    for (a position of -1, nothing processed yet, counts from the low watermark)."""
    rows = psql("SELECT group_id, topic, partition, next_offset FROM kasir_offsets "
                "WHERE group_id = ANY(%s)" % sql_list(group_names))
    topics = sorted({r[1] for r in rows})
    wm = watermarks(topics) if topics else {}
    out = {g: 0 for g in group_names}
    for g, t, p, nxt in rows:
        low, high = wm.get((t, int(p)), (0, 0))
        pos = max(int(nxt), low)
        out[g] += max(0, high - pos)
    return out


def outbox(group_names):
    """{group: outbox rows not yet confirmed by Kafka}: rows whose owner is
    "<daemon>/<group>" (the worker runtime's, and the ledger's publisher "ledger-sql/<group>"),
    plus, under "ledger_unpublished", entries the ledger's SQL entry points posted that its
    publisher has not yet moved to an outbox."""
    rows = psql("SELECT split_part(worker, '/', 2), count(*) FROM kasir_outbox "
                "WHERE split_part(worker, '/', 2) = ANY(%s) GROUP BY 1" % sql_list(group_names))
    out = {g: 0 for g in group_names}
    for g, n in rows:
        out[g] += int(n)
    if psql("SELECT to_regclass('ledger_unpublished') IS NOT NULL")[0][0] == "t":
        out["ledger_unpublished"] = int(psql("SELECT count(*) FROM ledger_unpublished")[0][0])
    return out


def quiet(group_names, timeout=180, settle=2, extra=None, progress=None):
    """Waits until every group's lag is 0 and its outbox empty (and extra(), when given,
    answers True) on `settle` checks in a row, one second apart. Returns (True, state) or
    (False, state) at the timeout; state is {"lag": {...}, "outbox": {...}}."""
    deadline = time.time() + timeout
    calm = 0
    state = {}
    while True:
        state = {"lag": lag(group_names), "outbox": outbox(group_names)}
        busy = sum(state["lag"].values()) + sum(state["outbox"].values())
        ok = busy == 0 and (extra is None or extra())
        calm = calm + 1 if ok else 0
        if calm >= settle:
            return True, state
        if time.time() > deadline:
            return False, state
        if progress:
            progress(state)
        time.sleep(1)


def dlq_counts(prefix="kasir."):
    """{dlq topic: messages} of every <topic>.dlq with that prefix (whole topics)."""
    names = [t for t in partitions() if t.startswith(prefix) and t.endswith(".dlq")]
    counts = {t: 0 for t in names}
    for (t, _), (low, high) in watermarks(names).items():
        counts[t] += high - low
    return counts


def main(argv):
    if len(argv) >= 3 and argv[1] == "join-at-end":
        n = join_at_end(argv[2], argv[3:])
        if n:
            print("pipeline: %s starts at the end of %d partition(s)" % (argv[2], n))
        return 0
    if len(argv) >= 3 and argv[1] == "lag":
        for g, n in lag(argv[2:]).items():
            print("%s\t%d" % (g, n))
        return 0
    if len(argv) >= 3 and argv[1] == "quiet":
        args, timeout = argv[2:], 180
        if args[0] == "--timeout":
            timeout, args = float(args[1]), args[2:]
        ok, state = quiet(args, timeout)
        print(json.dumps(state))
        return 0 if ok else 1
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
