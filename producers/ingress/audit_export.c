/* audit_export.c - GET /v1/admin/audit-export?from=&to=&format=jsonl|csv (scope admin):
 * the calling partner's journal entries (with their postings) and the admin acts on its
 * money (hold decisions, adjustment requests and decisions, payout retries, each with who
 * and why) in [from, to), in time order, as JSON lines (one record per entry or act) or
 * CSV (RFC 4180, CRLF, a header line; one row per posting of an entry, one per act).
 *
 * Streamed in constant memory whatever the range: a reader thread opens a connection of
 * the export's own and declares a server-side cursor in a REPEATABLE READ, READ ONLY
 * snapshot (so the file is one consistent picture); a thread per export FETCHes it in
 * chunks of EXPORT_FETCH rows into a buffer of at most EXPORT_BUF bytes, waiting while the
 * client has not taken the last chunk; MHD reads the buffer through a content reader,
 * suspending the connection while it is empty (the producer resumes it). The lines are
 * made by PostgreSQL, so the C side only moves bytes. At most EXPORT_MAX exports run at
 * once (503 beyond: each holds a connection and a snapshot). A failure after the first
 * byte ends the response early (chunked encoding without its last chunk: the client sees
 * the transfer fail, never a silently short file) and without the end record that closes
 * every whole export (JSONL_END, CSV_END): a client that cannot see the transfer fail (HTTP/1.0,
 * a close-delimited body) sees that record missing. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "lib/log.h"
#include "producers/ingress/ingress.h"
#include "lib/banned.h"

#define EXPORT_FETCH "1000" /* rows per FETCH */
#define EXPORT_BUF (256 * 1024)
#define EXPORT_MAX 2

/* The records, each with its time (at), a source rank and a number ordering records of
 * one time; $1 partner, $2 from, $3 to. ORDER BY sorts in PostgreSQL (work_mem, then temp
 * files), never in the ingress. */
#define RECORDS(entry_cols, entry_from)                                                        \
    "SELECT line FROM ("                                                                      \
    " SELECT e.posted_at AS at, 1 AS src, e.entry_id AS num, " entry_cols " AS line"          \
    "   FROM ledger_entries e " entry_from                                                    \
    "  WHERE e.partner_id = $1 AND e.posted_at >= $2::timestamptz AND e.posted_at < $3::timestamptz" \
    " UNION ALL"                                                                              \
    " SELECT h.decided_at, 2, 0, " ACT("h.decided_at", "'hold_' || lower(h.status)", "h.hold_id", "h.kind",   \
                                       "h.decided_by", "h.decision_note", "NULL::bigint",     \
                                       "NULL")                                                \
    "   FROM risk_holds h WHERE h.partner_id = $1 AND h.decided_at >= $2::timestamptz"        \
    "    AND h.decided_at < $3::timestamptz"                                                  \
    " UNION ALL"                                                                              \
    " SELECT a.requested_at, 3, 0, " ACT("a.requested_at", "'adjustment_requested'", "a.adjustment_id",         \
                                         "a.counter", "a.requested_by", "a.reason",           \
                                         "a.amount_minor", "a.currency")                      \
    "   FROM ledger_adjustments a WHERE a.partner_id = $1 AND a.requested_at >= $2::timestamptz" \
    "    AND a.requested_at < $3::timestamptz"                                                \
    " UNION ALL"                                                                              \
    " SELECT a.decided_at, 4, 0, " ACT("a.decided_at", "'adjustment_' || lower(a.status)", "a.adjustment_id", \
                                       "a.counter", "a.decided_by", "a.decision_note",        \
                                       "a.amount_minor", "a.currency")                        \
    "   FROM ledger_adjustments a WHERE a.partner_id = $1 AND a.decided_at >= $2::timestamptz" \
    "    AND a.decided_at < $3::timestamptz"                                                  \
    " UNION ALL"                                                                              \
    " SELECT r.requested_at, 5, 0, " ACT("r.requested_at", "'payout_retry'", "r.payout_id",                     \
                                         "'retry_of:' || r.retry_of || ' ' || r.failure_code", \
                                         "r.requested_by", "r.reason", "NULL::bigint", "NULL") \
    "   FROM ledger_payout_retries r WHERE r.partner_id = $1 AND r.requested_at >= $2::timestamptz" \
    "    AND r.requested_at < $3::timestamptz"                                                \
    ") x ORDER BY at, src, num, line"

