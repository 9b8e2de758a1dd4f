/* publish.c - the publisher of the entries the ledger's SQL entry points posted (payout
 * holds, settlements, adjustments: queued in ledger_unpublished by ledger_post, migration
 * 403). A thread of kasir-ledger with a PostgreSQL session and an outbox of its own (owner
 * "ledger-sql/<group>"): every ledger.publish.every it claims up to 1,000 queued entries
 * (deleted in its transaction, SKIP LOCKED so instances share the queue) and writes their
 * LedgerEntry messages to kasir_outbox in that same transaction, then relays them with the
 * idempotent producer; a crash between COMMIT and delivery is repaired by its sweep. So an
 * entry reaches the topic at least once and enters the outbox exactly once, with a message
 * id derived from its entry id (the same whichever instance publishes it).
 *
 * Why a thread: the worker runtime calls kasir-ledger only when outcomes arrive, and a
 * settlement or an adjustment may be posted while none do. Why the batches too: the batch
 * handler claims queued entries before the entries it posts (main.c), through the same
 * producer, so a payout's hold is on the wallet's partition before the payout's result.
 * The thread leaves entries younger than MIN_AGE_MS to the batches, so a hold whose result
 * follows at once goes out that way; an older one went out by the thread a second or more
 * before its result was posted. The thread covers the quiet times. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/db.h"
#include "lib/headers.h"
#include "lib/ids.h"
#include "lib/log.h"
#include "lib/outbox.h"
#include "lib/serde.h"
#include "consumers/ledger/ledger.h"
#include "lib/banned.h"

#define MIN_AGE_MS 1000
#define SWEEP_EVERY_MS 5000
#define SWEEP_MIN_AGE_MS 10000

struct ledger_pub {
    pthread_t th;
    atomic_int stop;
    const struct ks_config *cfg;
    const char *topic, *dsn;
    int64_t every_ms;
    char owner[300];
    char min_age[24]; /* ms: entries younger are left to the batches (see the top) */
    struct ks_db *db;
    struct ks_outbox *ob;
    const struct ks_schema *schema;
    json_t *out;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Adds the outbox row of entry e (Avro, its key, its headers). */
static enum ks_code add_entry(struct ledger_pub *p, const struct ledger_entry_src *e,
                              struct ks_err *err)
{
    const char *entry = PQgetvalue(e->res, e->from, LEDGER_COL_ENTRY), *key = ledger_entry_key(e);
    char id[KS_ID_LEN], cause[64];
    void *buf = NULL;
    size_t len = 0;
    rd_kafka_headers_t *h;
    enum ks_code rc;

    ks_id_derive("msg", "kasir.ledger.entries", id, entry, NULL);
    if ((rc = ledger_entry_value(p->out, e, id, err)) != KS_OK ||
        (rc = ks_serde_encode(p->schema, p->out, &buf, &len, err)) != KS_OK)
        return rc;
    snprintf(cause, sizeof(cause), "entry:%s", entry);
    if (!(h = ks_headers_output(id, "kasir-ledger", cause, ""))) {
        free(buf);
        return ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
    }
    return ks_outbox_add(p->ob, p->topic, key, strlen(key), buf, len, h, id, 0, err);
}

/* One transaction: claims queued entries, writes their outbox rows (and marks the rows
 * delivered since the last one), commits, relays. *n: entries published. */
static enum ks_code publish_once(struct ledger_pub *p, int *n, struct ks_err *err)
{
    PGconn *pg = ks_db_conn(p->db);
    PGresult *res = NULL;
    enum ks_code rc;
    int rows, failed = 0;

    *n = 0;
    res = PQexec(pg, "BEGIN");
    if ((rc = ks_db_check(p->db, res, PGRES_COMMAND_OK, "begin", err)) != KS_OK)
        goto out;
    PQclear(res);
    {
        const char *age = p->min_age;
        res = PQexecParams(pg, LEDGER_SQL_QUEUED, 1, NULL, &age, NULL, NULL, 0);
    }
    if ((rc = ks_db_check(p->db, res, PGRES_TUPLES_OK, "claim queued entries", err)) != KS_OK)
        goto rollback;
    rows = PQntuples(res);
    if (rows == 0 && ks_outbox_delivered(p->ob) == 0) {
        PQclear(res);
        res = PQexec(pg, "ROLLBACK");
        goto out;
    }
    for (int k = 0; k < rows;) {
        struct ledger_entry_src e;
        k = ledger_queued_entry(res, k, now_us(), &e);
        if ((rc = add_entry(p, &e, err)) != KS_OK) {
            ks_outbox_discard(p->ob);
            goto rollback;
        }
        (*n)++;
    }
    PQclear(res);
    res = NULL;
    if ((rc = ks_outbox_commit_send(p->ob, pg, "COMMIT", err)) != KS_OK)
        failed = 1;
    while ((res = PQgetResult(pg))) {
        ExecStatusType st = PQresultStatus(res);
        if (st != PGRES_COMMAND_OK && st != PGRES_COPY_IN && !failed) {
            rc = ks_db_check(p->db, res, PGRES_COMMAND_OK, "commit published entries", err);
            failed = 1;
        }
        PQclear(res);
    }
    if (failed) {
        ks_outbox_discard(p->ob);
        ks_outbox_mark_done(p->ob, 0);
        PQclear(PQexec(pg, "ROLLBACK"));
        *n = 0;
        return rc != KS_OK ? rc : ks_err_set(err, KS_EDB, 1, NULL, "commit failed");
    }
    ks_outbox_mark_done(p->ob, 1);
    ks_outbox_relay(p->ob);
    return KS_OK;
rollback:
    PQclear(res);
    res = PQexec(pg, "ROLLBACK");
out:
    PQclear(res);
    return rc;
}

