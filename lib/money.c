/* money.c - see money.h.
 *
 * Every number here is an int64 of minor units; the only place decimal text meets an
 * integer is ks_money_parse/ks_money_format, and both go digit by digit. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "money.h"

#include "banned.h"

/* One row per currency we accept. min/max are the per-order bounds in minor units
 * (SPEC 4 gives IDR; the others follow the same idea: the smallest unit up to roughly
 * the same order of value). A currency missing here is unknown everywhere. */
struct currency {
    const char *code;
    int exponent;
    int64_t min_minor;
    int64_t max_minor;
};

static const struct currency currencies[] = {
    {"IDR", 2, 1, INT64_C(100000000000)},   /* 0.01 .. 1,000,000,000.00 */
    {"USD", 2, 1, INT64_C(10000000)},       /* 0.01 .. 100,000.00 */
    {"EUR", 2, 1, INT64_C(10000000)},       /* 0.01 .. 100,000.00 */
    {"SGD", 2, 1, INT64_C(10000000)},       /* 0.01 .. 100,000.00 */
    {"MYR", 2, 1, INT64_C(50000000)},       /* 0.01 .. 500,000.00 */
    {"THB", 2, 1, INT64_C(300000000)},      /* 0.01 .. 3,000,000.00 */
    {"PHP", 2, 1, INT64_C(500000000)},      /* 0.01 .. 5,000,000.00 */
    {"JPY", 0, 1, INT64_C(10000000)},       /* 1 .. 10,000,000 */
    {"KRW", 0, 1, INT64_C(100000000)},      /* 1 .. 100,000,000 */
    {"VND", 0, 1, INT64_C(2000000000)},     /* 1 .. 2,000,000,000 */
    {"KWD", 3, 1, INT64_C(30000000)},       /* 0.001 .. 30,000.000 */
    {"BHD", 3, 1, INT64_C(40000000)},       /* 0.001 .. 40,000.000 */
};

/* The header promises at most 18 integer digits: 10^18 - 1 still fits int64 before the
 * exponent is applied, so counting digits is the overflow check for the integer part. */
#define MAX_INT_DIGITS 18

static const struct currency *find_currency(const char *code)
{
    if (!code)
        return NULL;
    for (size_t i = 0; i < sizeof(currencies) / sizeof(currencies[0]); i++)
        if (strcmp(currencies[i].code, code) == 0)
            return &currencies[i];
    return NULL;
}

int ks_money_exponent(const char *currency)
{
    const struct currency *c = find_currency(currency);
    return c ? c->exponent : -1;
}

/* Why a character that is not a digit or the decimal point is refused; the message is
 * what a partner reads in the 400 response. */
static const char *reject_reason(char ch)
{
    switch (ch) {
    case '-':
    case '+':
        return "sign not allowed";
    case 'e':
    case 'E':
        return "exponent notation not allowed";
    case ',':
    case '_':
    case '\'':
        return "digit grouping not allowed";
    case ' ':
    case '\t':
    case '\n':
    case '\r':
    case '\v':
    case '\f':
        return "whitespace not allowed";
    default:
        return "only digits and one decimal point allowed";
    }
}

enum ks_code ks_money_parse(const char *s, const char *currency, const char *field,
                            struct ks_money *out, struct ks_err *err)
{
    enum ks_code rc = KS_EINVAL;
    const struct currency *c = find_currency(currency);
    int64_t whole = 0, frac = 0, minor = 0;
    int int_digits = 0, frac_digits = 0, seen_point = 0;

    if (!c) {
        /* currency comes from the request: quote it, but bounded so msg stays readable */
        ks_err_set(err, KS_EINVAL, 0, field, "unknown currency \"%.8s\"",
                   currency ? currency : "");
        goto out;
    }
    if (!s || !*s) {
        ks_err_set(err, KS_EINVAL, 0, field, "empty amount");
        goto out;
    }
    for (const char *p = s; *p; p++) {
        if (*p >= '0' && *p <= '9') {
            if (seen_point) {
                if (++frac_digits > c->exponent)
                    break; /* reported below, with the currency's exponent */
                frac = frac * 10 + (*p - '0');
            } else {
                if (++int_digits > MAX_INT_DIGITS)
                    break;
                whole = whole * 10 + (*p - '0');
            }
        } else if (*p == '.') {
            if (seen_point) {
                ks_err_set(err, KS_EINVAL, 0, field, "more than one decimal point");
                goto out;
            }
            if (int_digits == 0) {
                ks_err_set(err, KS_EINVAL, 0, field, "no digits before decimal point");
                goto out;
            }
            seen_point = 1;
        } else {
            ks_err_set(err, KS_EINVAL, 0, field, "%s", reject_reason(*p));
            goto out;
        }
    }
    if (int_digits > MAX_INT_DIGITS) {
        ks_err_set(err, KS_EINVAL, 0, field, "more than %d integer digits", MAX_INT_DIGITS);
        goto out;
    }
    if (frac_digits > c->exponent) {
        if (c->exponent == 0)
            ks_err_set(err, KS_EINVAL, 0, field, "%s takes no decimal places", c->code);
        else
            ks_err_set(err, KS_EINVAL, 0, field,
                       "too many decimal places for %s (at most %d)", c->code, c->exponent);
        goto out;
    }
    if (seen_point && frac_digits == 0) {
        ks_err_set(err, KS_EINVAL, 0, field, "no digits after decimal point");
        goto out;
    }
    /* "5.5" in IDR is 5.50: scale the fraction up to the exponent */
    for (int i = frac_digits; i < c->exponent; i++)
        frac *= 10;
    minor = whole;
    for (int i = 0; i < c->exponent; i++) {
        if (__builtin_mul_overflow(minor, 10, &minor)) {
            rc = ks_err_set(err, KS_ERANGE, 0, field, "amount too large");
            goto out;
        }
    }
    if (__builtin_add_overflow(minor, frac, &minor)) {
        rc = ks_err_set(err, KS_ERANGE, 0, field, "amount too large");
        goto out;
    }
    out->minor = minor;
    memcpy(out->currency, c->code, sizeof(out->currency));
    rc = KS_OK;
out:
    return rc;
}

