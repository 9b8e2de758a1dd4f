/* money.h - amounts as int64 minor units with an ISO 4217 currency; never a double.
 *
 * Exponents come from one table (ks_money_exponent). Decimal strings are parsed strictly:
 * digits, optionally one '.' followed by 1..exponent digits; no sign, exponent, grouping,
 * whitespace, leading '.', trailing '.'. Arithmetic is overflow-checked. */
#ifndef KS_MONEY_H
#define KS_MONEY_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct ks_money {
    int64_t minor;    /* amount in the currency's minor units (cents, sen, fils) */
    char currency[4]; /* ISO 4217 alphabetic code, NUL-terminated, upper case */
};

/* Longest string ks_money_format writes, with its NUL. */
#define KS_MONEY_STRLEN 32

/* Minor-unit exponent of a currency (IDR 2, JPY 0, KWD 3), or -1 when unknown. */
int ks_money_exponent(const char *currency);

/* Parses "150000.00" in currency into out. Rejects, naming the reason in err->msg:
 * unknown currency, empty, sign ("-0", "+5"), exponent ("1e5"), grouping ("1,000"),
 * whitespace, "5." and ".5", more fraction digits than the currency has, more than 18
 * integer digits. field names the input in err->field. Zero is allowed here; callers
 * bound with ks_money_check_bounds. */
enum ks_code ks_money_parse(const char *s, const char *currency, const char *field,
                            struct ks_money *out, struct ks_err *err)
    __attribute__((warn_unused_result));

/* Writes the amount with exactly exponent fraction digits ("150000.00", "5", "1.250").
 * buf must hold KS_MONEY_STRLEN bytes. Negative amounts get a leading '-'. */
void ks_money_format(const struct ks_money *m, char *buf, size_t len);

/* out = a + b / a - b; KS_EOVERFLOW on overflow, KS_EINVAL on currency mismatch. */
enum ks_code ks_money_add(const struct ks_money *a, const struct ks_money *b,
                          struct ks_money *out, struct ks_err *err)
    __attribute__((warn_unused_result));
enum ks_code ks_money_sub(const struct ks_money *a, const struct ks_money *b,
                          struct ks_money *out, struct ks_err *err)
    __attribute__((warn_unused_result));

/* Per-order bounds of SPEC 4: IDR 0.01 to 1,000,000,000.00; other known currencies
 * from their minimum unit up to the per-currency maximum in the table. KS_ERANGE names
 * field and the bound broken. */
enum ks_code ks_money_check_bounds(const struct ks_money *m, const char *field,
                                   struct ks_err *err) __attribute__((warn_unused_result));

/* basis points of an amount, rounded half up (fees): KS_EOVERFLOW if it would overflow. */
enum ks_code ks_money_bps(const struct ks_money *m, int64_t bps, struct ks_money *out,
                          struct ks_err *err) __attribute__((warn_unused_result));

#endif
