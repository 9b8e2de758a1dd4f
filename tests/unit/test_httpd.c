/* test_httpd.c - how every server decodes %HH in paths and arguments (lib/httpd.c,
 * ks_httpd_unescape): as libmicrohttpd does, except %00, which becomes C0 80. */
#include <stdio.h>
#include <string.h>

#include "lib/httpd.h"
#include "tests/unit/ktest.h"

/* the decoded string and its length; the length is what libmicrohttpd keeps */
static int unescaped(const char *in, const char *want)
{
    char buf[128];
    size_t n;

    snprintf(buf, sizeof(buf), "%s", in);
    n = ks_httpd_unescape(NULL, NULL, buf);
    return n == strlen(want) && memcmp(buf, want, n + 1) == 0;
}

/* libmicrohttpd's own decoder and this one agree on s (which holds no %00) */
static int as_libmicrohttpd(const char *s)
{
    char a[128], b[128];
    size_t na, nb;

    snprintf(a, sizeof(a), "%s", s);
    snprintf(b, sizeof(b), "%s", s);
    na = MHD_http_unescape(a);
    nb = ks_httpd_unescape(NULL, NULL, b);
    return na == nb && memcmp(a, b, na + 1) == 0;
}

KT_TEST(test_httpd_unescape_decodes_as_libmicrohttpd)
{
    static const char *const same[] = {
        "/v1/payments/pay_1", "a%20b", "%2Fx%2f", "caf%C3%A9", "pi_%FF", "%01", "%10", "a+b",
        "", "%", "x%2", "%zz%4", "%%41", "%g0", "%0g", "100%", "%%%", "%7e%7E%aB",
        "/v2/ord-1/status?x=%41%42", "%C3%A9%E2%82%AC"};

    KT_CHECK(unescaped("/v1/payments/pay_1", "/v1/payments/pay_1"));
    KT_CHECK(unescaped("a%20b", "a b"));
    KT_CHECK(unescaped("%2Fx%2f", "/x/"));
    KT_CHECK(unescaped("caf%C3%A9", "caf\xc3\xa9"));
    KT_CHECK(unescaped("pi_%FF", "pi_\xff")); /* not UTF-8: each server refuses it itself */
    KT_CHECK(unescaped("%01", "\x01"));
    KT_CHECK(unescaped("%10", "\x10"));
    KT_CHECK(unescaped("a+b", "a+b")); /* '+' is not a space in a path */
    KT_CHECK(unescaped("", ""));
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++)
        KT_CHECK(as_libmicrohttpd(same[i]));
}

KT_TEST(test_httpd_unescape_keeps_malformed_escapes)
{
    KT_CHECK(unescaped("%", "%"));
    KT_CHECK(unescaped("x%2", "x%2"));
    KT_CHECK(unescaped("%zz%4", "%zz%4"));
    KT_CHECK(unescaped("%%41", "%A"));
}

/* a decoded NUL would end the C string the handlers read: pay_x%00y answered for pay_x */
KT_TEST(test_httpd_unescape_nul_is_overlong)
{
    KT_CHECK(unescaped("/v1/payments/pay_x%00y", "/v1/payments/pay_x\xc0\x80y"));
    KT_CHECK(unescaped("%00", "\xc0\x80"));
    KT_CHECK(unescaped("a%00%41%00", "a\xc0\x80" "A\xc0\x80"));
    KT_CHECK(unescaped("limit=10%00", "limit=10\xc0\x80"));
    /* "%2500" is the text "%00", and stays apart from %00 */
    KT_CHECK(unescaped("ord%2500x", "ord%00x"));
}

KT_MAIN(test_httpd_unescape_decodes_as_libmicrohttpd, test_httpd_unescape_keeps_malformed_escapes,
        test_httpd_unescape_nul_is_overlong)
