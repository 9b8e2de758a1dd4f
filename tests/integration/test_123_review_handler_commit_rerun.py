"""123 (review): a handler that ends the runtime's transaction has its effects applied again
on every re-run. worker.h: "A handler that ends the transaction is a bug: the runtime logs it
(worker.handler.bug), rolls back what it can and treats the batch as failed". A batch that
failed is re-run after a backoff (100 ms doubling, capped at worker.failure.backoff_max) -
but this handler's effects were COMMITted by the handler itself, without the positions. Each
re-run commits them once more: a posting applied 7 times in 8 seconds, and forever after
(once per backoff_max), for any input without a natural key (main-topic inputs are not
claimed unless spec.dedup). handler_bug() says "never retried quietly": it is retried,
loudly. Once the runtime has seen effects committed without positions it must not run the
same inputs through that handler again (stop the partition or the process, red /healthz).

The worker here is built for the test: a batch handler that inserts one demo_seen row per
message and then runs COMMIT, as a helper that manages its own transaction would.
Fails today: the one input's row is committed again on every re-run."""
import os
import subprocess
import tempfile
import time

import pytest

from conftest import TOP, psql_one
from runtime_util import Run, produce

SRC = r'''
#include <stdio.h>
#include <string.h>
#include "lib/worker.h"

static enum ks_code handle(struct ks_batch *b, PGconn *pg, void *ctx, struct ks_err *err)
{
    (void)ctx;
    for (size_t i = 0; i < ks_batch_count(b); i++) {
        struct ks_msg *m = ks_batch_msg(b, i);
        char part[16], off[24];
        const char *p[3] = {json_string_value(json_object_get(m->value, "event_id")), part, off};
        snprintf(part, sizeof(part), "%d", (int)m->partition);
        snprintf(off, sizeof(off), "%lld", (long long)m->offset);
        PGresult *r = PQexecParams(pg, "INSERT INTO demo_seen (event_id, src_topic, "
                                   "src_partition, src_offset) VALUES ($1, 'commit', $2::int, "
                                   "$3::bigint)", 3, NULL, p, NULL, NULL, 0);
        enum ks_code rc = ks_pg_check(pg, r, PGRES_COMMAND_OK, "insert", err);
        PQclear(r);
        if (rc != KS_OK)
            return rc;
    }
    PQclear(PQexec(pg, "COMMIT")); /* the bug: a helper that ends the transaction */
    return KS_OK;
}

int main(int argc, char **argv)
{
    static const struct ks_worker_spec spec = {
        .name = "rvcommit", .group = "rvcommit", .topics = "rvcommit.in",
        .http_port = "0", .handle_batch = handle};
    return ks_worker_main(&spec, NULL, 0, argc, argv);
}
'''


def build(tmp):
    src = os.path.join(tmp, "w.c")
    exe = os.path.join(tmp, "rvcommit")
    with open(src, "w") as f:
        f.write(SRC)
    pk = ["rdkafka", "libpq", "avro-c", "libcurl", "openssl", "jansson", "libmicrohttpd"]
    cflags = subprocess.run(["pkg-config", "--cflags"] + pk, capture_output=True,
                            text=True).stdout.split()
    libs = subprocess.run(["pkg-config", "--libs"] + pk, capture_output=True,
                          text=True).stdout.split()
    lib = os.path.join(TOP, "build", "lib", "libkasir.a")
    if not os.path.exists(lib):
        pytest.skip("build/lib/libkasir.a not built")
    p = subprocess.run(["cc", "-std=c11", "-D_GNU_SOURCE", "-O1", "-I", TOP, "-I",
                        os.path.join(TOP, "build", "gen")] + cflags +
                       ["-o", exe, src, lib] + libs + ["-lpthread", "-lm"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return exe


def test_handler_commit_is_not_applied_again():
    run = Run("t123", partitions=1)
    with tempfile.TemporaryDirectory() as tmp:
        exe = build(tmp)
        produce([run.event(1)])
        env = dict(os.environ, **run.env(KASIR_HTTP_PORT="0",
                                         KASIR_WORKER_FAILURE_BACKOFF_MAX="30s"))
        log = open(os.path.join(tmp, "w.log"), "wb")
        w = subprocess.Popen([exe], env=env, stdout=log, stderr=log)
        try:
            time.sleep(10)
        finally:
            w.kill()
            w.wait()
            log.close()
        text = open(os.path.join(tmp, "w.log"), errors="replace").read()
    assert "worker.handler.bug" in text, text[-2000:]
    rows = int(psql_one("SELECT count(*) FROM demo_seen WHERE event_id = '%s-1' "
                        "AND src_topic = 'commit'" % run.name))
    assert rows == 1, "the handler's committed effect was applied %d times" % rows
