/* ktest.h - the smallest test harness that works: checks count, failures print where.
 *
 * Each tests/unit/test_<module>.c defines tests with KT_TEST and lists them in KT_MAIN.
 * The run ends with "N passed, N failed" on a line of its own, and exits non-zero on any
 * failure. */
#ifndef KTEST_H
#define KTEST_H

#include <stdio.h>
#include <string.h>

static int kt_pass, kt_fail;

#define KT_CHECK(cond)                                                                  \
    do {                                                                                \
        if (cond) {                                                                     \
            kt_pass++;                                                                  \
        } else {                                                                        \
            kt_fail++;                                                                  \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);             \
        }                                                                               \
    } while (0)

#define KT_CHECK_MSG(cond, ...)                                                         \
    do {                                                                                \
        if (cond) {                                                                     \
            kt_pass++;                                                                  \
        } else {                                                                        \
            kt_fail++;                                                                  \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);             \
            fprintf(stderr, __VA_ARGS__);                                               \
            fputc('\n', stderr);                                                        \
        }                                                                               \
    } while (0)

/* The values compared are evaluated once, pass or fail: the message prints the values
 * already computed, never the expressions again (an expression with a side effect, such as
 * one that destroys a handle, ran twice on a failure and the second run crashed: test_kafka,
 * session 13). NULL strings compare as "(null)" instead of crashing the run. */
static inline void kt_streq(const char *a, const char *b, const char *expr, const char *file,
                            int line)
{
    if (a && b ? strcmp(a, b) == 0 : a == b) {
        kt_pass++;
        return;
    }
    kt_fail++;
    fprintf(stderr, "FAIL %s:%d: %s: \"%s\" != \"%s\"\n", file, line, expr, a ? a : "(null)",
            b ? b : "(null)");
}

static inline void kt_inteq(long long a, long long b, const char *expr, const char *file,
                            int line)
{
    if (a == b) {
        kt_pass++;
        return;
    }
    kt_fail++;
    fprintf(stderr, "FAIL %s:%d: %s: %lld != %lld\n", file, line, expr, a, b);
}

#define KT_STREQ(a, b) kt_streq((a), (b), #a " == " #b, __FILE__, __LINE__)
#define KT_INTEQ(a, b)                                                                  \
    kt_inteq((long long)(a), (long long)(b), #a " == " #b, __FILE__, __LINE__)

#define KT_TEST(name) static void name(void)
#define KT_MAIN(...)                                                                    \
    int main(void)                                                                      \
    {                                                                                   \
        void (*tests[])(void) = {__VA_ARGS__};                                          \
        for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++)                   \
            tests[i]();                                                                 \
        printf("%s: %d passed, %d failed\n", __FILE__, kt_pass, kt_fail);               \
        return kt_fail ? 1 : 0;                                                         \
    }

#endif
