/* test_err.c - struct ks_err filling, clearing and code names. */
#include <string.h>

#include "lib/err.h"
#include "tests/unit/ktest.h"

KT_TEST(test_set_fills_and_returns_code)
{
    struct ks_err err;

    ks_err_clear(&err);
    KT_INTEQ(ks_err_set(&err, KS_EDB, 1, "pg.dsn", "could not connect: %s", "refused"), KS_EDB);
    KT_INTEQ(err.code, KS_EDB);
    KT_INTEQ(err.retriable, 1);
    KT_STREQ(err.field, "pg.dsn");
    KT_STREQ(err.msg, "could not connect: refused");

    /* a NULL field is an empty one */
    KT_INTEQ(ks_err_set(&err, KS_EINVAL, 0, NULL, "bad"), KS_EINVAL);
    KT_STREQ(err.field, "");
    KT_INTEQ(err.retriable, 0);
}

KT_TEST(test_set_null_err)
{
    /* callers that do not want details pass NULL: the code still comes back */
    KT_INTEQ(ks_err_set(NULL, KS_ETIMEOUT, 1, "x", "y"), KS_ETIMEOUT);
}

KT_TEST(test_truncation_keeps_nul)
{
    struct ks_err err;
    char big[1000], field[200];

    memset(big, 'm', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    memset(field, 'f', sizeof(field) - 1);
    field[sizeof(field) - 1] = '\0';
    ks_err_set(&err, KS_EINVAL, 0, field, "%s", big);
    KT_INTEQ(strlen(err.msg), sizeof(err.msg) - 1);
    KT_INTEQ(strlen(err.field), sizeof(err.field) - 1);
}

KT_TEST(test_clear)
{
    struct ks_err err;

    ks_err_set(&err, KS_EIO, 1, "f", "m");
    ks_err_clear(&err);
    KT_INTEQ(err.code, KS_OK);
    KT_INTEQ(err.retriable, 0);
    KT_STREQ(err.field, "");
    KT_STREQ(err.msg, "");
    ks_err_clear(NULL); /* must not crash */
}

KT_TEST(test_code_names)
{
    /* names go on DLQ headers and into logs: every code has one, and they are distinct */
    for (int i = 0; i < KS__CODE_COUNT; i++) {
        KT_CHECK_MSG(strcmp(ks_code_name((enum ks_code)i), "unknown") != 0, "code %d", i);
        for (int j = 0; j < i; j++)
            KT_CHECK_MSG(strcmp(ks_code_name((enum ks_code)i), ks_code_name((enum ks_code)j)),
                         "codes %d and %d share a name", i, j);
    }
    KT_STREQ(ks_code_name(KS_OK), "ok");
    KT_STREQ(ks_code_name(KS_EINVAL), "invalid");
    KT_STREQ(ks_code_name(KS_EPOISON), "poison");
    KT_STREQ(ks_code_name(KS__CODE_COUNT), "unknown");
    KT_STREQ(ks_code_name((enum ks_code)-1), "unknown");
}

KT_MAIN(test_set_fills_and_returns_code, test_set_null_err, test_truncation_keeps_nul,
        test_clear, test_code_names)
