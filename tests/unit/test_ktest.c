/* Unit tests for the harness itself (tests/unit/ktest.h): a failed comparison evaluates what
 * it compares once. Before session 13 a failed KT_INTEQ evaluated both sides again to print
 * them; KT_INTEQ(ks_kafka_producer_close(rk, 0), 0) destroyed the producer a second time and
 * crashed test_kafka under load (CI). */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "ktest.h"

static int evals;

static long long counted(long long v)
{
    evals++;
    return v;
}

static const char *counted_str(const char *s)
{
    evals++;
    return s;
}

/* Runs a comparison meant to fail, with its FAIL line sent to /dev/null, and takes its
 * failure back off the count: returns how many failures it recorded. */
#define EXPECT_FAILURE(stmt)                                                            \
    ({                                                                                  \
        int before_ = kt_fail, saved_ = dup(2), null_ = open("/dev/null", O_WRONLY);     \
        fflush(stderr);                                                                 \
        dup2(null_, 2);                                                                 \
        stmt;                                                                           \
        fflush(stderr);                                                                 \
        dup2(saved_, 2);                                                                \
        close(null_);                                                                   \
        close(saved_);                                                                  \
        int got_ = kt_fail - before_;                                                   \
        kt_fail = before_;                                                              \
        got_;                                                                           \
    })

KT_TEST(test_failed_inteq_evaluates_once)
{
    evals = 0;
    KT_INTEQ(EXPECT_FAILURE(KT_INTEQ(counted(1), counted(2))), 1);
    KT_INTEQ(evals, 2);
}

KT_TEST(test_failed_streq_evaluates_once)
{
    evals = 0;
    KT_INTEQ(EXPECT_FAILURE(KT_STREQ(counted_str("a"), counted_str("b"))), 1);
    KT_INTEQ(evals, 2);
}

KT_TEST(test_passing_compares_count)
{
    int before = kt_pass;
    evals = 0;
    KT_INTEQ(counted(7), 7);
    KT_STREQ(counted_str("x"), "x");
    KT_INTEQ(kt_pass - before, 2);
    KT_INTEQ(evals, 2);
}

/* NULL is a value a function under test may return: it fails the comparison with a line,
 * it does not crash the run */
KT_TEST(test_streq_null_fails_cleanly)
{
    KT_INTEQ(EXPECT_FAILURE(KT_STREQ((const char *)NULL, "x")), 1);
    KT_INTEQ(EXPECT_FAILURE(KT_STREQ("x", (const char *)NULL)), 1);
    KT_STREQ((const char *)NULL, (const char *)NULL);
}

KT_MAIN(test_failed_inteq_evaluates_once, test_failed_streq_evaluates_once,
        test_passing_compares_count, test_streq_null_fails_cleanly)
