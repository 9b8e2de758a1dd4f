/* test_retry.c - the retry schedule (lib/retry.c). */
#include <stdlib.h>
#include <string.h>

#include "lib/retry.h"
#include "tests/unit/ktest.h"

KT_TEST(test_retry_parse)
{
    int64_t d[8];
    char names[8][16];
    KT_INTEQ(ks_retry_parse("5s,1m,10m", d, names, 8), 3);
    KT_INTEQ(d[0], 5000);
    KT_INTEQ(d[1], 60000);
    KT_INTEQ(d[2], 600000);
    KT_STREQ(names[1], "1m");
    KT_INTEQ(ks_retry_parse("250ms, 2s", d, names, 8), 2);
    KT_INTEQ(d[0], 250);
    KT_STREQ(names[1], "2s");
    KT_INTEQ(ks_retry_parse("", d, names, 8), 0);
    KT_INTEQ(ks_retry_parse("1m,5s", d, names, 8), -1);  /* not ascending */
    KT_INTEQ(ks_retry_parse("5x", d, names, 8), -1);
    KT_INTEQ(ks_retry_parse("0s", d, names, 8), -1);
    KT_INTEQ(ks_retry_parse("s", d, names, 8), -1);
    KT_INTEQ(ks_retry_parse("1s,2s,3s", d, names, 2), -1); /* too many */
}

KT_TEST(test_retry_backoff)
{
    const int64_t d[] = {5000, 60000, 600000};
    size_t idx = 99;
    /* no jitter: 5 s, 10 s, 20 s, ... capped at 10 min; topic = longest delay <= backoff */
    KT_INTEQ(ks_retry_backoff(d, 3, 1, 0, 0, &idx), 5000);
    KT_INTEQ(idx, 0);
    KT_INTEQ(ks_retry_backoff(d, 3, 2, 0, 0, &idx), 10000);
    KT_INTEQ(idx, 0);
    KT_INTEQ(ks_retry_backoff(d, 3, 5, 0, 0, &idx), 80000);
    KT_INTEQ(idx, 1);
    KT_INTEQ(ks_retry_backoff(d, 3, 40, 0, 0, &idx), 600000);
    KT_INTEQ(idx, 2);
    /* jitter: rnd 0 -> -20 %, rnd 500000 -> 0, rnd 999999 -> just under +20 % */
    KT_INTEQ(ks_retry_backoff(d, 3, 1, 20, 0, &idx), 4000);
    KT_INTEQ(idx, 0); /* below the shortest still goes to the shortest topic */
    KT_INTEQ(ks_retry_backoff(d, 3, 1, 20, 500000, &idx), 5000);
    KT_CHECK(ks_retry_backoff(d, 3, 1, 20, 999999, &idx) < 6000);
    for (uint32_t r = 0; r < 1000000; r += 9973) {
        int64_t v = ks_retry_backoff(d, 3, 3, 20, r, &idx);
        KT_CHECK(v >= 16000 && v <= 24000);
    }
    KT_INTEQ(ks_retry_backoff(d, 0, 1, 20, 0, &idx), 0);
}

KT_TEST(test_retry_backoff_long_delays)
{
    /* the parser takes delays up to ~1e9 hours; the jitter of such a delay used to
     * overflow int64 (UB; in practice a wrapped, wrong delay) */
    int64_t d[2];
    const int64_t huge[] = {1, INT64_MAX};
    size_t idx = 99;
    KT_INTEQ(ks_retry_parse("1000000000h", d, NULL, 2), 1);
    KT_INTEQ(d[0], 3600000000000000LL);
    KT_INTEQ(ks_retry_backoff(d, 1, 1, 20, 0, &idx), d[0] - d[0] / 5);
    KT_INTEQ(ks_retry_backoff(d, 1, 1, 20, 500000, &idx), d[0]);
    KT_CHECK(ks_retry_backoff(d, 1, 1, 20, 999999, &idx) > d[0]);
    KT_CHECK(ks_retry_backoff(d, 1, 1, 20, 999999, &idx) < d[0] + d[0] / 5);
    KT_INTEQ(idx, 0);
    /* doubling towards a cap near INT64_MAX stops at the cap */
    KT_INTEQ(ks_retry_backoff(huge, 2, 200, 0, 0, &idx), INT64_MAX);
    KT_INTEQ(idx, 1);
    KT_CHECK(ks_retry_backoff(huge, 2, 200, 100, 999999, &idx) >= INT64_MAX - 10);
}

KT_TEST(test_retry_topic_name)
{
    char t[32];
    ks_retry_topic(t, sizeof(t), "kasir.psp.outcomes", "5s");
    KT_STREQ(t, "kasir.psp.outcomes.retry.5s");
    ks_retry_topic(t, 10, "abcdefghij", "1m"); /* cut, terminated */
    KT_STREQ(t, "abcdefghi");
}

KT_MAIN(test_retry_parse, test_retry_backoff, test_retry_backoff_long_delays,
        test_retry_topic_name)