#define TS(x) "to_char(" x " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

/* JSON lines: an entry with its postings; an act */
#define ACT(at, record, id, what, by, why, amt, cur)                                              \
    "jsonb_strip_nulls(jsonb_build_object('record', " record ", 'at', " TS(at)            \
    ", 'id', " id ", 'detail', " what ", 'by', " by ", 'reason', " why                        \
    ", 'amount_minor', " amt ", 'currency', " cur "))::text"
static const char SQL_JSONL[] = RECORDS(
    "jsonb_build_object('record', 'entry', 'at', " TS("e.posted_at") ", 'id', e.entry_id::text,"
    " 'kind', e.kind, 'journal_id', e.journal_id, 'reference', e.reference, 'chain', e.chain,"
    " 'seq', e.seq, 'hash', encode(e.hash, 'hex'), 'postings',"
    " (SELECT jsonb_agg(jsonb_build_object('account', p.account, 'direction',"
    "   CASE WHEN p.amount_minor > 0 THEN 'DEBIT' ELSE 'CREDIT' END, 'amount_minor',"
    "   abs(p.amount_minor), 'currency', p.currency) ORDER BY p.line)"
    "  FROM ledger_postings p WHERE p.entry_id = e.entry_id))::text",
    "");
#undef ACT

/* CSV: every text field quoted (RFC 4180 allows it), quotes doubled; one row per posting */
#define Q(x) "coalesce('\"' || replace(" x ", '\"', '\"\"') || '\"', '')"
#define ACT(at, record, id, what, by, why, amt, cur)                                              \
    Q(record) " || ',' || " Q(TS(at)) " || ',' || " Q(id) " || ',' || " Q(what)           \
    " || ',,,,,' || coalesce(abs(" amt ")::text, '') || ',' || " Q(cur) " || ',' || "          \
    "coalesce(CASE WHEN " amt " < 0 THEN '\"debit\"' WHEN " amt " > 0 THEN '\"credit\"' END, '')" \
    " || ',' || " Q(by) " || ',' || " Q(why)
static const char SQL_CSV[] = RECORDS(
    Q("'entry'") " || ',' || " Q(TS("e.posted_at")) " || ',' || " Q("e.entry_id::text")
    " || ',' || " Q("e.kind") " || ',' || " Q("e.journal_id") " || ',' || " Q("e.reference")
    " || ',' || " Q("p.account") " || ',' || p.line::text || ',' || abs(p.amount_minor)::text"
    " || ',' || " Q("p.currency") " || ',' || "
    "CASE WHEN p.amount_minor > 0 THEN '\"DEBIT\"' ELSE '\"CREDIT\"' END || ',,'",
    "JOIN ledger_postings p ON p.entry_id = e.entry_id");
#undef ACT
#undef Q
static const char CSV_HEADER[] =
    "record,at,id,kind_or_detail,journal_id,reference,account,line,amount_minor,currency,"
    "direction,by,reason\r\n";
/* the last line of a whole export, with the number of lines before it (CSV: rows after the
 * header); a file without it is incomplete */
#define JSONL_END "{\"record\": \"end\", \"records\": %ld}\n"
#define CSV_END "\"end\",,,\"records=%ld\",,,,,,,,,\r\n"

struct export {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *buf;
    size_t head, len, cap; /* bytes waiting: buf[head, len) */
    int done, failed, abandoned, suspended, refs, csv, late;
    int64_t deadline_us; /* readers.export_timeout from the request: the snapshot's end */
    struct MHD_Connection *conn;
    PGconn *pg;
    char trace_id[33];
    long rows;
};

