/* db.h - a thin libpq wrapper: connect, classify errors, health, clean close.
 *
 * Queries are written with libpq directly on ks_db_conn(); this module only turns libpq
 * outcomes into struct ks_err with the right retriable flag, so that callers can tell
 * "the server is unreachable, pause and retry" from "this statement is wrong". */
#ifndef KS_DB_H
#define KS_DB_H

#include <stdint.h>
#include <libpq-fe.h>

#include "err.h"

struct ks_db; /* opaque */

/* Connects (blocking). NULL with err->retriable = 1 when the server is unreachable. */
struct ks_db *ks_db_connect(const char *dsn, struct ks_err *err);
void ks_db_free(struct ks_db *db); /* NULL ok; closes the connection */

/* The libpq connection, owned by db. */
PGconn *ks_db_conn(struct ks_db *db);

/* 1 when the connection is usable (status OK), else 0. */
int ks_db_ok(struct ks_db *db);
/* Drops and reopens the connection if it is bad. */
enum ks_code ks_db_reconnect(struct ks_db *db, struct ks_err *err)
    __attribute__((warn_unused_result));

/* Runs one parameterless statement (BEGIN, COMMIT, DDL); KS_EDB on failure. */
enum ks_code ks_db_exec(struct ks_db *db, const char *sql, struct ks_err *err)
    __attribute__((warn_unused_result));

/* The one rule for PostgreSQL errors. 1 when a statement that failed with this SQLSTATE
 * can succeed on a later try: the connection went away (class 08), the server is shutting
 * down or starting (57P01-57P03), the transaction lost a race (40001 serialization, 40P01
 * deadlock), a timeout the worker sets fired (55P03 lock_timeout, 57014
 * statement_timeout or cancel, 25P03 idle-in-transaction timeout), or the session lost a
 * statement ks_pg_exec had prepared (26000: prepared again on the next try). NULL: 0. */
int ks_db_transient(const char *sqlstate);

/* 1 when a statement failed because the database or its schema is broken, not because of
 * the data it was given: syntax or access rule (class 42: an undefined function, table or
 * column, a revoked privilege), invalid schema (3F), feature not supported (0A),
 * insufficient resources (53: disk full, out of memory), system error (58), config (F0),
 * internal (XX). Every message would fail alike: no message is to blame. */
int ks_db_environmental(const char *sqlstate);

/* Checks res (which may be NULL) against the expected status (PGRES_COMMAND_OK or
 * PGRES_TUPLES_OK). On mismatch fills err with KS_EDB (KS_ECONFLICT for a unique
 * violation, 23505), names what and the SQLSTATE in the message, and sets retriable by
 * ks_db_transient or when the connection is lost. Does not clear res. */
enum ks_code ks_db_check(struct ks_db *db, PGresult *res, ExecStatusType expect,
                         const char *what, struct ks_err *err)
    __attribute__((warn_unused_result));
/* The same for a raw connection, as a worker's handler has. */
enum ks_code ks_pg_check(PGconn *pg, PGresult *res, ExecStatusType expect, const char *what,
                         struct ks_err *err) __attribute__((warn_unused_result));
/* The SQLSTATE of a struct ks_err filled by ks_db_check/ks_pg_check ("" when none). */
const char *ks_db_err_sqlstate(const struct ks_err *err, char out[6]);

/* A statement prepared once per server session and then run by name: parsing and planning
 * a batch statement every batch cost kasir-risk's backend ~26 % of its CPU. One struct per
 * statement and connection, owned by whoever owns the connection; KS_PG_STMT makes one
 * prepared nowhere. A reconnect keeps the PGconn but starts a new session: the backend pid
 * tells. Each preparation takes a fresh name (name_<n>): preparing again never collides
 * with one the session kept (42P05 would abort the caller's transaction); the old one stays
 * in the session until it ends (one per struct each time a session's statements go stale:
 * rare events, below). */
struct ks_pg_stmt {
    const char *name; /* unique among the statements of one connection */
    const char *sql;
    int nparams;
    PGconn *on; /* where it is prepared: the connection and its backend (NULL: nowhere) */
    int pid;
    unsigned lost; /* ks_pg_exec's count of stale sessions when it was prepared */
    unsigned seq;  /* preparations so far: the suffix of the name */
    char as[80];   /* the name it is prepared under */
};
#define KS_PG_STMT(name, sql, nparams) {(name), (sql), (nparams), NULL, 0, 0, 0, ""}

/* PQexecPrepared of s on pg, preparing it first when pg's session does not have it yet.
 * Returns the result to check with ks_pg_check (a failed prepare's own). Prepared again on
 * the next call: after no answer; and every statement of the process after 26000 (the
 * session lost a statement while its pid stayed: DEALLOCATE, a restarted server handing
 * the same pid out again; a session loses them all at once; ks_db_transient counts it in)
 * or after the server refused a cached plan whose result type changed (0A000 from the
 * plan cache: a migration retyped a column, which makes every statement reading it stale).
 * Any other error leaves the statement as it is. */
PGresult *ks_pg_exec(PGconn *pg, struct ks_pg_stmt *s, const char *const *params,
                     const int *lens, const int *fmts, int result_fmt);

/* Session settings a worker wants on every connection (after each connect and reconnect):
 * statement_timeout, lock_timeout, idle_in_transaction_session_timeout in ms (0: server
 * default), then RESET of anything a previous session user left. */
enum ks_code ks_db_session(struct ks_db *db, int64_t statement_ms, int64_t lock_ms,
                           int64_t idle_tx_ms, struct ks_err *err)
    __attribute__((warn_unused_result));

/* SELECT 1 within timeout_ms (statement_timeout); KS_EDB retriable when unreachable. */
enum ks_code ks_db_health(struct ks_db *db, struct ks_err *err)
    __attribute__((warn_unused_result));

#endif
