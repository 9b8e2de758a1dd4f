/* worker_tx.c - one batch, one transaction: claims, the handler (savepoints per message
 * when isolating), the tail sent as one query while the next batch is read, and the
 * journal before an external call. See worker_int.h. */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "httpd.h"
#include "kafka.h"
#include "log.h"
#include "metrics.h"
#include "outbox.h"
#include "pgarr.h"
#include "serde.h"
#include "worker_int.h"
#include "crypto.h"
#include "banned.h"

/* The partitions (topic, partition, epoch) still ours: a row each, at the epoch this
 * instance read when it was assigned them. The journal's transaction locks them (FOR
 * SHARE): a new owner's assignment (SQL_OFFSETS_READ, SKIP LOCKED) leaves them pending and
 * tries again every second until the journal has committed. */
#define SQL_OWNED_BASE                                                                      \
    "SELECT o.topic, o.partition FROM kasir_offsets o,"                                    \
    "       unnest($2::text[], $3::int[], $4::bigint[]) AS u(topic, partition, epoch)"     \
    " WHERE o.group_id = $1 AND o.topic = u.topic AND o.partition = u.partition"           \
    "   AND o.epoch = u.epoch ORDER BY o.topic, o.partition"
static const char SQL_OWNED[] = SQL_OWNED_BASE;
static const char SQL_OWNED_LOCK[] = SQL_OWNED_BASE " FOR SHARE OF o";
/* takes back the dedup claims of messages the handler failed (unclaim_failed) */
static const char SQL_UNCLAIM[] =
    "DELETE FROM kasir_processed WHERE consumer = $1 AND message_id = ANY($2::text[])";

static const char SQL_DEDUP[] =
    "INSERT INTO kasir_processed (consumer, message_id) "
    "SELECT $1, m FROM unnest($2::text[]) AS u(m) "
    "ON CONFLICT DO NOTHING RETURNING message_id";

enum ks_code ks_dedup_claim(PGconn *pg, const char *consumer, const char *const *ids,
                            size_t n, unsigned char *fresh, struct ks_err *err)
{
    struct ks_pgarr arr;
    const char *params[2];
    PGresult *res = NULL;
    enum ks_code rc = KS_OK;
    json_t *seen = NULL;
    int i, rows;

    if (n == 0)
        return KS_OK;
    ks_pgarr_init(&arr);
    for (size_t k = 0; k < n; k++)
        ks_pgarr_text(&arr, ids[k]);
    params[0] = consumer;
    params[1] = ks_pgarr_str(&arr);
    seen = json_object();
    if (!params[1] || !seen) {
        rc = ks_err_set(err, KS_ENOMEM, 0, NULL, "out of memory");
        goto out;
    }
    res = PQexecParams(pg, SQL_DEDUP, 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = ks_pg_check(pg, res, PGRES_TUPLES_OK, "claim message ids", err);
        goto out;
    }
    /* a hash set of the fresh ones; duplicates inside ids are fresh only once */
    rows = PQntuples(res);
    for (i = 0; i < rows; i++)
        json_object_set_new(seen, PQgetvalue(res, i, 0), json_true());
    for (size_t k = 0; k < n; k++) {
        fresh[k] = json_object_get(seen, ids[k]) != NULL;
        if (fresh[k])
            json_object_del(seen, ids[k]);
    }
out:
    PQclear(res);
    json_decref(seen);
    ks_pgarr_release(&arr);
    return rc;
}

/* Claims were taken for some messages the handler was given (dedup, retry copies). One
 * the handler then failed was not processed: its claim goes, or its retry copy (same
 * message id) would be skipped as a duplicate and the input never applied (a replay from
 * the DLQ likewise). */
static enum ks_code unclaim_failed(struct ks_worker *w, struct ks_err *err)
{
    struct ks_batch *b = &w->batch;
    struct ks_pgarr ids;
    const char *params[2];
    PGresult *res = NULL;
    enum ks_code rc = KS_OK;

