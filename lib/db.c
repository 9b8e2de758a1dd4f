/* db.c - see db.h */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"

struct ks_db {
    PGconn *conn;
    char *dsn;
};

int ks_db_transient(const char *state)
{
    static const char *const exact[] = {"57P01", "57P02", "57P03", "40001", "40P01",
                                        "55P03", "57014", "25P03", "26000", NULL};
    if (!state)
        return 0;
    if (strncmp(state, "08", 2) == 0)
        return 1;
    for (int i = 0; exact[i]; i++)
        if (strcmp(state, exact[i]) == 0)
            return 1;
    return 0;
}

int ks_db_environmental(const char *state)
{
    static const char *const classes[] = {"42", "3F", "0A", "53", "58", "F0", "XX", NULL};
    if (!state)
        return 0;
    for (int i = 0; classes[i]; i++)
        if (strncmp(state, classes[i], 2) == 0)
            return 1;
    return 0;
}

/* libpq messages end with a newline; our messages do not. */
static void chomp_copy(char *dst, size_t len, const char *src)
{
    size_t n;
    snprintf(dst, len, "%s", src ? src : "");
    n = strlen(dst);
    while (n > 0 && (dst[n - 1] == '\n' || dst[n - 1] == ' '))
        dst[--n] = '\0';
}

struct ks_db *ks_db_connect(const char *dsn, struct ks_err *err)
{
    struct ks_db *db = calloc(1, sizeof(*db));
    char msg[200];

    if (!db || !(db->dsn = strdup(dsn ? dsn : ""))) {
        free(db);
        ks_err_set(err, KS_ENOMEM, 0, NULL, "out of memory");
        return NULL;
    }
    /* Defaults the DSN may override (libpq: keywords after an expanded dbname win, those
     * before it lose): without them a server that vanished without a FIN or RST (host
     * down, network partition) leaves a worker waiting forever on a TCP connection.
     * Unix sockets ignore the keepalive settings. client_encoding comes after it and always
     * wins: every text Kasir sends is UTF-8, and a client-only encoding from the
     * environment (PGCLIENTENCODING=SJIS) would make the runtime's escaped literals mean
     * something else (test 144). */
    static const char *const keys[] = {"connect_timeout", "keepalives", "keepalives_idle",
                                       "keepalives_interval", "keepalives_count",
                                       "tcp_user_timeout", "dbname", "client_encoding",
                                       NULL};
    const char *vals[] = {"10", "1", "30", "10", "3", "60000", db->dsn, "UTF8", NULL};
    db->conn = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(db->conn) != CONNECTION_OK) {
        chomp_copy(msg, sizeof(msg), PQerrorMessage(db->conn));
        ks_err_set(err, KS_EDB, 1, NULL, "could not connect to postgresql: %s", msg);
        ks_db_free(db);
        return NULL;
    }
    return db;
}

void ks_db_free(struct ks_db *db)
{
    if (!db)
        return;
    PQfinish(db->conn);
    free(db->dsn);
    free(db);
}

PGconn *ks_db_conn(struct ks_db *db)
{
    return db->conn;
}

int ks_db_ok(struct ks_db *db)
{
    return db && db->conn && PQstatus(db->conn) == CONNECTION_OK;
}

enum ks_code ks_db_reconnect(struct ks_db *db, struct ks_err *err)
{
    char msg[200];

    if (ks_db_ok(db))
        return KS_OK;
    PQreset(db->conn);
    if (PQstatus(db->conn) != CONNECTION_OK) {
        chomp_copy(msg, sizeof(msg), PQerrorMessage(db->conn));
        return ks_err_set(err, KS_EDB, 1, NULL, "could not reconnect to postgresql: %s", msg);
    }
    return KS_OK;
}

enum ks_code ks_pg_check(PGconn *pg, PGresult *res, ExecStatusType expect, const char *what,
                         struct ks_err *err)
{
    const char *state;
    char msg[200];
    int retriable;