static _Atomic int running;
/* the exports whose response is live, for the cut at the drain's timeout */
static pthread_mutex_t live_mu = PTHREAD_MUTEX_INITIALIZER;
static struct export *live[EXPORT_MAX + 1];
static _Atomic int cutting;

static void export_unref(struct export *x)
{
    int last;

    pthread_mutex_lock(&x->mu);
    last = --x->refs == 0;
    pthread_mutex_unlock(&x->mu);
    if (!last)
        return;
    if (x->pg)
        PQfinish(x->pg);
    pthread_mutex_destroy(&x->mu);
    pthread_cond_destroy(&x->cv);
    free(x->buf);
    free(x);
    running--;
}

/* with x->mu held: the client may read again. A stream waiting for rows is a suspended
 * connection like any request's (ing_inflight): the drain must not stop the server under
 * it (libmicrohttpd aborts) */
static void wake_reader(struct export *x)
{
    if (x->suspended && !x->abandoned) {
        x->suspended = 0;
        ing_inflight--;
        MHD_resume_connection(x->conn);
    }
}

int ing_audit_export_cut(void)
{
    int n = 0;

    cutting = 1;
    pthread_mutex_lock(&live_mu);
    for (int i = 0; i < EXPORT_MAX + 1; i++) {
        struct export *x = live[i];
        if (!x)
            continue;
        pthread_mutex_lock(&x->mu);
        wake_reader(x); /* its next read ends the response */
        pthread_mutex_unlock(&x->mu);
        n++;
    }
    pthread_mutex_unlock(&live_mu);
    if (n)
        ks_logf(KS_LOG_WARN, "ingress.export.cut", "%d audit exports cut at the drain timeout "
                "(their clients see an incomplete response and ask again)", n);
    return n;
}

/* Appends s (n bytes) once the buffer has room; 0, or -1 when the client went away or
 * read too slowly to be done by the export's deadline (x->late). */
static int put(struct export *x, const char *s, size_t n)
{
    struct timespec until = ks_clock_mono_at(x->deadline_us);
    int rc = 0;

    pthread_mutex_lock(&x->mu);
    while (!x->abandoned && !x->late && x->len - x->head >= EXPORT_BUF / 2)
        if (pthread_cond_timedwait(&x->cv, &x->mu, &until) == ETIMEDOUT)
            x->late = 1;
    if (x->abandoned || x->late) {
        rc = -1;
        goto out;
    }
    if (x->head > 0) {
        memmove(x->buf, x->buf + x->head, x->len - x->head);
        x->len -= x->head;
        x->head = 0;
    }
    if (x->len + n > x->cap) {
        size_t cap = x->len + n + EXPORT_BUF / 4;
        char *nb = realloc(x->buf, cap);
        if (!nb) {
            rc = -1;
            goto out;
        }
        x->buf = nb;
        x->cap = cap;
    }
    memcpy(x->buf + x->len, s, n);
    x->len += n;
    wake_reader(x);
out:
    pthread_mutex_unlock(&x->mu);
    return rc;
}