    ks_pgarr_init(&ids);
    for (size_t i = 0; i < b->n; i++)
        if (b->items[i].state == ST_FAILED && b->items[i].by_handler && b->items[i].claimed)
            ks_pgarr_text(&ids, b->items[i].claim_id);
    if (ids.n == 0)
        goto out;
    params[0] = w->group;
    if (!(params[1] = ks_pgarr_str(&ids))) {
        rc = ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
        goto out;
    }
    res = PQexecParams(ks_db_conn(w->db), SQL_UNCLAIM, 2, NULL, params, NULL, NULL, 0);
    rc = ks_db_check(w->db, res, PGRES_COMMAND_OK, "dedup unclaim", err);
out:
    PQclear(res);
    ks_pgarr_release(&ids);
    return rc;
}

/* Claims the message ids of the view's inputs that need it: all with spec.dedup, else
 * those read from a retry topic (the relay may have written a retry copy twice). Inputs
 * claimed before are skipped. */
static enum ks_code claim_inputs(struct ks_worker *w, struct ks_err *err)
{
    struct ks_batch *b = &w->batch;
    const char **ids = NULL;
    struct item **its = NULL;
    unsigned char *fresh = NULL;
    size_t n = 0;
    enum ks_code rc = KS_OK;

    for (size_t i = 0; i < b->nview; i++)
        n += w->spec->dedup || ((struct item *)b->view[i])->p->retry_topic;
    if (n == 0)
        return KS_OK;
    ids = malloc(n * sizeof(*ids));
    its = malloc(n * sizeof(*its));
    fresh = malloc(n);
    if (!ids || !its || !fresh) {
        rc = ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
        goto out;
    }
    n = 0;
    for (size_t i = 0; i < b->nview; i++) {
        struct item *it = (struct item *)b->view[i];
        if (w->spec->dedup) {
            memcpy(it->claim_id, it->m.message_id, KS_ID_LEN);
        } else if (it->p->retry_topic) {
            /* a retry copy is the relay's duplicate of another exactly when it has the
             * same origin and attempt; distinct inputs that share a message id do not */
            char ps[16], os[24], at[16];
            snprintf(ps, sizeof(ps), "%d", (int)it->origin_partition);
            snprintf(os, sizeof(os), "%" PRId64, it->origin_offset);
            snprintf(at, sizeof(at), "%d", it->m.attempt);
            ks_id_derive("msg", "retry", it->claim_id, it->origin_topic, ps, os, at, NULL);
        } else {
            continue;
        }
        its[n] = it;
        ids[n++] = it->claim_id;
    }
    if ((rc = ks_dedup_claim(ks_db_conn(w->db), w->group, ids, n, fresh, err)) != KS_OK)
        goto out;
    for (size_t i = 0; i < n; i++) {
        its[i]->claimed = fresh[i];
        if (!fresh[i]) {
            its[i]->state = ST_SKIP;
            ks_metric_add(w->m_skipped, 1);
        }
    }
    wk_build_view(b);
out:
    free(ids);
    free(its);
    free(fresh);
    return rc;
}

/* exec a parameterless statement on the worker's connection */
static enum ks_code pg_exec(struct ks_worker *w, const char *sql, struct ks_err *err)
{
    return ks_db_exec(w->db, sql, err);
}

/* A handler ended the runtime's transaction (COMMIT or ROLLBACK in it): its effects may
 * have committed without the positions. Running the same inputs through it again would
 * commit them again, so the worker halts: nothing more is consumed, /healthz is red, and a
 * human fixes the handler. */
static enum ks_code handler_bug(struct ks_worker *w, struct ks_err *err)
{
    w->bug = 1;
    ks_log(KS_LOG_ERROR, "worker.handler.bug",
           "the handler ended the runtime's transaction (COMMIT or ROLLBACK inside a "
           "handler): effects and offsets may have split; fix the handler",
           "group", w->group, NULL);
    return ks_err_set(err, KS_EDB, 0, NULL, "handler ended the transaction");
}

