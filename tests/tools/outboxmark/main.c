/* kasir-outboxmark - the outbox's sent mark (lib/outbox.c) against the real server and
 * broker, with its deliveries scattered: writes N rows for OWNER in one transaction, every
 * other one too large for the producer (kafka.message.max.bytes 1000, set here, so
 * librdkafka refuses it at once and it is never delivered), relays them to TOPIC, waits
 * for the deliveries, then marks the delivered half sent in one transaction of its own.
 * Prints one line, then deletes what is left of OWNER's rows (on a failure too):
 *   rows=N delivered=D left=L wrong=W mark_ms=T
 * left: OWNER's rows still in kasir_outbox after the mark; wrong: those of them that were
 * delivered (a row refused by the producer is the one whose value is 2,000 bytes).
 *   kasir-outboxmark OWNER TOPIC N   (KASIR_PG_DSN, KASIR_KAFKA_BROKERS from the environment) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/clock.h"
#include "lib/config.h"
#include "lib/db.h"
#include "lib/outbox.h"

/* kafka.brokers is the tool's own setting (not a librdkafka property); any other kafka.*
 * from the environment goes to the producer */
static const struct ks_config_def defs[] = {
    {"kafka.brokers", KS_CFG_STRING, NULL, 1, "the brokers"},
};

static int exec_ok(PGconn *pg, const char *q)
{
    PGresult *res = PQexec(pg, q);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;

    if (!ok)
        fprintf(stderr, "%s: %s", q, PQerrorMessage(pg));
    PQclear(res);
    return ok;
}

/* the rows, written and committed as a worker's batch writes them, then relayed */
static int write_rows(struct ks_outbox *ob, PGconn *pg, const char *owner, const char *topic,
                      long n)
{
    struct ks_err err = {0};
    PGresult *res;
    char id[64];
    int ok = 1;

    for (long i = 0; i < n; i++) {
        size_t len = i % 2 ? 2000 : 16;
        char *v = calloc(1, len);
        snprintf(id, sizeof(id), "%s-%ld", owner, i);
        if (!v || ks_outbox_add(ob, topic, "k", 1, v, len, NULL, id, i, &err) != KS_OK) {
            fprintf(stderr, "add: %s\n", v ? err.msg : "out of memory");
            return 0;
        }
    }
    if (!exec_ok(pg, "BEGIN") || ks_outbox_commit_send(ob, pg, "COMMIT", &err) != KS_OK) {
        fprintf(stderr, "write: %s\n", err.msg);
        return 0;
    }
    while ((res = PQgetResult(pg)) != NULL) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            fprintf(stderr, "write: %s", PQerrorMessage(pg));
            ok = 0;
        }
        PQclear(res);
    }
    ks_outbox_mark_done(ob, ok);
    if (ok)
        ks_outbox_relay(ob);
    else
        ks_outbox_discard(ob);
    return ok;
}

int main(int argc, char **argv)
{
    const char *dsn = getenv("KASIR_PG_DSN");
    struct ks_err err = {0};
    struct ks_config *cfg = NULL;
    struct ks_outbox *ob = NULL;
    struct ks_db *db = NULL;
    PGresult *res;
    PGconn *pg;
    char q[256], *lit = NULL, *end;
    long n = argc == 4 ? strtol(argv[3], &end, 10) : 0;
    int64_t t0, t1;
    size_t delivered;
    int rc = 1;

    if (argc != 4 || !dsn || !getenv("KASIR_KAFKA_BROKERS") || *end || n < 2 || n > 1000000) {
        fprintf(stderr, "usage: KASIR_PG_DSN=.. KASIR_KAFKA_BROKERS=.. kasir-outboxmark OWNER "
                        "TOPIC N (2..1000000)\n");
        return 2;
    }
    setenv("KASIR_KAFKA_MESSAGE_MAX_BYTES", "1000", 1);
    setenv("KASIR_KAFKA_MESSAGE_TIMEOUT_MS", "300000", 1); /* a slow machine: late, not lost */
    if (!(cfg = ks_config_load(defs, 1, NULL, NULL, &err)) || !(db = ks_db_connect(dsn, &err)) ||
        !(ob = ks_outbox_new(argv[1], ks_config_str(cfg, "kafka.brokers"), cfg, &err))) {
        fprintf(stderr, "%s\n", err.msg);
        goto out;
    }
    pg = ks_db_conn(db);
    if (!(lit = PQescapeLiteral(pg, argv[1], strlen(argv[1]))))
        goto out;
    if (!write_rows(ob, pg, argv[1], argv[2], n))
        goto clean;
    ks_outbox_flush(ob, 300000);
    delivered = ks_outbox_delivered(ob);
    t0 = ks_clock_mono_us();
    if (!exec_ok(pg, "BEGIN") || ks_outbox_mark_write(ob, pg, &err) != KS_OK ||
        !exec_ok(pg, "COMMIT")) {
        fprintf(stderr, "mark: %s\n", err.msg);
        goto clean;
    }
    t1 = ks_clock_mono_us();
    ks_outbox_mark_done(ob, 1);
    snprintf(q, sizeof(q), "SELECT count(*), count(*) FILTER (WHERE length(value) <> 2000) "
                           "FROM kasir_outbox WHERE worker = %s", lit);
    res = PQexec(pg, q);
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        printf("rows=%ld delivered=%zu left=%s wrong=%s mark_ms=%lld\n", n, delivered,
               PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), (long long)((t1 - t0) / 1000));
        rc = 0;
    }
    PQclear(res);
clean:
    /* nobody sweeps this owner's rows: they go whatever happened (a failed statement
     * left its transaction aborted) */
    PQclear(PQexec(pg, "ROLLBACK"));
    snprintf(q, sizeof(q), "DELETE FROM kasir_outbox WHERE worker = %s", lit);
    if (!exec_ok(pg, q))
        rc = 1;
out:
    PQfreemem(lit);
    ks_outbox_free(ob, 0);
    ks_db_free(db);
    ks_config_free(cfg);
    return rc;
}
