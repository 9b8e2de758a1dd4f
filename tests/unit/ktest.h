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

#define KT_STREQ(a, b) KT_CHECK_MSG(strcmp((a), (b)) == 0, "\"%s\" != \"%s\"", (a), (b))
#define KT_INTEQ(a, b)                                                                  \
    KT_CHECK_MSG((long long)(a) == (long long)(b), "%lld != %lld", (long long)(a),       \
                 (long long)(b))

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
