/* test_money.c - parsing, formatting, bounds and arithmetic of struct ks_money. */
#include <stdint.h>
#include <string.h>

#include "lib/money.h"
#include "tests/unit/ktest.h"

/* A struct ks_err full of a pattern: success must leave it exactly so. */
static void err_poison(struct ks_err *err)
{
    memset(err, 0x5a, sizeof(*err));
}

static int err_untouched(const struct ks_err *err)
{
    struct ks_err p;
    err_poison(&p);
    return memcmp(&p, err, sizeof(p)) == 0;
}

KT_TEST(test_exponents)
{
    KT_INTEQ(ks_money_exponent("IDR"), 2);
    KT_INTEQ(ks_money_exponent("USD"), 2);
    KT_INTEQ(ks_money_exponent("JPY"), 0);
    KT_INTEQ(ks_money_exponent("KWD"), 3);
    KT_INTEQ(ks_money_exponent("XXX"), -1);
    KT_INTEQ(ks_money_exponent("idr"), -1);
    KT_INTEQ(ks_money_exponent(""), -1);
    KT_INTEQ(ks_money_exponent(NULL), -1);
}

static const struct {
    const char *in, *currency;
    int64_t minor;
} good[] = {
    {"150000.00", "IDR", 15000000},
    {"0.01", "IDR", 1},
    {"0", "IDR", 0},
    {"5.5", "IDR", 550}, /* fewer fraction digits than the exponent are fine */
    {"1000000000.00", "IDR", INT64_C(100000000000)},
    {"5", "JPY", 5},
    {"10000000", "JPY", 10000000},
    {"1.250", "KWD", 1250},
    {"0.001", "KWD", 1},
    {"7", "KWD", 7000},
    {"999999999999999999", "JPY", INT64_C(999999999999999999)}, /* 18 digits */
    {"92233720368547758.07", "IDR", INT64_MAX},
};

KT_TEST(test_parse_good)
{
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct ks_money m = {0, ""};
        struct ks_err err;
        err_poison(&err);
        KT_CHECK_MSG(ks_money_parse(good[i].in, good[i].currency, "amount", &m, &err) == KS_OK,
                     "\"%s\" %s: %s", good[i].in, good[i].currency, err.msg);
        KT_INTEQ(m.minor, good[i].minor);
        KT_STREQ(m.currency, good[i].currency);
        KT_CHECK(err_untouched(&err));
    }
}

static const struct {
    const char *in, *currency;
    enum ks_code code;
    const char *reason; /* a substring of err.msg */
} bad[] = {
    {"1e5", "IDR", KS_EINVAL, "exponent"},
    {"1E5", "IDR", KS_EINVAL, "exponent"},
    {"-0", "IDR", KS_EINVAL, "sign"},
    {"-5.00", "IDR", KS_EINVAL, "sign"},
    {"+5", "IDR", KS_EINVAL, "sign"},
    {"1,000", "IDR", KS_EINVAL, "grouping"},
    {"1_000", "IDR", KS_EINVAL, "grouping"},
    {"5.", "IDR", KS_EINVAL, "no digits after decimal point"},
    {".5", "IDR", KS_EINVAL, "no digits before decimal point"},
    {"1.2.3", "IDR", KS_EINVAL, "more than one decimal point"},
    {" 5", "IDR", KS_EINVAL, "whitespace"},
    {"5 ", "IDR", KS_EINVAL, "whitespace"},
    {"5\n", "IDR", KS_EINVAL, "whitespace"},
    {"", "IDR", KS_EINVAL, "empty"},
    {"abc", "IDR", KS_EINVAL, "only digits"},
    {"0x10", "IDR", KS_EINVAL, "only digits"},
    {"12345678901234567890", "IDR", KS_EINVAL, "more than 18 integer digits"},
    {"12345678901234567890", "JPY", KS_EINVAL, "more than 18 integer digits"},
    {"1234567890123456789", "JPY", KS_EINVAL, "more than 18 integer digits"},
    {"1.001", "IDR", KS_EINVAL, "too many decimal places for IDR (at most 2)"},
    {"1.0001", "KWD", KS_EINVAL, "too many decimal places for KWD (at most 3)"},
    {"5.0", "JPY", KS_EINVAL, "JPY takes no decimal places"},
    {"5", "XXX", KS_EINVAL, "unknown currency \"XXX\""},
    {"5", "idr", KS_EINVAL, "unknown currency \"idr\""},
    {"5", "", KS_EINVAL, "unknown currency"},
    /* 18 integer digits are accepted, but times 100 they leave int64 */
    {"999999999999999999", "IDR", KS_ERANGE, "too large"},
    {"92233720368547758.08", "IDR", KS_ERANGE, "too large"},
};