enum ks_code ks_batch_run_msg(struct ks_batch *b, struct ks_msg *m, PGconn *pg, ks_msg_fn fn,
                              void *ctx, struct ks_err *err)
{
    struct ks_worker *w = b->w;
    struct ks_err e1 = {0};
    enum ks_code rc;
    PGTransactionStatusType ts;

    if ((rc = pg_exec(w, "SAVEPOINT ks_msg", err)) != KS_OK)
        return rc;
    rc = fn(b, m, pg, ctx, &e1);
    ts = PQtransactionStatus(pg);
    if (w->journal_fenced && ts != PQTRANS_IDLE && ks_db_ok(w->db)) {
        /* a zombie's batch: not m's failure; the whole batch is dropped */
        *err = e1;
        return rc != KS_OK ? rc : ks_err_set(err, KS_ECONFLICT, 0, NULL, "journal fenced");
    }
    if (!ks_db_ok(w->db) || ts == PQTRANS_UNKNOWN) {
        if (rc == KS_OK)
            ks_err_set(&e1, KS_EDB, 1, NULL, "postgresql connection lost");
        *err = e1;
        err->retriable = 1;
        return KS_EDB;
    }
    if (ts == PQTRANS_IDLE)
        return handler_bug(w, err);
    if (rc == KS_OK && ts == PQTRANS_INTRANS) {
        /* isolating: a deferred check (a balance rule) fires now, as this message's */
        if (ks_db_exec(w->db, w->isolating ? "SET CONSTRAINTS ALL IMMEDIATE; "
                                             "RELEASE SAVEPOINT ks_msg"
                                           : "RELEASE SAVEPOINT ks_msg",
                       &e1) == KS_OK)
            return KS_OK;
        if (!ks_db_ok(w->db)) {
            *err = e1;
            return e1.code;
        }
        rc = e1.code;
    }
    if (rc == KS_OK)
        ks_err_set(&e1, KS_EDB, 0, NULL, "handler left the transaction failed");
    if ((rc = pg_exec(w, "ROLLBACK TO SAVEPOINT ks_msg; RELEASE SAVEPOINT ks_msg", err)) != KS_OK)
        return rc;
    {
        char state[6];
        if (ks_db_environmental(ks_db_err_sqlstate(&e1, state))) {
            /* every message would fail alike (a dropped function, a revoked privilege):
             * dead-lettering them all would empty the topic into the DLQ during a bad
             * deploy; the batch fails instead and waits, with backoff, for the fix */
            w->env_fail = 1;
            *err = e1;
            return e1.code;
        }
    }
    ks_batch_fail(b, m, &e1);
    return KS_OK;
}

/* Runs the handler over the current view. */
static enum ks_code run_handler(struct ks_worker *w, struct ks_err *err)
{
    struct ks_batch *b = &w->batch;
    PGconn *pg = ks_db_conn(w->db);
    enum ks_code rc;

    if (b->nview == 0)
        return KS_OK;
    if (w->spec->handle_batch)
        return w->spec->handle_batch(b, pg, w->spec->ctx, err);
    for (size_t i = 0; i < b->nview; i++)
        if ((rc = ks_batch_run_msg(b, b->view[i], pg, w->spec->handle_msg, w->spec->ctx,
                                   err)) != KS_OK)
            return rc;
    return KS_OK;
}

/* the batch handler over a view of one message, as a ks_msg_fn */
static enum ks_code batch_of_one(struct ks_batch *b, struct ks_msg *m, PGconn *pg, void *ctx,
                                 struct ks_err *err)
{
    (void)m;
    (void)ctx;
    return b->w->spec->handle_batch(b, pg, b->w->spec->ctx, err);
}

/* The isolated pass: one savepoint per message, so the culprit fails alone (its own error
 * and retriable flag) and the others commit. */
static enum ks_code run_isolated(struct ks_worker *w, struct ks_err *err)
{
    struct ks_batch *b = &w->batch;
    struct ks_msg **all = NULL;
    size_t n = b->nview;
    enum ks_code rc = KS_OK;

