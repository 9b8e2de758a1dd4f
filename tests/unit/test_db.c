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

KT_TEST(test_no_connection_is_retriable)
{
    /* no connection (lost, or never made) and no result: a later try may succeed */
    KT_INTEQ(ks_db_retriable(NULL, NULL), 1);
}

KT_MAIN(test_unreachable_is_retriable, test_bad_dsn_is_an_error, test_free_null,
        test_no_connection_is_retriable)
