/* kasir-pgstmt - drives ks_pg_exec (a statement prepared once per server session) against
 * the real server through the ways a session can lose or keep it, one line per run:
 *   run N: ok VALUE prepares=P         or   run N: error SQLSTATE retriable=R
 * where P counts the statements the session holds (pg_prepared_statements) after the run.
 *   kasir-pgstmt SCENARIO   (KASIR_PG_DSN from the environment)
 * SCENARIO: repeat | terminated | deallocated | all_lost | rolled_back | no_answer |
 * retyped | data_error | refused_inside */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/db.h"

static struct ks_db *db;
static struct ks_pg_stmt dbl = KS_PG_STMT("pgstmt_double", "SELECT $1::int8 * 2", 1);
static struct ks_pg_stmt neg = KS_PG_STMT("pgstmt_negate", "SELECT - $1::int8", 1);
static struct ks_pg_stmt col = KS_PG_STMT("pgstmt_column", "SELECT x FROM pg_temp.pgstmt_t "
                                                           "WHERE $1::int8 IS NOT NULL",
                                          1);

static int held(void)
{
    PGresult *res = PQexec(ks_db_conn(db), "SELECT count(*) FROM pg_prepared_statements");
    int n = PQresultStatus(res) == PGRES_TUPLES_OK ? atoi(PQgetvalue(res, 0, 0)) : -1;
    PQclear(res);
    return n;
}

static void sql(const char *q)
{
    PQclear(PQexec(ks_db_conn(db), q));
}

static void run_on(struct ks_pg_stmt *s, int n, const char *arg)
{
    const char *params[1] = {arg};
    struct ks_err err = {0};
    PGresult *res = ks_pg_exec(ks_db_conn(db), s, params, NULL, NULL, 0);
    char st[6];

    if (ks_pg_check(ks_db_conn(db), res, PGRES_TUPLES_OK, "pgstmt", &err) == KS_OK) {
        printf("run %d: ok %s", n, PQntuples(res) ? PQgetvalue(res, 0, 0) : "-");
        PQclear(res);
        printf(" prepares=%d\n", held());
    } else {
        PQclear(res);
        printf("run %d: error %s retriable=%d\n", n, ks_db_err_sqlstate(&err, st),
               err.retriable);
    }
}

static void run(int n, const char *arg)
{
    run_on(&dbl, n, arg);
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
        run(3, "7");
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
        sql("DEALLOCATE ALL");
        run(2, "5");
        run(3, "7");
    } else if (strcmp(sc, "all_lost") == 0) {
        /* a session that lost every statement while its pid stayed (a server restarted in
         * a container hands the same pids out again): the first 26000 tells them all, so
         * that a worker's retry of its transaction does not fail on the next one */
        run_on(&neg, 2, "9");
        sql("DEALLOCATE ALL");
        sql("BEGIN");
        run(3, "5");
        sql("ROLLBACK");
        sql("BEGIN");
        run(4, "7");
        run_on(&neg, 5, "4");
        sql("COMMIT");
    } else if (strcmp(sc, "rolled_back") == 0) {
        /* prepared inside a transaction that rolls back: the session keeps it */
        sql("DEALLOCATE ALL");
        run(2, "5"); /* 26000: prepared again on the next call */
        sql("BEGIN");
        run(3, "7");
        sql("ROLLBACK");
        run(4, "8");
    } else if (strcmp(sc, "no_answer") == 0) {
        /* the session has it but the struct does not know (a prepare whose answer was
         * lost): preparing it again inside a transaction must not collide with it */
        dbl.on = NULL;
        sql("BEGIN");
        run(2, "5");
        sql("COMMIT");
    } else if (strcmp(sc, "retyped") == 0) {
        /* a migration changes the type of a column a prepared statement returns: the
         * server refuses the cached plan (0A000) once, the next try prepares it again */
        sql("CREATE TEMP TABLE pgstmt_t (x int); INSERT INTO pgstmt_t VALUES (3)");
        run_on(&col, 2, "1");
        sql("ALTER TABLE pgstmt_t ALTER x TYPE text");
        sql("BEGIN");
        run_on(&col, 3, "1");
        sql("ROLLBACK");
        sql("BEGIN");
        run_on(&col, 4, "1");
        run(5, "8"); /* a migration makes every statement stale at once: all prepare again */
        sql("COMMIT");
    } else if (strcmp(sc, "data_error") == 0) {
        /* an error of the data (22003, out of range) leaves the statement as it is */
        run(2, "9223372036854775807");
        run(3, "7");
    } else if (strcmp(sc, "refused_inside") == 0) {
        /* 0A000 raised by a function the statement calls is not a stale plan: not
         * prepared again (on every call, the session would pile them up) */
        static struct ks_pg_stmt fn = KS_PG_STMT("pgstmt_fn", "SELECT pg_temp.pgstmt_no($1)", 1);
        sql("CREATE FUNCTION pg_temp.pgstmt_no(int8) RETURNS int8 LANGUAGE plpgsql AS "
            "$$BEGIN IF $1 < 0 THEN RAISE feature_not_supported; END IF; RETURN $1; END$$");
        run_on(&fn, 2, "5");
        run_on(&fn, 3, "-1");
        run_on(&fn, 4, "-1");
        run_on(&fn, 5, "6");
        run(6, "8");
    } else {
        fprintf(stderr, "unknown scenario %s\n", sc);
        ks_db_free(db);
        return 2;
    }
    ks_db_free(db);
    return 0;
}
