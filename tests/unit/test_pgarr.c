/* test_pgarr.c - PostgreSQL array parameters, text and binary (lib/pgarr.c). */
#include <stdlib.h>
#include <string.h>

#include "lib/pgarr.h"
#include "tests/unit/ktest.h"

static uint32_t rd32(const char *p)
{
    const unsigned char *b = (const unsigned char *)p;
    return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3];
}

KT_TEST(test_pgarr)
{
    struct ks_pgarr a;
    ks_pgarr_init(&a);
    KT_STREQ(ks_pgarr_str(&a), "{}");
    ks_pgarr_text(&a, "plain");
    ks_pgarr_text(&a, "q\"b\\s,{}");
    ks_pgarr_text(&a, NULL);
    ks_pgarr_int(&a, -42);
    KT_STREQ(ks_pgarr_str(&a), "{\"plain\",\"q\\\"b\\\\s,{}\",NULL,-42}");
    ks_pgarr_reset(&a);
    ks_pgarr_bytea(&a, "\x01\xff", 2);
    KT_STREQ(ks_pgarr_str(&a), "{\"\\\\x01ff\"}");
    ks_pgarr_release(&a);
}

KT_TEST(test_pgbin)
{
    struct ks_pgarr_bin a;
    const char *d;
    int len = 0;
    ks_pgarr_bin_init(&a, KS_OID_BYTEA);
    d = ks_pgarr_bin_data(&a, &len);
    KT_INTEQ(len, 12);
    KT_INTEQ(rd32(d), 0);
    ks_pgarr_bin_bytes(&a, "ab", 2);
    ks_pgarr_bin_bytes(&a, NULL, 0);
    d = ks_pgarr_bin_data(&a, &len);
    KT_INTEQ(len, 20 + 4 + 2 + 4);
    KT_INTEQ(rd32(d), 1);      /* one dimension */
    KT_INTEQ(rd32(d + 4), 1);  /* has nulls */
    KT_INTEQ(rd32(d + 8), KS_OID_BYTEA);
    KT_INTEQ(rd32(d + 12), 2); /* elements */
    KT_INTEQ(rd32(d + 16), 1); /* lower bound */
    KT_INTEQ(rd32(d + 20), 2);
    KT_CHECK(memcmp(d + 24, "ab", 2) == 0);
    KT_INTEQ(rd32(d + 26), 0xffffffffu);
    ks_pgarr_bin_release(&a);
    ks_pgarr_bin_init(&a, KS_OID_INT8);
    ks_pgarr_bin_int8(&a, -2);
    d = ks_pgarr_bin_data(&a, &len);
    KT_INTEQ(len, 32);
    KT_INTEQ(rd32(d + 20), 8);
    KT_INTEQ(rd32(d + 24), 0xffffffffu);
    KT_INTEQ(rd32(d + 28), 0xfffffffeu);
    ks_pgarr_bin_release(&a);
}

KT_MAIN(test_pgarr, test_pgbin)
