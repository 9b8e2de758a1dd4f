/* reader.c - PostgreSQL off the server threads: credential lookups, token requests, reads.
 *
 * A server thread never waits for PostgreSQL: a request that needs a query is suspended
 * and queued here (ing_defer); one of readers.threads threads, each with its own
 * connection, runs it and resumes the request. Every job has a deadline (auth:
 * auth.timeout, reads: readers.read_timeout) that covers its time in the queue, the
 * connection and the query: a hung or unreachable server costs a request at most that,
 * then a 503, and never a server thread. Lookups of credentials go before reads.
 * Connections are opened asynchronously within the deadline; one found closed by the
 * server before a statement is sent (a restart) is replaced, and a read whose connection
 * was lost is retried once on a fresh one; a write (ing_rdb_write) is not: its outcome is
 * unknown, after a timeout too, and it is answered 500 outcome_unknown saying so. */
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"
#include "producers/ingress/ingress.h"
#include "lib/banned.h"

struct ing_rdb {
    PGconn *c;
    int64_t retry_at_us; /* after a failed connect, fail fast until then */
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static struct ing_req *aq_head, *aq_tail, *rq_head, *rq_tail;
static int queued, stopping;
static pthread_t threads[16];
static int nthreads;

static void push(struct ing_req **head, struct ing_req **tail, struct ing_req *r)
{
    r->jnext = NULL;
    if (*tail)
        (*tail)->jnext = r;
    else
        *head = r;
    *tail = r;
}

static struct ing_req *pop(struct ing_req **head, struct ing_req **tail)
{
    struct ing_req *r = *head;