static void *export_main(void *arg)
{
    struct export *x = arg;
    const char *eol = x->csv ? "\r\n" : "\n";
    PGresult *res = NULL;
    int failed = 0, timed_out = 0, lost = 0;

    for (;;) {
        int n;
        int64_t by = ks_clock_mono_us() + (ING.export_fetch_timeout_ms + 5000) * 1000;
        if (ks_clock_mono_us() >= x->deadline_us) {
            failed = 1; /* late: marked below */
            break;
        }
        /* each chunk by its deadline: a database that hangs must not hold the export's slot,
         * its connection and this thread for good (a server that answers ends the statement
         * itself at its statement_timeout, 57014; this is 5 s later), nor the export its
         * snapshot past readers.export_timeout */
        if (by > x->deadline_us + 5000000)
            by = x->deadline_us + 5000000;
        res = ing_pg_exec_by(x->pg, "FETCH " EXPORT_FETCH " FROM kasir_export", 0, NULL, by,
                             &timed_out, &lost);
        if (PQresultStatus(res) != PGRES_TUPLES_OK || timed_out || lost) {
            const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
            ks_log(KS_LOG_ERROR, "ingress.export.failed",
                   timed_out || (st && strcmp(st, "57014") == 0)
                       ? "no rows from the database within readers.export_fetch_timeout"
                   : lost    ? "the connection to the database was lost"
                             : PQerrorMessage(x->pg),
                   "trace_id", x->trace_id, NULL);
            failed = 1;
            break;
        }
        if ((n = PQntuples(res)) == 0)
            break;
        for (int t = 0; t < n && !failed; t++)
            if (put(x, PQgetvalue(res, t, 0), (size_t)PQgetlength(res, t, 0)) != 0 ||
                put(x, eol, strlen(eol)) != 0)
                failed = 1;
        x->rows += n;
        PQclear(res);
        res = NULL;
        if (failed)
            break;
    }
    PQclear(res);
    if (failed && !x->late && ks_clock_mono_us() >= x->deadline_us) {
        pthread_mutex_lock(&x->mu); /* past the deadline, in a FETCH or before one: late */
        x->late = 1;
        pthread_mutex_unlock(&x->mu);
    }
    if (x->late)
        ks_log(KS_LOG_WARN, "ingress.export.failed", "the export did not end within "
               "readers.export_timeout: cut (a snapshot held for it holds back the database's "
               "cleanup)", "trace_id", x->trace_id, NULL);
    if (!failed) {
        /* the end record: the proof that the file is whole, for every client (an HTTP/1.0
         * client or proxy reads a body cut short as one that ended: it has no chunking) */
        char end[96];
        int k = x->csv ? snprintf(end, sizeof(end), CSV_END, x->rows)
                       : snprintf(end, sizeof(end), JSONL_END, x->rows);
        if (put(x, end, (size_t)k) != 0)
            failed = 1;
    }
    if (timed_out || lost) {
        PQfinish(x->pg); /* the statement may still run: the connection goes, not a ROLLBACK */
        x->pg = NULL;
    } else {
        PQclear(ing_pg_exec_by(x->pg, "ROLLBACK", 0, NULL,
                               ks_clock_mono_us() + ING.read_timeout_ms * 1000, &timed_out,
                               &lost));
    }
    ks_log(KS_LOG_INFO, "ingress.export.done", failed ? "audit export ended early"
                                                      : "audit export sent",
           "trace_id", x->trace_id, NULL);
    pthread_mutex_lock(&x->mu);
    x->done = 1;
    x->failed = failed;
    if (x->late && !x->abandoned) {
        /* a client reading a trickle would keep the connection, and the export's slot,
         * until it had drained what libmicrohttpd and the kernel already hold for it: the
         * connection goes now (libmicrohttpd sees it fail and closes it; test 421) */
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(x->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci)
            shutdown(ci->connect_fd, SHUT_RDWR);
    }
    wake_reader(x);
    pthread_mutex_unlock(&x->mu);
    export_unref(x);
    return NULL;
}

/* MHD: the next bytes of the export */
static ssize_t export_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct export *x = cls;
    ssize_t n;
    (void)pos;

    pthread_mutex_lock(&x->mu);
    if (cutting || x->late) {
        /* the stop, or past readers.export_timeout: an incomplete response, at once (the
         * rest of the buffer is not sent: the response ends, and with it the slot) */
        n = MHD_CONTENT_READER_END_WITH_ERROR;
    } else if (x->len > x->head) {
        size_t k = x->len - x->head < max ? x->len - x->head : max;
        memcpy(buf, x->buf + x->head, k);
        x->head += k;
        if (x->head == x->len)
            x->head = x->len = 0;
        pthread_cond_signal(&x->cv);
        n = (ssize_t)k;
    } else if (x->done) {
        n = x->failed ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
    } else {
        /* nothing yet: off MHD's loop until the producer resumes the connection */
        x->suspended = 1;
        ing_inflight++;
        MHD_suspend_connection(x->conn);
        n = 0;
    }
    pthread_mutex_unlock(&x->mu);
    return n;
}