    if (res && PQresultStatus(res) == expect)
        return KS_OK;
    state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    chomp_copy(msg, sizeof(msg),
               res && *PQresultErrorMessage(res) ? PQresultErrorMessage(res)
                                                 : PQerrorMessage(pg));
    /* a lost connection has no SQLSTATE: PQstatus tells */
    retriable = ks_db_transient(state) || !pg || PQstatus(pg) != CONNECTION_OK;
    if (state && strcmp(state, "23505") == 0)
        return ks_err_set(err, KS_ECONFLICT, 0, NULL, "%s failed sqlstate 23505: %s", what,
                          msg);
    return ks_err_set(err, KS_EDB, retriable, NULL, "%s failed%s%s: %s", what,
                      state ? " sqlstate " : "", state ? state : "", msg);
}

enum ks_code ks_db_check(struct ks_db *db, PGresult *res, ExecStatusType expect,
                         const char *what, struct ks_err *err)
{
    return ks_pg_check(db ? db->conn : NULL, res, expect, what, err);
}

const char *ks_db_err_sqlstate(const struct ks_err *err, char out[6])
{
    const char *p = strstr(err->msg, " sqlstate ");
    out[0] = '\0';
    if (p && strlen(p + 10) >= 5) {
        memcpy(out, p + 10, 5);
        out[5] = '\0';
    }
    return out;
}

enum ks_code ks_db_session(struct ks_db *db, int64_t statement_ms, int64_t lock_ms,
                           int64_t idle_tx_ms, struct ks_err *err)
{
    char q[300];
    snprintf(q, sizeof(q),
             "RESET ALL; SET statement_timeout = %lld; SET lock_timeout = %lld; "
             "SET idle_in_transaction_session_timeout = %lld",
             (long long)(statement_ms > 0 ? statement_ms : 0),
             (long long)(lock_ms > 0 ? lock_ms : 0), (long long)(idle_tx_ms > 0 ? idle_tx_ms : 0));
    return ks_db_exec(db, q, err);
}

enum ks_code ks_db_exec(struct ks_db *db, const char *sql, struct ks_err *err)
{
    PGresult *res = PQexec(db->conn, sql);
    enum ks_code rc = ks_db_check(db, res, PGRES_COMMAND_OK, sql, err);
    PQclear(res);
    return rc;
}

enum ks_code ks_db_health(struct ks_db *db, struct ks_err *err)
{
    PGresult *res;
    enum ks_code rc;

    if (!ks_db_ok(db) && ks_db_reconnect(db, err) != KS_OK)
        return KS_EDB;
    res = PQexec(db->conn, "SELECT 1");
    rc = ks_db_check(db, res, PGRES_TUPLES_OK, "health check", err);
    PQclear(res);
    return rc;
}

/* sessions ks_pg_exec saw lose their statements (26000) or refuse their plans, over every
 * connection and thread */
static atomic_uint pg_lost;

/* 1 for the server's refusal of a cached plan whose result type changed (0A000 raised by
 * plancache.c: a migration retyped a column). Told by the function that raised it, not by
 * the message (translated under lc_messages): any other 0A000, one a called function
 * raises, is not a stale statement and must not prepare it again on every call. */
static int plan_refused(const PGresult *res, const char *state)
{
    const char *fn = PQresultErrorField(res, PG_DIAG_SOURCE_FUNCTION);
    return strcmp(state, "0A000") == 0 && fn && strcmp(fn, "RevalidateCachedQuery") == 0;
}

PGresult *ks_pg_exec(PGconn *pg, struct ks_pg_stmt *s, const char *const *params,
                     const int *lens, const int *fmts, int result_fmt)
{
    unsigned lost = atomic_load(&pg_lost);
    PGresult *res;
    const char *state;

    if (s->on != pg || s->pid != PQbackendPID(pg) || s->lost != lost) {
        snprintf(s->as, sizeof(s->as), "%s_%u", s->name, ++s->seq);
        s->on = NULL;
        res = PQprepare(pg, s->as, s->sql, s->nparams, NULL);
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            return res;
        PQclear(res);
        s->on = pg;
        s->pid = PQbackendPID(pg);
        s->lost = lost;
    }
    res = PQexecPrepared(pg, s->as, s->nparams, params, lens, fmts, result_fmt);
    state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (!res)
        s->on = NULL;
    else if (state && (strcmp(state, "26000") == 0 || plan_refused(res, state)))
        atomic_fetch_add(&pg_lost, 1);
    return res;
}