    if (r) {
        *head = r->jnext;
        if (!*head)
            *tail = NULL;
    }
    return r;
}

/* at the head of its queue (it has waited already, up to a second; the reads let go
 * together run in no particular order), and outside the count of readers.queue_max: it gave
 * its place back when it was parked, and taking one now would refuse new requests (503)
 * the moment a crowd of parked reads is let go (test 229). How many can be parked is
 * bounded by the connections (http.max_connections, per address too), not by the queue */
void ing_reader_requeue(struct ing_req *r)
{
    struct ing_req **head = r->job_auth ? &aq_head : &rq_head;
    struct ing_req **tail = r->job_auth ? &aq_tail : &rq_tail;

    pthread_mutex_lock(&mu);
    r->requeued = 1;
    r->jnext = *head;
    *head = r;
    if (!*tail)
        *tail = r;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
}

void ing_defer_read(struct ing_req *r, void (*fn)(struct ing_req *, struct ing_rdb *))
{
    struct ing_problem p;

    if (ing_defer(r, fn, 0, ING.read_timeout_ms, &p) != 0)
        ing_respond_problem(r, &p);
}

int ing_defer(struct ing_req *r, void (*fn)(struct ing_req *, struct ing_rdb *), int auth,
              int64_t timeout_ms, struct ing_problem *p)
{
    pthread_mutex_lock(&mu);
    if (stopping || queued >= ING.reader_queue_max) {
        pthread_mutex_unlock(&mu);
        ing_problem(p, "unavailable", NULL, "too many requests are waiting for the database");
        return -1;
    }
    queued++; /* the place is taken now; the request joins the queue once suspended */
    pthread_mutex_unlock(&mu);
    r->job = fn;
    r->job_auth = auth;
    r->job_deadline_us = ks_clock_mono_us() + timeout_ms * 1000;
    ing_suspend(r);
    pthread_mutex_lock(&mu);
    if (auth)
        push(&aq_head, &aq_tail, r);
    else
        push(&rq_head, &rq_tail, r);
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
    return 0;
}

static void drop(struct ing_rdb *db)
{
    PQfinish(db->c);
    db->c = NULL;
}

/* The DSN's own "options" (-c settings of its operator), then the readers'
 * statement_timeout: given after the DSN, whose expanded values would otherwise replace
 * it (libpq keeps the last value of a repeated keyword), the timeout a read needs is never
 * lost and the operator's settings are kept. Into out; 0, or -1 when they do not fit. */
static int reader_options(char *out, size_t cap)
{
    PQconninfoOption *o = PQconninfoParse(ING.pg_dsn, NULL), *x;
    const char *dsn_opts = "";
    int n;

    for (x = o; x && x->keyword; x++)
        if (strcmp(x->keyword, "options") == 0 && x->val)
            dsn_opts = x->val;
    n = snprintf(out, cap, "%s%s-c statement_timeout=%lld", dsn_opts, *dsn_opts ? " " : "",
                 (long long)ING.read_timeout_ms);
    PQconninfoFree(o);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

PGconn *ing_pg_connect_by(const char *app, int64_t deadline_us)
{
    char opts[1024];
    const char *keys[] = {"connect_timeout", "keepalives", "keepalives_idle",
                          "keepalives_interval", "keepalives_count", "application_name",
                          "dbname", "options", NULL};
    const char *vals[9];
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    PGconn *c;

    if (reader_options(opts, sizeof(opts)) != 0) {
        ks_log(KS_LOG_ERROR, "ingress.reader.connect_failed",
               "the DSN's options are too long to add statement_timeout to", "application_name",
               app, NULL);
        return NULL;
    }
    vals[0] = "2";
    vals[1] = "1";
    vals[2] = "10";
    vals[3] = "5";
    vals[4] = "3";
    vals[5] = app;
    vals[6] = ING.pg_dsn;
    vals[7] = opts;
    vals[8] = NULL;
    c = PQconnectStartParams(keys, vals, 1);
    if (!c || PQstatus(c) == CONNECTION_BAD)
        goto fail;
    for (;;) {
        struct pollfd pfd;
        int64_t left = deadline_us - ks_clock_mono_us();
        if (st == PGRES_POLLING_OK)
            return c;
        if (st == PGRES_POLLING_FAILED || left <= 0)
            goto fail;
        pfd.fd = PQsocket(c);
        pfd.events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT;
        pfd.revents = 0;
        if (poll(&pfd, 1, (int)(left / 1000) + 1) < 0)
            goto fail;
        if (pfd.revents || st == PGRES_POLLING_ACTIVE)
            st = PQconnectPoll(c);
    }
fail:
    ks_log(KS_LOG_DEBUG, "ingress.reader.connect_failed",
           c ? PQerrorMessage(c) : "out of memory", "application_name", app, NULL);
    PQfinish(c);
    return NULL;
}

/* a connection within the deadline: 0, or -1 (and none tried again for 250 ms) */
static int connect_by(struct ing_rdb *db, int64_t deadline_us)
{
    if (ks_clock_mono_us() < db->retry_at_us)
        return -1;
    if ((db->c = ing_pg_connect_by("kasir-ingress-reader", deadline_us)) != NULL)
        return 0;
    db->retry_at_us = ks_clock_mono_us() + 250000;
    return -1;
}

/* the connection is usable as far as can be told without sending anything: a server
 * that restarted closed it, which shows as a readable socket */
static int alive(struct ing_rdb *db)
{
    struct pollfd pfd;

    if (!db->c || PQstatus(db->c) != CONNECTION_OK)
        return 0;
    pfd.fd = PQsocket(db->c);
    pfd.events = POLLIN;
    pfd.revents = 0;
    if (poll(&pfd, 1, 0) > 0) {
        PGnotify *n;
        if (!PQconsumeInput(db->c) || PQstatus(db->c) != CONNECTION_OK)
            return 0;
        while ((n = PQnotifies(db->c)) != NULL)
            PQfreemem(n);
    }
    return 1;
}

/* the result of the statement sent on c, by deadline_us (see ing_pg_exec_by) */
static PGresult *result_by(PGconn *c, int64_t deadline_us, int *timed_out, int *lost)
{
    PGresult *res = NULL, *x;

    /* every PQgetResult only once PQisBusy says it will not wait: the last one (NULL) needs
     * ReadyForQuery, which a stalled server may never send after the result itself */
    for (;;) {
        while (PQisBusy(c)) {
            struct pollfd pfd;
            int64_t left = deadline_us - ks_clock_mono_us();
            if (left <= 0) {
                *timed_out = 1;
                PQclear(res);
                return NULL;
            }
            pfd.fd = PQsocket(c);
            pfd.events = POLLIN;
            pfd.revents = 0;
            if (poll(&pfd, 1, (int)(left / 1000) + 1) > 0 && !PQconsumeInput(c)) {
                *lost = 1;
                return res; /* whole when it came before the loss (a read may use it) */
            }
        }
        if (!(x = PQgetResult(c)))
            break;
        if (PQresultStatus(x) == PGRES_COPY_OUT || PQresultStatus(x) == PGRES_COPY_IN ||
            PQresultStatus(x) == PGRES_COPY_BOTH) {
            /* no statement of the ingress copies: a server (or something posing as one)
             * that answers with a COPY would have PQgetResult return it again and again,
             * without waiting, past any deadline. The connection is given up */
            PQclear(x);
            PQclear(res);
            *lost = 1;
            return NULL;
        }
        if (res && PQresultStatus(x) == PGRES_FATAL_ERROR) {
            /* an error after the result (a deferred constraint at the commit, which an
             * implicit transaction makes at Sync): the statement's effects are gone, and
             * its answer is this error, not the result before it */
            PQclear(res);
            res = x;
        } else if (res) {
            PQclear(x);
        } else {
            res = x;
        }
    }
    if (PQstatus(c) != CONNECTION_OK)
        *lost = 1;
    return res;
}

PGresult *ing_pg_exec_by(PGconn *c, const char *sql, int n, const char *const *params,
                         int64_t deadline_us, int *timed_out, int *lost)
{
    if (!PQsendQueryParams(c, sql, n, NULL, params, NULL, NULL, 0)) {
        *lost = 1;
        return NULL;
    }
    return result_by(c, deadline_us, timed_out, lost);
}

/* ing_rdb_query and ing_rdb_write: a statement that writes is never sent twice */
static PGresult *query(struct ing_rdb *db, struct ing_req *r, const char *sql, int n,
                       const char *const *params, struct ing_problem *p, int writes)
{
    int attempt;

    for (attempt = 0; attempt < 2; attempt++) {
        int timed_out = 0, lost = 0;
        PGresult *res;

        if (ks_clock_mono_us() >= r->job_deadline_us) {
            ing_problem(p, "unavailable", NULL, "the database did not answer in time");
            return NULL;
        }
        if (!alive(db)) {
            drop(db);
            if (connect_by(db, r->job_deadline_us) != 0) {
                ing_problem(p, "unavailable", NULL, "the database is unreachable");
                return NULL;
            }
        }
        if (writes && r->job_deadline_us - ks_clock_mono_us() < 250000) {
            /* too little time to wait for its answer: not sent, so surely not done */
            ing_problem(p, "unavailable", NULL, "the database did not answer in time");
            return NULL;
        }
        res = ing_pg_exec_by(db->c, sql, n, params, r->job_deadline_us, &timed_out, &lost);
        if ((timed_out || lost) && writes && res && PQresultStatus(res) == PGRES_FATAL_ERROR &&
            PQresultErrorField(res, PG_DIAG_SQLSTATE)) {
            /* the server's own error came first: its transaction is rolled back */
            ks_log(KS_LOG_WARN, "ingress.write.failed", PQresultErrorMessage(res), "trace_id",
                   r->trace_id, NULL);
            PQclear(res);
            drop(db);
            ing_problem(p, "unavailable", NULL, "the database refused the write");
            return NULL;
        }
        if ((timed_out || lost) && writes) {
            /* it may have been committed (it may still run after a timeout; an implicit
             * transaction commits at Sync, after its result): asking again could do it
             * twice, so the answer says so and is not one to retry blindly (500, no
             * Retry-After) */
            PQclear(res);
            drop(db);
            ks_log(KS_LOG_WARN, "ingress.write.unknown", timed_out
                   ? "a write did not answer in time: its outcome is unknown"
                   : "the connection was lost while a write ran: its outcome is unknown",
                   "trace_id", r->trace_id, NULL);
            ing_problem(p, "outcome_unknown", NULL, "the database %s: it may have been "
                        "done, or may still be done (a database that hangs runs it when it "
                        "comes back); look before asking again, or ask with an "
                        "idempotency_key", timed_out ? "did not answer in time"
                                                     : "connection was lost");
            return NULL;
        }
        if (timed_out) {
            /* the statement may still run; the connection goes with it */
            drop(db);
            ing_problem(p, "unavailable", NULL, "the database did not answer in time");
            return NULL;
        }
        if (res && PQresultStatus(res) == PGRES_TUPLES_OK)
            return res;
        if (lost) {
            PQclear(res);
            drop(db);
            continue; /* a read: once more on a fresh connection */
        }
        ks_log(KS_LOG_WARN, writes ? "ingress.write.failed" : "ingress.read.failed",
               res ? PQresultErrorMessage(res) : PQerrorMessage(db->c), "trace_id", r->trace_id,
               NULL);
        PQclear(res);
        ing_problem(p, "unavailable", NULL, writes ? "the database refused the write"
                                                   : "could not read from the database");
        return NULL;
    }
    ing_problem(p, "unavailable", NULL, "the database is unreachable");
    return NULL;
}

PGresult *ing_rdb_query(struct ing_rdb *db, struct ing_req *r, const char *sql, int n,
                        const char *const *params, struct ing_problem *p)
{
    return query(db, r, sql, n, params, p, 0);
}

PGresult *ing_rdb_write(struct ing_rdb *db, struct ing_req *r, const char *sql, int n,
                        const char *const *params, struct ing_problem *p)
{
    return query(db, r, sql, n, params, p, 1);
}

static void *reader_main(void *arg)
{
    struct ing_rdb db = {0};
    (void)arg;

    for (;;) {
        struct ing_req *r;

        pthread_mutex_lock(&mu);
        while (!aq_head && !rq_head && !stopping)
            pthread_cond_wait(&cv, &mu);
        r = pop(&aq_head, &aq_tail);
        if (!r)
            r = pop(&rq_head, &rq_tail);
        if (!r) {
            pthread_mutex_unlock(&mu);
            break; /* stopping, nothing queued */
        }
        if (r->requeued)
            r->requeued = 0; /* had no place in the count (ing_reader_requeue) */
        else
            queued--;
        pthread_mutex_unlock(&mu);
        r->job(r, &db);
    }
    drop(&db);
    return NULL;
}

int ing_reader_start(void)
{
    int i, n = ING.readers < 1 ? 1 : ING.readers > 16 ? 16 : ING.readers;

    stopping = 0;
    for (i = 0; i < n; i++) {
        if (pthread_create(&threads[i], NULL, reader_main, NULL) != 0)
            return -1;
        nthreads++;
    }
    return 0;
}

int ing_reader_stop(void)
{
    int i;

    pthread_mutex_lock(&mu);
    stopping = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    for (i = 0; i < nthreads; i++)
        if (ing_join_by(threads[i], "reader", 0) != 0)
            return -1;
    nthreads = 0;
    return 0;
}
