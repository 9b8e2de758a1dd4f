"""131: a worker starts (or takes partitions over in a rebalance) without waiting on an empty
partition. After an assignment librdkafka sends its first fetch as soon as one partition is
ready; that is often the retry topic's, which is empty, and the broker holds such a fetch
for fetch.wait.max.ms (librdkafka's default 500 ms) while the main partitions, messages
waiting, sit behind it. Half a second lost at every start and every hand-over, and about
7 % of a 200,000-message drain in the runtime bench. The runtime's consumer waits at most
20 ms (50 until session 36). Measured from the worker's own log: assignment to the start
of the first batch."""
import json
from datetime import datetime

from runtime_util import Run, produce


def _ts(line):
    return datetime.strptime(line["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()


def _first_batch_delay(log_path, group):
    """the log is appended to by every daemon that had this port: read from this group's
    assignment on"""
    assigned = started = None
    with open(log_path, errors="replace") as f:
        for raw in f:
            if not raw.startswith("{"):
                continue
            line = json.loads(raw)
            if line["event"] == "worker.assigned" and line.get("group") == group:
                assigned = _ts(line)
            elif line["event"] == "worker.batch.sent" and assigned and started is None:
                # "n=20 begin=.. handler=.. tail_send=.. us": the batch began that long before
                parts = dict(p.split("=") for p in line["msg"].split() if "=" in p)
                spent = sum(int(parts[k]) for k in ("begin", "handler", "tail_send"))
                started = _ts(line) - spent / 1e6
    assert assigned is not None and started is not None, "log lacks the assignment or a batch"
    return started - assigned


def test_first_batch_does_not_wait_behind_an_empty_retry_partition(daemons):
    delays = []
    for attempt in range(2):
        run = Run("t131", partitions=2)
        produce([run.event(i) for i in range(20)])
        d = daemons("demo", env=run.env(KASIR_LOG_LEVEL="debug"))
        run.wait_applied(20, timeout=30)
        assert d.term() == 0
        delays.append(_first_batch_delay(d.log_path, run.group))
        # the old consumer lost >= 500 ms here whenever the retry partition was ready first;
        # two starts, so one lucky ordering cannot pass it
    assert max(delays) < 0.35, "assignment to first batch: %s s" % ["%.3f" % x for x in delays]