    if (n == 0)
        return KS_OK;
    if (!(all = malloc(n * sizeof(*all))))
        return ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
    memcpy(all, b->view, n * sizeof(*all));
    for (size_t i = 0; i < n && rc == KS_OK; i++) {
        struct item *it = (struct item *)all[i];
        if (it->state != ST_LIVE)
            continue;
        b->view[0] = all[i];
        b->nview = 1;
        rc = ks_batch_run_msg(b, all[i], ks_db_conn(w->db),
                              w->spec->handle_batch ? batch_of_one : w->spec->handle_msg,
                              w->spec->ctx, err);
    }
    memcpy(b->view, all, n * sizeof(*all));
    b->nview = n;
    free(all);
    return rc;
}

/* Computes per-partition ends of the batch and the statements that end its transaction:
 * the fenced offsets update and COMMIT, as text (they follow the outbox COPY in one query
 * string, which takes no parameters; every value is a quoted literal or a number).
 * NULL on no memory. */
static char *tail_sql(struct ks_worker *w)
{
    struct ks_batch *b = &w->batch;
    PGconn *pg = ks_db_conn(w->db);
    struct ks_pgarr t, p, n, e;
    char *q = NULL, *lit[6] = {NULL};
    size_t len, nparts = 0;
    int ok = 0;

    for (size_t i = 0; i < w->nparts; i++)
        w->parts[i].batch_next = -1;
    for (size_t i = 0; i < b->n; i++) {
        struct part *pp = b->items[i].p;
        if (b->items[i].m.offset + 1 > pp->batch_next)
            pp->batch_next = b->items[i].m.offset + 1;
    }
    ks_pgarr_init(&t);
    ks_pgarr_init(&p);
    ks_pgarr_init(&n);
    ks_pgarr_init(&e);
    for (size_t i = 0; i < w->nparts; i++) {
        struct part *pp = &w->parts[i];
        if (pp->batch_next < 0)
            continue;
        ks_pgarr_text(&t, pp->topic);
        ks_pgarr_int(&p, pp->partition);
        ks_pgarr_int(&n, pp->batch_next);
        ks_pgarr_int(&e, pp->expected);
        nparts++;
    }
    if (!ks_pgarr_str(&t) || !ks_pgarr_str(&p) || !ks_pgarr_str(&n) || !ks_pgarr_str(&e))
        goto out;
    if (nparts == 0) {
        ok = (q = strdup("COMMIT")) != NULL;
        goto out;
    }
    lit[0] = PQescapeLiteral(pg, w->group, strlen(w->group));
    lit[1] = PQescapeLiteral(pg, ks_pgarr_str(&t), strlen(ks_pgarr_str(&t)));
    lit[2] = PQescapeLiteral(pg, ks_pgarr_str(&p), strlen(ks_pgarr_str(&p)));
    lit[3] = PQescapeLiteral(pg, ks_pgarr_str(&n), strlen(ks_pgarr_str(&n)));
    lit[4] = PQescapeLiteral(pg, ks_pgarr_str(&e), strlen(ks_pgarr_str(&e)));
    lit[5] = PQescapeLiteral(pg, w->instance, strlen(w->instance));
    len = 128;
    for (int i = 0; i < 6; i++) {
        if (!lit[i])
            goto out;
        len += strlen(lit[i]);
    }
    if (!(q = malloc(len)))
        goto out;
    snprintf(q, len,
             "SELECT kasir_offsets_advance(%s, %s::text[], %s::int[], %s::bigint[], "
             "%s::bigint[], %s); COMMIT",
             lit[0], lit[1], lit[2], lit[3], lit[4], lit[5]);
    ok = 1;
out:
    ks_pgarr_release(&t);
    ks_pgarr_release(&p);
    ks_pgarr_release(&n);
    ks_pgarr_release(&e);
    for (int i = 0; i < 6; i++)
        PQfreemem(lit[i]);
    if (!ok) {
        free(q);
        return NULL;
    }
    return q;
}

static void kafka_commit(struct ks_worker *w)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)w->nparts);
    for (size_t i = 0; i < w->nparts; i++)
        if (w->parts[i].batch_next >= 0)
            rd_kafka_topic_partition_list_add(l, w->parts[i].topic, w->parts[i].partition)
                ->offset = w->parts[i].batch_next;
    if (l->cnt)
        rd_kafka_commit(w->rk, l, 1); /* async; only for lag tools, PostgreSQL is the truth */
    rd_kafka_topic_partition_list_destroy(l);
}

