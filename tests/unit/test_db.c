/* Unit tests for lib/db.c that need no server: error classification and NULL safety.
 * The real-server path is covered by tests/integration/test_002_wrappers.py. */
#include <string.h>

#include "ktest.h"
#include "lib/db.h"

KT_TEST(test_unreachable_is_retriable)
{
    struct ks_err err = {0};
    /* port 1 on loopback: refused at once, no waiting */
    struct ks_db *db = ks_db_connect("host=127.0.0.1 port=1 dbname=x connect_timeout=2", &err);
    KT_CHECK(db == NULL);
    KT_INTEQ(err.code, KS_EDB);
    KT_INTEQ(err.retriable, 1);
    KT_CHECK(strstr(err.msg, "could not connect to postgresql") != NULL);
}

KT_TEST(test_bad_dsn_is_an_error)
{
    struct ks_err err = {0};
    struct ks_db *db = ks_db_connect("this is = not a dsn =", &err);
    KT_CHECK(db == NULL);
    KT_INTEQ(err.code, KS_EDB);
}

KT_TEST(test_free_null)
{
    ks_db_free(NULL);
    KT_CHECK(!ks_db_ok(NULL));
}

/* the one rule for transient SQLSTATEs (ks_db_transient): what a later try can fix */
KT_TEST(test_transient_sqlstates)
{
    static const struct {
        const char *state;
        int transient;
    } cases[] = {
        {"08006", 1}, {"08000", 1}, {"57P01", 1}, {"57P02", 1}, {"57P03", 1},
        {"40001", 1}, {"40P01", 1}, {"55P03", 1}, {"57014", 1}, {"25P03", 1},
        {"23505", 0}, {"23514", 0}, {"P0001", 0}, {"42601", 0}, {"KS409", 0},
        {"22P02", 0}, {"57P04", 0}, {"26000", 1}, {"0A000", 0}, {"", 0}, {NULL, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        KT_INTEQ(ks_db_transient(cases[i].state), cases[i].transient);
}

KT_TEST(test_err_sqlstate)
{
    struct ks_err err = {0};
    char st[6];
    ks_err_set(&err, KS_EDB, 0, NULL, "batch commit failed sqlstate 23514: ERROR: x");
    KT_STREQ(ks_db_err_sqlstate(&err, st), "23514");
    ks_err_set(&err, KS_EDB, 0, NULL, "handler said no");
    KT_STREQ(ks_db_err_sqlstate(&err, st), "");
    /* a lost connection: no result, no SQLSTATE, retriable */
    KT_INTEQ(ks_pg_check(NULL, NULL, PGRES_COMMAND_OK, "x", &err), KS_EDB);
    KT_INTEQ(err.retriable, 1);
}

KT_MAIN(test_unreachable_is_retriable, test_bad_dsn_is_an_error, test_free_null,
        test_transient_sqlstates, test_err_sqlstate)
