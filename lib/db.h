/* db.h - a thin libpq wrapper: connect, classify errors, health, clean close.
 *
 * Queries are written with libpq directly on ks_db_conn(); this module only turns libpq
 * outcomes into struct ks_err with the right retriable flag, so that callers can tell
 * "the server is unreachable, pause and retry" from "this statement is wrong". */
#ifndef KS_DB_H
#define KS_DB_H

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

/* Checks res (which may be NULL) against the expected status (PGRES_COMMAND_OK or
 * PGRES_TUPLES_OK). On mismatch fills err with KS_EDB (KS_ECONFLICT for a unique
 * violation, 23505), names what in the message, and sets retriable for lost connections,
 * SQLSTATE class 08, 57P01-57P03, 40001 and 40P01. Does not clear res. */
enum ks_code ks_db_check(struct ks_db *db, PGresult *res, ExecStatusType expect,
                         const char *what, struct ks_err *err)
    __attribute__((warn_unused_result));

/* The retriable rule of ks_db_check, for code that holds only a PGconn (a worker's
 * handler): 1 when res failed in a way a later try can succeed (see ks_db_check). */
int ks_db_retriable(PGconn *conn, const PGresult *res);

/* SELECT 1 within timeout_ms (statement_timeout); KS_EDB retriable when unreachable. */
enum ks_code ks_db_health(struct ks_db *db, struct ks_err *err)
    __attribute__((warn_unused_result));

#endif