/* MHD: the response is gone (sent, or the client left) */
static void export_free(void *cls)
{
    struct export *x = cls;

    pthread_mutex_lock(&live_mu);
    for (int i = 0; i < EXPORT_MAX + 1; i++)
        if (live[i] == x)
            live[i] = NULL;
    pthread_mutex_unlock(&live_mu);
    pthread_mutex_lock(&x->mu);
    x->abandoned = 1;
    pthread_cond_signal(&x->cv);
    pthread_mutex_unlock(&x->mu);
    export_unref(x);
}

/* "2026-12-01" or an RFC 3339 time: digits, '-', ':', 'T', 'Z', '.', '+'; PostgreSQL
 * parses it (a bad one is a 400 naming the parameter, from the DECLARE) */
static int time_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n < 10 || n > 35 || s[4] != '-' || s[7] != '-')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || strchr("-:TZ.+", s[i])))
            return 0;
    return 1;
}

/* why a step of the set-up failed, for its 503 */
static void setup_failed(struct ing_problem *p, int timed_out, int lost)
{
    ing_problem(p, "unavailable", NULL, "%s; retry later",
                timed_out ? "the database did not answer in time"
                : lost    ? "the connection to the database was lost"
                          : "the database refused the export");
}

/* reader thread: the export's connection, snapshot and cursor, then the stream */
static void export_job(struct ing_req *r, struct ing_rdb *db)
{
    const char *from = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "from");
    const char *to = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "to");
    const char *fmt = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "format");
    const char *params[3] = {r->partner_id, from, to};
    struct ing_problem p;
    struct export *x = NULL;
    PGresult *res = NULL;
    pthread_t th;
    char sql[sizeof(SQL_CSV) + sizeof(SQL_JSONL) + 64];
    int timed_out = 0, lost = 0;
    (void)db;

    if (!(x = calloc(1, sizeof(*x))) || !(x->buf = malloc(EXPORT_BUF))) {
        free(x); /* no reference yet: export_unref would leak it and its slot */
        x = NULL;
        ing_problem(&p, "internal", NULL, "out of memory");
        goto fail;
    }
    pthread_mutex_init(&x->mu, NULL);
    if (ks_cond_init_mono(&x->cv) != 0) {
        pthread_mutex_destroy(&x->mu);
        free(x->buf);
        free(x);
        x = NULL;
        ing_problem(&p, "internal", NULL, "out of memory");
        goto fail;
    }
    x->deadline_us = ks_clock_mono_us() + ING.export_timeout_ms * 1000;
    x->cap = EXPORT_BUF;
    x->csv = fmt && strcmp(fmt, "csv") == 0;
    x->conn = r->conn;
    x->refs = 1;
    snprintf(x->trace_id, sizeof(x->trace_id), "%s", r->trace_id);
    /* the set-up runs on a reader thread: each step by the job's deadline (a database
     * that hangs must not take the reader with it); the export then streams on its own */
    if (!(x->pg = ing_pg_connect_by("kasir-ingress-export", r->job_deadline_us))) {
        ing_problem(&p, "unavailable", NULL, "the database is unreachable; retry later");
        goto fail;
    }
    res = ing_pg_exec_by(x->pg, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL,
                         r->job_deadline_us, &timed_out, &lost);
    if (PQresultStatus(res) == PGRES_COMMAND_OK && !lost) {
        /* each FETCH (a statement) may take readers.export_fetch_timeout on the server too,
         * and no more than the whole export may: past it the server ends it itself,
         * instead of sorting on for a client gone */
        char set[80];
        snprintf(set, sizeof(set), "SET LOCAL statement_timeout = %lld",
                 (long long)(ING.export_fetch_timeout_ms < ING.export_timeout_ms
                                 ? ING.export_fetch_timeout_ms
                                 : ING.export_timeout_ms));
        PQclear(res);
        res = ing_pg_exec_by(x->pg, set, 0, NULL, r->job_deadline_us, &timed_out, &lost);
    }
    if (PQresultStatus(res) != PGRES_COMMAND_OK || lost) {
        setup_failed(&p, timed_out, lost);
        goto fail;
    }
    PQclear(res);
    snprintf(sql, sizeof(sql), "DECLARE kasir_export NO SCROLL CURSOR FOR %s",
             x->csv ? SQL_CSV : SQL_JSONL);
    res = ing_pg_exec_by(x->pg, sql, 3, params, r->job_deadline_us, &timed_out, &lost);
    if (timed_out || lost || !res) {
        setup_failed(&p, timed_out, 1);
        goto fail;
    }
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (st && strncmp(st, "22", 2) == 0) /* a time PostgreSQL cannot read */
            ing_problem(&p, "query_invalid", "from", "from and to must be RFC 3339 times");
        else
            ing_problem(&p, "unavailable", NULL, "the database refused the export; retry later");
        goto fail;
    }
    PQclear(res);
    res = NULL;
    if (x->csv && put(x, CSV_HEADER, strlen(CSV_HEADER)) != 0) {
        ing_problem(&p, "internal", NULL, "out of memory");
        goto fail;
    }
    x->refs = 2; /* the producer's and the response's */
    if (pthread_create(&th, NULL, export_main, x) != 0) {
        x->refs = 1;
        ing_problem(&p, "unavailable", NULL, "no thread for the export; retry later");
        goto fail;
    }
    pthread_detach(th);
    pthread_mutex_lock(&live_mu);
    for (int i = 0; i < EXPORT_MAX + 1; i++)
        if (!live[i]) {
            live[i] = x;
            break;
        }
    pthread_mutex_unlock(&live_mu);
    ks_log(KS_LOG_INFO, "ingress.export.started", "audit export", "trace_id", r->trace_id,
           "partner", r->partner_id, "by", r->cred_id, "from", from, "to", to, NULL);
    r->status = 200;
    r->ctype = x->csv ? "text/csv; charset=utf-8" : "application/jsonl";
    r->stream = export_read;
    r->stream_cls = x;
    r->stream_free = export_free;
    ing_req_done(r);
    return;
