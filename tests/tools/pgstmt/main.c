/* kasir-pgstmt - drives ks_pg_exec (a statement prepared once per server session) against
 * the real server through the ways a session can lose or keep it, one line per run:
 *   run N: ok VALUE prepares=P         or   run N: error SQLSTATE retriable=R
 * where P counts the statements of that name the session holds after the run.
 *   kasir-pgstmt SCENARIO   (KASIR_PG_DSN from the environment)
 * SCENARIO: repeat | terminated | deallocated | rolled_back | aborted */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/db.h"

#define NAME "pgstmt_double"

static struct ks_db *db;
static struct ks_pg_stmt stmt = KS_PG_STMT(NAME, "SELECT $1::int8 * 2", 1);

static int held(void)
{
    PGresult *res = PQexec(ks_db_conn(db), "SELECT count(*) FROM pg_prepared_statements "
                                           "WHERE name = '" NAME "'");
    int n = PQresultStatus(res) == PGRES_TUPLES_OK ? atoi(PQgetvalue(res, 0, 0)) : -1;
    PQclear(res);
    return n;
}

static void sql(const char *q)
{
    PQclear(PQexec(ks_db_conn(db), q));
}

static void run(int n, const char *arg)
{
    const char *params[1] = {arg};
    struct ks_err err = {0};
    PGresult *res = ks_pg_exec(ks_db_conn(db), &stmt, params, NULL, NULL, 0);
    char st[6];

    if (ks_pg_check(ks_db_conn(db), res, PGRES_TUPLES_OK, "pgstmt", &err) == KS_OK) {
        printf("run %d: ok %s", n, PQgetvalue(res, 0, 0));
        PQclear(res);
        printf(" prepares=%d\n", held());
    } else {
        PQclear(res);
        printf("run %d: error %s retriable=%d\n", n, ks_db_err_sqlstate(&err, st),
               err.retriable);
    }
}

int main(int argc, char **argv)
{
    const char *dsn = getenv("KASIR_PG_DSN"), *sc = argc == 2 ? argv[1] : "";
    struct ks_err err = {0};

    if (!dsn || !*sc) {
        fprintf(stderr, "usage: KASIR_PG_DSN=.. kasir-pgstmt SCENARIO\n");
        return 2;
    }
    if (!(db = ks_db_connect(dsn, &err))) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    run(1, "21");
    if (strcmp(sc, "repeat") == 0) {
        run(2, "5");
    } else if (strcmp(sc, "terminated") == 0) {
        /* the server ends the session; the worker reconnects (PQreset: the same PGconn) */
        struct ks_db *other = ks_db_connect(dsn, &err);
        char q[80];
        snprintf(q, sizeof(q), "SELECT pg_terminate_backend(%d)",
                 PQbackendPID(ks_db_conn(db)));
        if (other)
            PQclear(PQexec(ks_db_conn(other), q));
        ks_db_free(other);
        run(2, "5");
        if (ks_db_reconnect(db, &err) != KS_OK)
            printf("reconnect: %s\n", err.msg);
        run(3, "7");
    } else if (strcmp(sc, "deallocated") == 0) {
        sql("DEALLOCATE " NAME);
        run(2, "5");
        run(3, "7");
    } else if (strcmp(sc, "rolled_back") == 0) {
        /* prepared inside a transaction that rolls back: the session keeps it */
        stmt.on = NULL;
        sql("DEALLOCATE " NAME);
        sql("BEGIN");
        run(2, "5");
        sql("ROLLBACK");
        run(3, "7");
    } else if (strcmp(sc, "aborted") == 0) {
        /* a session that has it, a struct that does not know, a transaction: the prepare's
         * 42P05 aborts the transaction and is returned, not counted as prepared */
        stmt.on = NULL;
        sql("BEGIN");
        run(2, "5");
        sql("ROLLBACK");
        run(3, "7");
    } else {
        fprintf(stderr, "unknown scenario %s\n", sc);
        ks_db_free(db);
        return 2;
    }
    ks_db_free(db);
    return 0;
}