/* One transaction for the batch; isolated = 1 for the savepoint pass. */
static enum outcome transact(struct ks_worker *w, int isolated)
{
    struct ks_batch *b = &w->batch;
    struct ks_err err = {0};
    enum ks_code rc;
    enum outcome oc;
    char state[6] = "";
    int64_t now;

    int64_t t_begin = ks_clock_mono_us(), t_handler, t_outbox;
    char *sql;

    w->isolating = isolated;
    w->bug = 0;
    w->env_fail = 0;
    w->journal_fenced = 0;
    for (size_t i = 0; i < b->n; i++) {
        b->items[i].nemit = 0; /* the cached id stays valid: it depends on nemit */
        b->items[i].claimed = 0;
    }
    if ((rc = pg_exec(w, "BEGIN", &err)) != KS_OK)
        goto rollback;
    if ((rc = claim_inputs(w, &err)) != KS_OK)
        goto rollback;
    t_handler = ks_clock_mono_us();
    rc = isolated ? run_isolated(w, &err) : run_handler(w, &err);
    if (rc == KS_OK && ks_db_ok(w->db) &&
        PQtransactionStatus(ks_db_conn(w->db)) == PQTRANS_IDLE)
        rc = handler_bug(w, &err);
    if (rc == KS_OK && w->journal_fenced)
        rc = ks_err_set(&err, KS_ECONFLICT, 0, NULL, "journal fenced: partition owned elsewhere");
    if (rc != KS_OK || PQtransactionStatus(ks_db_conn(w->db)) != PQTRANS_INTRANS) {
        if (rc == KS_OK)
            ks_err_set(&err, KS_EDB, 0, NULL, "handler left the transaction failed");
        goto rollback;
    }
    if ((rc = unclaim_failed(w, &err)) != KS_OK)
        goto rollback;
    now = ks_clock_wall_ms();
    for (size_t i = 0; i < b->n; i++)
        if (b->items[i].state == ST_FAILED) {
            ks_outbox_drop(w->ob, (long)i);
            if ((rc = wk_failure_to_outbox(w, &b->items[i], now, &err)) != KS_OK)
                goto rollback;
        }
    t_outbox = ks_clock_mono_us();
    /* the end of the batch goes as one query string (COPY, delete of delivered rows,
     * fence, COMMIT) and its results are read by wk_settle(), after the next batch has been
     * collected and decoded: the client's work overlaps the server's */
    if (!(sql = tail_sql(w))) {
        rc = ks_err_set(&err, KS_ENOMEM, 1, NULL, "out of memory");
        goto rollback;
    }
    rc = ks_outbox_commit_send(w->ob, ks_db_conn(w->db), sql, &err);
    free(sql);
    if (rc != KS_OK) {
        PGresult *res;
        while ((res = PQgetResult(ks_db_conn(w->db))) != NULL)
            PQclear(res);
        goto rollback;
    }
    w->tail = 1;
    w->tail_isolated = isolated;
    w->tail_sent = ks_clock_mono_us();
    if (w->debug) {
        char f[200];
        snprintf(f, sizeof(f),
                 "n=%zu begin=%" PRId64 " handler=%" PRId64 " tail_send=%" PRId64 " us", b->n,
                 t_handler - t_begin, t_outbox - t_handler, w->tail_sent - t_outbox);
        ks_log(KS_LOG_DEBUG, "worker.batch.sent", f, NULL);
    }
    return OUT_PENDING;

rollback:
    if (ks_db_ok(w->db) && PQtransactionStatus(ks_db_conn(w->db)) != PQTRANS_IDLE) {
        struct ks_err e2 = {0};
        if (pg_exec(w, "ROLLBACK", &e2) != KS_OK)
            ks_log(KS_LOG_WARN, "worker.rollback_failed", e2.msg, NULL);
    }
    ks_outbox_discard(w->ob);
    ks_outbox_mark_done(w->ob, 0);
    oc = wk_classify(w, &err, ks_db_err_sqlstate(&err, state), isolated);
    if (oc == OUT_RETRY_ISOLATED) {
        ks_log(KS_LOG_WARN, "worker.batch.isolate", err.msg, NULL);
        for (size_t i = 0; i < b->n; i++)
            if (b->items[i].state == ST_FAILED && b->items[i].by_handler) {
                b->items[i].state = ST_LIVE; /* decided by the handler: it decides again */
                b->items[i].by_handler = 0;
            }
        wk_build_view(b);
    } else if (oc == OUT_FAILED) {
        w->failed_backoff = wk_batch_failed(w, &err);
    }
    return oc;
}