static void *pub_main(void *arg)
{
    struct ledger_pub *p = arg;
    struct ks_err err = {0};
    int64_t next_sweep = 0, backoff = 0;

    while (!atomic_load(&p->stop)) {
        int n = 0, swept = 0;

        if (!p->db || !ks_db_ok(p->db)) {
            struct ks_err e2 = {0};
            if (p->db ? ks_db_reconnect(p->db, &e2) != KS_OK
                      : !(p->db = ks_db_connect(p->dsn, &e2))) {
                backoff = backoff ? (backoff * 2 > 5000 ? 5000 : backoff * 2) : 250;
                goto wait;
            }
        }
        ks_outbox_poll(p->ob, 0);
        if (ks_outbox_fatal(p->ob) && ks_outbox_recreate(p->ob, &err) != KS_OK)
            ks_log(KS_LOG_ERROR, "ledger.publish.producer", err.msg, NULL);
        if (publish_once(p, &n, &err) != KS_OK) {
            ks_log(KS_LOG_WARN, "ledger.publish.failed", err.msg, NULL);
            backoff = backoff ? (backoff * 2 > 5000 ? 5000 : backoff * 2) : 250;
            goto wait;
        }
        backoff = 0;
        if (mono_ms() >= next_sweep) {
            if (ks_outbox_sweep(p->ob, ks_db_conn(p->db), SWEEP_MIN_AGE_MS, 1000, &swept, &err) !=
                KS_OK)
                ks_log(KS_LOG_WARN, "ledger.publish.sweep", err.msg, NULL);
            next_sweep = mono_ms() + SWEEP_EVERY_MS;
        }
        if (n >= 1000)
            continue; /* more queued: at once */
    wait:
        for (int64_t until = mono_ms() + (backoff ? backoff : p->every_ms);
             mono_ms() < until && !atomic_load(&p->stop);) {
            ks_outbox_poll(p->ob, 20);
        }
    }
    return NULL;
}

struct ledger_pub *ledger_pub_start(const struct ks_config *cfg, struct ks_err *err)
{
    struct ledger_pub *p = calloc(1, sizeof(*p));

    if (!p) {
        ks_err_set(err, KS_ENOMEM, 0, NULL, "out of memory");
        return NULL;
    }
    p->cfg = cfg;
    p->topic = ks_config_str(cfg, "ledger.output_topic");
    p->dsn = ks_config_str(cfg, "pg.dsn");
    p->every_ms = ks_config_ms(cfg, "ledger.publish.every");
    snprintf(p->min_age, sizeof(p->min_age), "%d", MIN_AGE_MS);
    snprintf(p->owner, sizeof(p->owner), "ledger-sql/%s", ks_config_str(cfg, "worker.group"));
    if (ks_serde_init(err) != KS_OK)
        goto fail;
    if (!(p->schema = ks_schema_by_name("kasir.ledger.LedgerEntry"))) {
        ks_err_set(err, KS_ENOTFOUND, 0, NULL, "no schema kasir.ledger.LedgerEntry");
        goto fail;
    }
    if (!(p->out = json_object()) ||
        !(p->ob = ks_outbox_new(p->owner, ks_config_str(cfg, "kafka.brokers"), cfg, err)))
        goto fail;
    if (pthread_create(&p->th, NULL, pub_main, p) != 0) {
        ks_err_set(err, KS_ENOMEM, 0, NULL, "cannot start the publisher thread");
        goto fail;
    }
    return p;
fail:
    ks_outbox_free(p->ob, 0);
    json_decref(p->out);
    free(p);
    return NULL;
}

void ledger_pub_stop(struct ledger_pub *p)
{
    if (!p)
        return;
    atomic_store(&p->stop, 1);
    pthread_join(p->th, NULL);
    ks_outbox_free(p->ob, 5000);
    ks_db_free(p->db);
    json_decref(p->out);
    free(p);
}
