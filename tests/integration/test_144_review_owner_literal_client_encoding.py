"""144: the sent mark's owner literal under a client-only encoding. lib/outbox.c writes the
owner into the DELETE as E'...' escaping byte by byte (a quote doubled, a backslash
doubled), and no session pins client_encoding (lib/db.c), so libpq takes PGCLIENTENCODING
(or the DSN's client_encoding) from the operator's environment. In SJIS, BIG5, GBK ... the
second byte of a character may be 0x5c, a backslash: PostgreSQL reads that byte as part of
the character, and the backslash the escaper added now escapes what follows.
The outbox rows themselves are written by binary COPY (converted, exact), so the mark names
another owner than its rows:

- "end": group "...-<95 5c>" (SJIS for U+8868, "表"): the literal ends in \\' ; PostgreSQL
  refuses it ("unsafe use of \\' in a string literal"). The mark on an idle turn fails
  without a log line or a metric (lib/worker.c housekeeping), the rows stay and are
  re-relayed at every sweep without end; a batch that carries the mark fails and is
  re-run with backoff (seen in a manual run: "batch failed 7 time(s) in a row").
- "n": group "...-<95 5c>n": the literal reads "\\n", a newline: the mark matches no row,
  SILENTLY: every batch commits, no row is ever deleted, every output is re-sent at every
  sweep, and kasir_outbox grows without bound.

Expected: either the group is usable (every event applied once, the group's rows deleted
once delivered) or refused at start (exit 2, config.invalid naming worker.group).

Proposed fix: pin the session's encoding (client_encoding=UTF8 in ks_db_connect's
options, or PQsetClientEncoding) so that what the escaper assumes is true, and refuse a
worker.group that is not UTF-8 (test 141); or escape with PQescapeStringConn, which knows
the connection's encoding."""
import time

import pytest

from conftest import psql_one
from runtime_util import Run, produce

GROUPS = {"end": "-\udc95\\", "n": "-\udc95\\n"}  # raw bytes 95 5c (6e) via surrogateescape


def outbox_rows(run):
    return int(psql_one("SELECT count(*) FROM kasir_outbox WHERE worker LIKE 'demo/%s%%'"
                        % run.group))


@pytest.mark.parametrize("case", sorted(GROUPS))
def test_owner_literal_under_sjis(daemons, case):
    run = Run("t144" + case, partitions=1)
    env = run.env(KASIR_WORKER_GROUP=run.group + GROUPS[case], PGCLIENTENCODING="SJIS",
                  KASIR_WORKER_OUTBOX_MIN_AGE="1s")
    produce([run.event(i) for i in range(20)])
    d = daemons("demo", env=env, wait_path=None)
    deadline = time.time() + 10
    while time.time() < deadline and d.proc.poll() is None and run.applied() < 20:
        time.sleep(0.3)
    if d.proc.poll() is not None:
        assert d.proc.returncode == 2 and "worker.group" in d.log_tail(), d.log_tail()
        return
    produce([run.event(i) for i in range(20, 40)])  # a batch that carries the sent mark
    deadline = time.time() + 15
    while time.time() < deadline and (run.applied() < 40 or outbox_rows(run) > 0):
        time.sleep(0.3)
    assert run.applied() == 40, "a batch never committed:\n" + d.log_tail(3)
    assert outbox_rows(run) == 0, "delivered outbox rows never deleted"
    assert d.term() == 0