KT_TEST(test_parse_bad_names_reason_and_field)
{
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct ks_money m = {42, "JPY"};
        struct ks_err err;
        ks_err_clear(&err);
        enum ks_code rc = ks_money_parse(bad[i].in, bad[i].currency,
                                         "payment_orders[0].amount", &m, &err);
        KT_CHECK_MSG(rc == bad[i].code, "\"%s\" %s: got %s want %s", bad[i].in,
                     bad[i].currency, ks_code_name(rc), ks_code_name(bad[i].code));
        KT_INTEQ(err.code, bad[i].code);
        KT_CHECK_MSG(strstr(err.msg, bad[i].reason) != NULL, "\"%s\": msg \"%s\" lacks \"%s\"",
                     bad[i].in, err.msg, bad[i].reason);
        KT_STREQ(err.field, "payment_orders[0].amount");
        KT_INTEQ(err.retriable, 0);
        /* out is not written on failure */
        KT_INTEQ(m.minor, 42);
        KT_STREQ(m.currency, "JPY");
    }
}

KT_TEST(test_parse_null_input)
{
    struct ks_money m;
    struct ks_err err;

    KT_INTEQ(ks_money_parse(NULL, "IDR", "amount", &m, &err), KS_EINVAL);
    KT_CHECK(strstr(err.msg, "empty") != NULL);
    KT_INTEQ(ks_money_parse("5", NULL, "amount", &m, &err), KS_EINVAL);
    KT_CHECK(strstr(err.msg, "unknown currency") != NULL);
}

KT_TEST(test_round_trip)
{
    static const struct {
        const char *s, *currency;
    } rt[] = {
        {"150000.00", "IDR"}, {"0.01", "IDR"}, {"1000000000.00", "IDR"}, {"0.00", "IDR"},
        {"5", "JPY"},         {"0", "JPY"},    {"1.250", "KWD"},         {"0.001", "KWD"},
        {"92233720368547758.07", "IDR"},       {"999999999999999999", "JPY"},
    };

    for (size_t i = 0; i < sizeof(rt) / sizeof(rt[0]); i++) {
        struct ks_money m;
        struct ks_err err;
        char buf[KS_MONEY_STRLEN];
        KT_CHECK(ks_money_parse(rt[i].s, rt[i].currency, "amount", &m, &err) == KS_OK);
        ks_money_format(&m, buf, sizeof(buf));
        KT_STREQ(buf, rt[i].s);
    }
}

KT_TEST(test_format)
{
    static const struct {
        int64_t minor;
        const char *currency, *want;
    } f[] = {
        {15000000, "IDR", "150000.00"},
        {5, "IDR", "0.05"},
        {-150, "IDR", "-1.50"},
        {-5, "JPY", "-5"},
        {1250, "KWD", "1.250"},
        {-1, "KWD", "-0.001"},
        {INT64_MIN, "IDR", "-92233720368547758.08"},
        {INT64_MAX, "JPY", "9223372036854775807"},
    };

    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
        struct ks_money m = {f[i].minor, ""};
        char buf[KS_MONEY_STRLEN];
        memcpy(m.currency, f[i].currency, 4);
        ks_money_format(&m, buf, sizeof(buf));
        KT_STREQ(buf, f[i].want);
    }
}

KT_TEST(test_bounds_idr)
{
    static const struct {
        const char *amount;
        enum ks_code code;
        const char *reason;
    } b[] = {
        {"0.00", KS_ERANGE, "below minimum 0.01 IDR"},
        {"0.01", KS_OK, NULL},
        {"1000000000.00", KS_OK, NULL},
        {"1000000000.01", KS_ERANGE, "above maximum 1000000000.00 IDR"},
        {"5000000000", KS_ERANGE, "above maximum"},
    };

    for (size_t i = 0; i < sizeof(b) / sizeof(b[0]); i++) {
        struct ks_money m;
        struct ks_err err;
        KT_CHECK(ks_money_parse(b[i].amount, "IDR", "amount", &m, &err) == KS_OK);
        err_poison(&err);
        enum ks_code rc = ks_money_check_bounds(&m, "payment_orders[1].amount", &err);
        KT_CHECK_MSG(rc == b[i].code, "%s: %s", b[i].amount, ks_code_name(rc));
        if (b[i].reason) {
            KT_CHECK_MSG(strstr(err.msg, b[i].reason) != NULL, "%s: \"%s\"", b[i].amount,
                         err.msg);
            KT_STREQ(err.field, "payment_orders[1].amount");
        } else {
            KT_CHECK(err_untouched(&err));
        }
    }
}