/* Reads the results of the batch's tail: committed, fenced or failed. */
static enum outcome tail_finish(struct ks_worker *w)
{
    PGconn *pg = ks_db_conn(w->db);
    PGresult *res;
    struct ks_err err = {0};
    char state[6] = "";
    int failed = 0;
    enum outcome oc;

    w->tail = 0;
    while ((res = PQgetResult(pg)) != NULL) {
        ExecStatusType st = PQresultStatus(res);
        if (!failed && st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
            const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
            failed = 1;
            snprintf(state, sizeof(state), "%s", code ? code : "");
            if (ks_db_check(w->db, res, PGRES_COMMAND_OK, "batch commit", &err) == KS_OK)
                ks_err_set(&err, KS_EDB, 0, NULL, "batch commit failed");
        }
        PQclear(res);
    }
    if (!failed && PQtransactionStatus(pg) == PQTRANS_IDLE) {
        int64_t t_done = ks_clock_mono_us();
        ks_outbox_mark_done(w->ob, 1);
        ks_outbox_relay(w->ob);
        if (w->debug)
            ks_logf(KS_LOG_DEBUG, "worker.batch.committed", "tail=%" PRId64 " relay=%" PRId64
                    " us", t_done - w->tail_sent, ks_clock_mono_us() - t_done);
        for (size_t i = 0; i < w->nparts; i++)
            if (w->parts[i].batch_next >= 0)
                w->parts[i].expected = w->parts[i].batch_next;
        kafka_commit(w);
        w->fail_streak = 0;
        ks_metric_add(w->m_batches, 1);
        ks_metric_observe(w->m_lat, ks_clock_mono_us() - w->tail_t0);
        return OUT_DONE;
    }
    if (!failed) /* connection lost without a result: the outcome is unknown */
        ks_err_set(&err, KS_EDB, 1, NULL, "connection lost during commit");
    if (ks_db_ok(w->db) && PQtransactionStatus(pg) != PQTRANS_IDLE) {
        struct ks_err e2 = {0};
        if (pg_exec(w, "ROLLBACK", &e2) != KS_OK)
            ks_log(KS_LOG_WARN, "worker.rollback_failed", e2.msg, NULL);
    }
    ks_outbox_discard(w->ob);
    ks_outbox_mark_done(w->ob, 0);
    /* the handler's work went through and the end failed on a healthy server: a deferred
     * constraint at COMMIT, most likely one message's. The batch is read again and run
     * one message at a time (SET CONSTRAINTS ALL IMMEDIATE per message). */
    w->bug = 0;
    oc = wk_classify(w, &err, state, w->tail_isolated);
    if (oc == OUT_RETRY_ISOLATED) {
        ks_log(KS_LOG_WARN, "worker.batch.isolate", err.msg, NULL);
        w->isolate_next = 1;
    } else if (oc == OUT_FAILED) {
        w->failed_backoff = wk_batch_failed(w, &err);
    }
    return oc;
}

/* see worker_int.h */
void wk_drop_and_resync(struct ks_worker *w, int64_t delay_ms)
{
    wk_unsync(w);
    wk_batch_clear(&w->batch);
    w->ready = 0;
    w->next_sync = delay_ms > 0 ? ks_clock_wall_ms() + delay_ms : 0;
    w->sync_backoff = 100;
}

