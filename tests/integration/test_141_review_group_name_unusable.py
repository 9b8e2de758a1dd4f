"""141: a consumer group name the runtime accepts at start but PostgreSQL cannot store.
worker.group is any string (lib/worker.c: no check), and the group goes into PostgreSQL
text twice: as kasir_offsets' consumer (a bound parameter) and inside the outbox owner
"<worker>/<group>", which ks_worker_new builds in a char[300] with snprintf.

- long: a valid UTF-8 group of 295 bytes whose 294th byte starts a two-byte character.
  The owner is cut after 299 bytes, in the middle of that character: every batch's COPY
  into kasir_outbox fails (sqlstate 22021, column worker), the batch is re-run with backoff
  forever, nothing is ever applied. (Two groups sharing their first 294 bytes also share one
  owner: each sweeps and relays the other's rows.)
- latin1: a group with a byte that is not UTF-8 (0xe9, an operator's Latin-1 environment):
  the positions cannot be read (offsets init fails, retried forever), nothing is applied.

In both the daemon starts and reports healthy, and never applies a message (in "long",
/healthz turns red only after worker.health.max_failures failed batches): a careless
operator's group name is an outage with a database error as its only clue. Either the group is
usable (every event applied, the group's outbox rows relayed and deleted) or the daemon
refuses it at start as a config problem (exit 2, config.invalid naming worker.group).

Proposed fix: check worker.group in ks_worker_new (valid UTF-8, no control characters,
at most a documented length, e.g. 200 bytes) and fail with KS_ECONFIG naming the setting;
build the owner with its exact length (asprintf-like) instead of a truncating buffer."""
import time

import pytest

from conftest import psql_one
from runtime_util import Run, produce

CASES = {
    # run.group is 18 ASCII bytes; pad so that "demo/" + group cuts the e-acute in two
    "long": lambda g: g + "-" + "x" * (293 - len(g) - 1) + "\u00e9tail",
    # a lone byte 0xe9 in the environment (surrogateescape: Popen passes the raw byte)
    "latin1": lambda g: g + "-caf\udce9",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_group_name_usable_or_refused(daemons, case):
    run = Run("t141" + case, partitions=1)
    group = CASES[case](run.group)
    produce([run.event(i) for i in range(20)])
    d = daemons("demo", env=run.env(KASIR_WORKER_GROUP=group), wait_path=None)
    deadline = time.time() + 15
    while time.time() < deadline and d.proc.poll() is None and run.applied() < 20:
        time.sleep(0.3)
    if d.proc.poll() is not None:
        assert d.proc.returncode == 2, d.log_tail()
        assert "config.invalid" in d.log_tail() and "worker.group" in d.log_tail()
        return
    assert run.applied() == 20, "nothing consumed:\n" + d.log_tail(5)
    deadline = time.time() + 20
    while time.time() < deadline and psql_one(
            "SELECT count(*) FROM kasir_outbox WHERE worker LIKE 'demo/%s%%'" % run.group) != "0":
        time.sleep(0.3)
    assert psql_one("SELECT count(*) FROM kasir_outbox WHERE worker LIKE 'demo/%s%%'"
                    % run.group) == "0"
    assert d.term() == 0