void ks_money_format(const struct ks_money *m, char *buf, size_t len)
{
    /* |INT64_MIN| does not fit int64: work on the magnitude as uint64 */
    uint64_t mag = m->minor < 0 ? (uint64_t)0 - (uint64_t)m->minor : (uint64_t)m->minor;
    int exp = ks_money_exponent(m->currency);
    uint64_t scale = 1, rest;
    char frac[8];

    if (len == 0)
        return;
    if (exp <= 0 || exp >= (int)sizeof(frac)) {
        snprintf(buf, len, "%s%llu", m->minor < 0 ? "-" : "", (unsigned long long)mag);
        return;
    }
    /* exponents in the table are at most 3: the fraction always fits frac */
    for (int i = 0; i < exp; i++)
        scale *= 10;
    rest = mag % scale;
    for (int i = exp - 1; i >= 0; i--) {
        frac[i] = (char)('0' + rest % 10);
        rest /= 10;
    }
    frac[exp] = '\0';
    snprintf(buf, len, "%s%llu.%s", m->minor < 0 ? "-" : "",
             (unsigned long long)(mag / scale), frac);
}

static enum ks_code same_currency(const struct ks_money *a, const struct ks_money *b,
                                  struct ks_err *err)
{
    if (strncmp(a->currency, b->currency, sizeof(a->currency)) != 0)
        return ks_err_set(err, KS_EINVAL, 0, NULL, "currency mismatch: %.3s and %.3s",
                          a->currency, b->currency);
    return KS_OK;
}

/* a + b (subtract 0) or a - b (subtract 1), in one currency */
static enum ks_code add_or_sub(const struct ks_money *a, const struct ks_money *b, int subtract,
                               struct ks_money *out, struct ks_err *err)
{
    enum ks_code rc;
    int64_t r;

    rc = same_currency(a, b, err);
    if (rc != KS_OK)
        goto out;
    if (subtract ? __builtin_sub_overflow(a->minor, b->minor, &r)
                 : __builtin_add_overflow(a->minor, b->minor, &r)) {
        rc = ks_err_set(err, KS_EOVERFLOW, 0, NULL, "%s overflows int64 minor units",
                        subtract ? "subtraction" : "addition");
        goto out;
    }
    /* written last so that out may alias a or b */
    memcpy(out->currency, a->currency, sizeof(out->currency));
    out->minor = r;
out:
    return rc;
}

enum ks_code ks_money_add(const struct ks_money *a, const struct ks_money *b,
                          struct ks_money *out, struct ks_err *err)
{
    return add_or_sub(a, b, 0, out, err);
}

enum ks_code ks_money_sub(const struct ks_money *a, const struct ks_money *b,
                          struct ks_money *out, struct ks_err *err)
{
    return add_or_sub(a, b, 1, out, err);
}

enum ks_code ks_money_check_bounds(const struct ks_money *m, const char *field,
                                   struct ks_err *err)
{
    enum ks_code rc = KS_OK;
    char cur[5];
    const struct currency *c;
    char bound[KS_MONEY_STRLEN];
    const char *side = NULL;
    struct ks_money b;

    /* currency[] may come unterminated from a careless caller: never read past it */
    memcpy(cur, m->currency, 4);
    cur[4] = '\0';
    c = find_currency(cur);
    if (!c) {
        rc = ks_err_set(err, KS_EINVAL, 0, field, "unknown currency \"%s\"", cur);
        goto out;
    }
    memcpy(b.currency, c->code, sizeof(b.currency));
    if (m->minor < c->min_minor) {
        b.minor = c->min_minor;
        side = "below minimum";
    } else if (m->minor > c->max_minor) {
        b.minor = c->max_minor;
        side = "above maximum";
    }
    if (side) {
        ks_money_format(&b, bound, sizeof(bound));
        rc = ks_err_set(err, KS_ERANGE, 0, field, "amount %s %s %s", side, bound, c->code);
    }
out:
    return rc;
}

enum ks_code ks_money_bps(const struct ks_money *m, int64_t bps, struct ks_money *out,
                          struct ks_err *err)
{
    enum ks_code rc = KS_OK;
    int64_t p, r;

    if (__builtin_mul_overflow(m->minor, bps, &p)) {
        rc = ks_err_set(err, KS_EOVERFLOW, 0, NULL, "fee computation overflows");
        goto out;
    }
    /* half up means half away from zero here, so a refund's fee mirrors its charge's */
    if (p >= 0)
        r = p / 10000 + (p % 10000 >= 5000);
    else
        r = p / 10000 - (p % 10000 <= -5000);
    memcpy(out->currency, m->currency, sizeof(out->currency));
    out->minor = r;
out:
    return rc;
}