fail:
    PQclear(res);
    if (x)
        export_unref(x);
    else
        running--;
    ing_respond_problem(r, &p);
    ing_req_done(r);
}

void ing_audit_export(struct ing_req *r)
{
    const char *from = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "from");
    const char *to = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "to");
    const char *fmt = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "format");
    struct ing_problem p;

    if (!time_ok(from)) {
        ing_problem(&p, "query_invalid", "from",
                    "from is required: an RFC 3339 time or a date (2026-12-01)");
        goto fail;
    }
    if (!time_ok(to)) {
        ing_problem(&p, "query_invalid", "to",
                    "to is required: an RFC 3339 time or a date, after from (excluded)");
        goto fail;
    }
    if (fmt && strcmp(fmt, "csv") != 0 && strcmp(fmt, "jsonl") != 0) {
        ing_problem(&p, "query_invalid", "format", "format is jsonl (default) or csv");
        goto fail;
    }
    if (++running > EXPORT_MAX) {
        running--;
        r->retry_after = 5;
        ing_problem(&p, "unavailable", NULL, "%d audit exports are running; retry later",
                    EXPORT_MAX);
        goto fail;
    }
    if (ing_defer(r, export_job, 0, ING.read_timeout_ms, &p) != 0) {
        running--;
        goto fail;
    }
    return;
fail:
    ing_respond_problem(r, &p);
}