static void after_failure(struct ks_worker *w, enum outcome oc)
{
    wk_drop_and_resync(w, oc == OUT_FAILED ? w->failed_backoff : 0);
    if (oc == OUT_HALTED)
        w->halted = 1; /* unassigned and never synced again: see handler_bug */
    if (oc == OUT_FENCED) {
        /* someone else owns a partition of ours: reading positions now would take it back
         * (the epoch) from the group's real owner. Wait for our rebalance, which the next
         * polls bring; a minute at most, for a fence with no rebalance behind it. */
        w->fence_gen = w->generation;
        w->fence_until = ks_clock_wall_ms() + 60000;
    }
}

/* Waits for the tail in flight, if any, and applies its outcome. */
void wk_settle(struct ks_worker *w)
{
    enum outcome oc;
    if (w->tail && (oc = tail_finish(w)) != OUT_DONE)
        after_failure(w, oc);
}

/* Runs the collected batch: decode, transaction, and - while its tail runs on the
 * server - clears it and takes and decodes what is queued for the next one. The tail's
 * outputs go to Kafka as soon as its COMMIT is known, and only then does the next batch
 * go on collecting (up to the rest of its batch.wait, or until batch.gap passes with
 * nothing new): waiting first held every output of a committed batch back by up to
 * batch.wait, at every hop of the pipeline. */
void wk_process(struct ks_worker *w)
{
    struct ks_batch *b = &w->batch;
    enum outcome oc;
    int isolate = w->isolate_next;

    w->isolate_next = 0;
    w->tail_t0 = ks_clock_mono_us();
    wk_build_view(b);
    oc = transact(w, isolate);
    if (oc == OUT_RETRY_ISOLATED)
        oc = transact(w, 1);
    wk_batch_clear(b);
    if (oc != OUT_PENDING) {
        after_failure(w, oc);
        return;
    }
    if (!w->stop) {
        int64_t t0 = ks_clock_mono_us(), t1, t2, t3;
        size_t k;
        unsigned clears;
        wk_collect(w, 0);
        t1 = ks_clock_mono_us();
        wk_prepare(w, 0);
        wk_derive_ids(w);
        ks_outbox_poll(w->ob, 0); /* delivery reports of earlier batches */
        t2 = ks_clock_mono_us();
        w->ready = 1;
        wk_settle(w); /* committed: its outputs are relayed now */
        t3 = ks_clock_mono_us();
        if (w->ready && b->n == 0) {
            w->ready = 0; /* nothing queued: the loop collects, after its housekeeping */
        } else if (w->ready && !w->stop) {
            k = b->n;
            clears = b->clears;
            wk_collect(w, 1);
            wk_prepare(w, b->clears == clears ? k : 0);
            wk_derive_ids(w);
        }
        if (w->debug)
            ks_logf(KS_LOG_DEBUG, "worker.overlap",
                    "clear=%" PRId64 " collect=%" PRId64 " prepare=%" PRId64
                    " tail_wait=%" PRId64 " rest=%" PRId64 " us",
                    t0 - w->tail_sent, t1 - t0, t2 - t1, t3 - t2, ks_clock_mono_us() - t3);
        return;
    }
    wk_settle(w);
}

/* Whether this instance still owns the partitions of msgs[0..n): KS_ECONFLICT naming the
 * first one it does not (the batch in hand is then a zombie's: the runtime drops it like a
 * fenced commit). With SQL_OWNED_LOCK the rows stay locked to the end of the transaction. */