KT_TEST(test_bounds_other_currencies)
{
    struct ks_money jpy0 = {0, "JPY"}, jpy1 = {1, "JPY"}, kwd1 = {1, "KWD"},
                    neg = {-100, "IDR"}, unknown = {100, "XXX"};
    struct ks_err err;

    KT_INTEQ(ks_money_check_bounds(&jpy0, "a", &err), KS_ERANGE);
    KT_CHECK(strstr(err.msg, "below minimum 1 JPY") != NULL);
    KT_INTEQ(ks_money_check_bounds(&jpy1, "a", &err), KS_OK);
    KT_INTEQ(ks_money_check_bounds(&kwd1, "a", &err), KS_OK);
    KT_INTEQ(ks_money_check_bounds(&neg, "a", &err), KS_ERANGE);
    KT_INTEQ(ks_money_check_bounds(&unknown, "a", &err), KS_EINVAL);
    KT_CHECK(strstr(err.msg, "unknown currency") != NULL);
}

KT_TEST(test_add_sub)
{
    struct ks_money a = {150, "IDR"}, b = {25, "IDR"}, r;
    struct ks_err err;

    err_poison(&err);
    KT_INTEQ(ks_money_add(&a, &b, &r, &err), KS_OK);
    KT_INTEQ(r.minor, 175);
    KT_STREQ(r.currency, "IDR");
    KT_INTEQ(ks_money_sub(&b, &a, &r, &err), KS_OK);
    KT_INTEQ(r.minor, -125);
    KT_CHECK(err_untouched(&err));

    /* out may alias an input */
    KT_INTEQ(ks_money_add(&a, &a, &a, &err), KS_OK);
    KT_INTEQ(a.minor, 300);
}

KT_TEST(test_add_sub_overflow_and_mismatch)
{
    struct ks_money max = {INT64_MAX, "IDR"}, min = {INT64_MIN, "IDR"}, one = {1, "IDR"},
                    jpy = {1, "JPY"}, r = {7, "KWD"};
    struct ks_err err;

    KT_INTEQ(ks_money_add(&max, &one, &r, &err), KS_EOVERFLOW);
    KT_INTEQ(err.code, KS_EOVERFLOW);
    KT_CHECK(strstr(err.msg, "overflow") != NULL);
    KT_INTEQ(ks_money_sub(&min, &one, &r, &err), KS_EOVERFLOW);
    KT_INTEQ(ks_money_sub(&one, &min, &r, &err), KS_EOVERFLOW);
    KT_INTEQ(ks_money_add(&min, &min, &r, &err), KS_EOVERFLOW);
    /* untouched on failure */
    KT_INTEQ(r.minor, 7);
    KT_STREQ(r.currency, "KWD");
    /* the edges themselves are fine */
    KT_INTEQ(ks_money_sub(&max, &one, &r, &err), KS_OK);
    KT_INTEQ(r.minor, INT64_MAX - 1);
    KT_INTEQ(ks_money_add(&min, &one, &r, &err), KS_OK);

    KT_INTEQ(ks_money_add(&one, &jpy, &r, &err), KS_EINVAL);
    KT_CHECK(strstr(err.msg, "currency mismatch") != NULL);
    KT_INTEQ(ks_money_sub(&one, &jpy, &r, &err), KS_EINVAL);
}

KT_TEST(test_bps)
{
    static const struct {
        int64_t minor, bps, want;
    } t[] = {
        {10000, 250, 250},       /* 2.5% of 100.00 */
        {15000000, 290, 435000}, /* 2.9% of 150000.00 */
        {1, 5000, 1},            /* 0.5 rounds up */
        {1, 4999, 0},
        {3, 5000, 2},            /* 1.5 -> 2 */
        {-1, 5000, -1},          /* half away from zero */
        {-1, 4999, 0},
        {0, 250, 0},
    };
    struct ks_money r;
    struct ks_err err;

    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct ks_money m = {t[i].minor, "IDR"};
        KT_INTEQ(ks_money_bps(&m, t[i].bps, &r, &err), KS_OK);
        KT_INTEQ(r.minor, t[i].want);
        KT_STREQ(r.currency, "IDR");
    }
    struct ks_money big = {INT64_MAX / 2, "IDR"};
    KT_INTEQ(ks_money_bps(&big, 10000, &r, &err), KS_EOVERFLOW);
}

KT_MAIN(test_exponents, test_parse_good, test_parse_bad_names_reason_and_field,
        test_parse_null_input, test_round_trip, test_format, test_bounds_idr,
        test_bounds_other_currencies, test_add_sub, test_add_sub_overflow_and_mismatch,
        test_bps)
