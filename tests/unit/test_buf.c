/* test_buf.c - the growable buffer (lib/buf.c). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "tests/unit/ktest.h"

KT_TEST(test_append_and_grow)
{
    struct ks_buf b = KS_BUF_INIT;
    KT_STREQ(ks_buf_str(&b), "");
    for (int i = 0; i < 1000; i++)
        ks_buf_addc(&b, 'a' + i % 26);
    KT_INTEQ(b.len, 1000);
    KT_CHECK(b.cap > 1000);
    ks_buf_adds(&b, "xyz");
    ks_buf_add(&b, "\0q", 2); /* bytes, NUL included */
    KT_INTEQ(b.len, 1005);
    KT_CHECK(memcmp(b.p + 1000, "xyz\0q", 5) == 0);
    ks_buf_reset(&b);
    KT_INTEQ(b.len, 0);
    KT_CHECK(b.cap > 1000); /* memory kept */
    ks_buf_release(&b);
    KT_CHECK(b.p == NULL && b.cap == 0);
    ks_buf_release(NULL);
}

KT_TEST(test_printf)
{
    struct ks_buf b;
    char big[5000];
    ks_buf_init(&b);
    ks_buf_printf(&b, "%s=%d;", "n", 42);
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    ks_buf_printf(&b, "%s", big); /* longer than the first allocation */
    KT_INTEQ(b.len, 5 + 4999);
    KT_CHECK(strncmp(ks_buf_str(&b), "n=42;xxx", 8) == 0);
    KT_INTEQ(strlen(ks_buf_str(&b)), 5004);
    ks_buf_release(&b);
}

KT_TEST(test_oom_is_sticky)
{
    struct ks_buf b = KS_BUF_INIT;
    ks_buf_adds(&b, "keep");
    /* a request no allocator can meet: the contents stay, later appends are ignored */
    KT_CHECK(ks_buf_room(&b, SIZE_MAX - 2) == NULL);
    KT_INTEQ(b.oom, 1);
    ks_buf_adds(&b, "more");
    KT_INTEQ(b.len, 4);
    KT_CHECK(memcmp(b.p, "keep", 4) == 0);
    KT_CHECK(ks_buf_str(&b) == NULL);
    ks_buf_reset(&b);
    KT_STREQ(ks_buf_str(&b), "");
    ks_buf_release(&b);
}

KT_MAIN(test_append_and_grow, test_printf, test_oom_is_sticky)