static enum ks_code owned_check(struct ks_worker *w, const struct ks_msg *const *msgs, size_t n,
                                int lock, struct ks_err *err)
{
    struct ks_pg_stmt *q = lock ? &w->q_owned_lock : &w->q_owned;
    struct part **parts = n ? malloc(n * sizeof(*parts)) : NULL;
    struct ks_pgarr topics, partitions, epochs;
    const char *params[4];
    PGresult *res = NULL;
    enum ks_code rc;
    size_t np = 0;

    if (n == 0) /* nothing to fence on: a journal commit would be unfenced */
        return ks_err_set(err, KS_EINVAL, 0, NULL, "ownership check of no message");
    if (!parts)
        return ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
    ks_pgarr_init(&topics);
    ks_pgarr_init(&partitions);
    ks_pgarr_init(&epochs);
    for (size_t i = 0; i < n; i++) {
        struct part *p = ((const struct item *)msgs[i])->p;
        size_t k = 0;
        while (k < np && parts[k] != p)
            k++;
        if (k < np)
            continue;
        parts[np++] = p;
        ks_pgarr_text(&topics, p->topic);
        ks_pgarr_int(&partitions, p->partition);
        ks_pgarr_int(&epochs, p->epoch);
    }
    if (!q->sql)
        *q = (struct ks_pg_stmt)KS_PG_STMT(lock ? "kasir_owned_lock" : "kasir_owned",
                                           lock ? SQL_OWNED_LOCK : SQL_OWNED, 4);
    params[0] = w->group;
    params[1] = ks_pgarr_str(&topics);
    params[2] = ks_pgarr_str(&partitions);
    params[3] = ks_pgarr_str(&epochs);
    if (!params[1] || !params[2] || !params[3]) {
        rc = ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
        goto out;
    }
    res = ks_pg_exec(ks_db_conn(w->jdb), q, params, NULL, NULL, 0);
    rc = ks_db_check(w->jdb, res, PGRES_TUPLES_OK, "ownership check", err);
    if (rc == KS_OK && (size_t)PQntuples(res) != np) {
        /* the first of ours (in msgs order) not among the rows: the error names it (the
         * last, when the others are all there) */
        size_t k = 0;
        for (; k + 1 < np; k++) {
            char part[16];
            int found = 0;
            snprintf(part, sizeof(part), "%d", (int)parts[k]->partition);
            for (int r = 0; r < PQntuples(res) && !found; r++)
                found = strcmp(PQgetvalue(res, r, 0), parts[k]->topic) == 0 &&
                        strcmp(PQgetvalue(res, r, 1), part) == 0;
            if (!found)
                break;
        }
        w->journal_fenced = 1;
        rc = ks_err_set(err, KS_ECONFLICT, 0, NULL,
                        "fenced: %s [%d] is owned by another instance now", parts[k]->topic,
                        (int)parts[k]->partition);
    }
out:
    PQclear(res);
    ks_pgarr_release(&topics);
    ks_pgarr_release(&partitions);
    ks_pgarr_release(&epochs);
    free(parts);
    return rc;
}

enum ks_code ks_batch_owned(struct ks_batch *b, const struct ks_msg *m, struct ks_err *err)
{
    struct ks_worker *w = b->w;
    if (!wk_pg_open(w, &w->jdb, err))
        return ks_err_set(err, KS_EDB, 1, NULL, "could not reach postgresql: %s", err->msg);
    return owned_check(w, &m, 1, 0, err);
}

enum ks_code ks_batch_journal(struct ks_batch *b, const struct ks_msg *const *msgs, size_t n,
                              struct ks_pg_stmt *stmt, const char *const *params,
                              struct ks_err *err)
{
    struct ks_worker *w = b->w;
    PGresult *res = NULL;
    enum ks_code rc;

    if (!wk_pg_open(w, &w->jdb, err))
        return ks_err_set(err, KS_EDB, 1, NULL, "could not reach postgresql: %s", err->msg);
    if ((rc = ks_db_exec(w->jdb, "BEGIN", err)) != KS_OK)
        return rc;
    if ((rc = owned_check(w, msgs, n, 1, err)) != KS_OK)
        goto out;
    res = ks_pg_exec(ks_db_conn(w->jdb), stmt, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        rc = ks_db_check(w->jdb, res, PGRES_COMMAND_OK, "journal", err);
    PQclear(res);
    if (rc == KS_OK && (rc = ks_db_exec(w->jdb, "COMMIT", err)) == KS_OK)
        ks_metric_add(w->m_journals, 1);
out:
    if (rc != KS_OK && ks_db_ok(w->jdb) &&
        PQtransactionStatus(ks_db_conn(w->jdb)) != PQTRANS_IDLE) {
        struct ks_err e2 = {0};
        if (ks_db_exec(w->jdb, "ROLLBACK", &e2) != KS_OK)
            ks_log(KS_LOG_WARN, "worker.rollback_failed", e2.msg, NULL);
    }
    return rc;
}
