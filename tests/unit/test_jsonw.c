/* test_jsonw.c - the JSON writer: exact text, commas in nested objects and arrays, escaping
 * (parsed back with jansson), growth from a stack buffer to the heap, ks_jw_take. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "lib/jsonw.h"
#include "tests/unit/ktest.h"

KT_TEST(test_exact_text)
{
    struct ks_jw w;
    size_t len = 0;
    char *s;

    ks_jw_init(&w, NULL, 0);
    ks_jw_open(&w, NULL);
    ks_jw_str(&w, "a", "x");
    ks_jw_int(&w, "n", -42);
    ks_jw_str(&w, "z", NULL);
    ks_jw_open_array(&w, "list");
    ks_jw_open(&w, NULL);
    ks_jw_int(&w, "i", 0);
    ks_jw_close(&w, '}');
    ks_jw_open(&w, NULL);
    ks_jw_close(&w, '}');
    ks_jw_str(&w, NULL, "e");
    ks_jw_int(&w, NULL, INT64_MIN);
    ks_jw_close(&w, ']');
    ks_jw_open_array(&w, "empty");
    ks_jw_close(&w, ']');
    ks_jw_json(&w, "raw", "{\"k\":[1,2]}");
    ks_jw_close(&w, '}');
    s = ks_jw_take(&w, &len);
    KT_CHECK(s != NULL);
    if (s) {
        KT_STREQ(s, "{\"a\":\"x\",\"n\":-42,\"z\":null,\"list\":[{\"i\":0},{},\"e\","
                    "-9223372036854775808],\"empty\":[],\"raw\":{\"k\":[1,2]}}");
        KT_INTEQ(len, strlen(s));
    }
    free(s);
    /* taken: the writer is empty and usable again */
    KT_INTEQ(w.len, 0);
    ks_jw_raw(&w, "[]");
    s = ks_jw_take(&w, NULL);
    KT_CHECK(s && strcmp(s, "[]") == 0);
    free(s);
}

/* Every byte value in a string round-trips through jansson: controls escaped, quotes and
 * backslashes escaped, valid UTF-8 kept, invalid bytes replaced by U+FFFD. */
KT_TEST(test_escaping)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"plain", "plain"},
        {"q\"b\\s/", "q\"b\\s/"},
        {"\n\r\t\b\f\x01\x1f\x7f", "\n\r\t\b\f\x01\x1f\x7f"},
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x92\xb8", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x92\xb8"},
        {"bad\xff", "bad\xef\xbf\xbd"},
        {"over\xc0\xaf", "over\xef\xbf\xbd\xef\xbf\xbd"},
        {"surr\xed\xa0\x80", "surr\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"cut\xe2\x82", "cut\xef\xbf\xbd\xef\xbf\xbd"},
        {"", ""},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ks_jw w;
        json_error_t je;
        json_t *o;
        char *s;

        ks_jw_init(&w, NULL, 0);
        ks_jw_open(&w, NULL);
        ks_jw_str(&w, "v", cases[i].in);
        ks_jw_close(&w, '}');
        s = ks_jw_take(&w, NULL);
        o = s ? json_loads(s, 0, &je) : NULL;
        KT_CHECK_MSG(o != NULL, "case %zu: %s", i, s ? je.text : "no text");
        if (o)
            KT_CHECK_MSG(strcmp(json_string_value(json_object_get(o, "v")), cases[i].out) == 0,
                         "case %zu", i);
        json_decref(o);
        free(s);
    }
}

/* A document far larger than the stack buffer moves to the heap intact; the stack copy
 * is never freed (ASan would catch it). */
KT_TEST(test_growth)
{
    char stack[100];
    struct ks_jw w;
    json_t *o;
    char *s;
    int i;

    ks_jw_init(&w, stack, sizeof(stack));
    ks_jw_open_array(&w, NULL);
    for (i = 0; i < 5000; i++)
        ks_jw_int(&w, NULL, i);
    ks_jw_close(&w, ']');
    KT_CHECK(w.heap == 1);
    s = ks_jw_take(&w, NULL);
    o = s ? json_loads(s, 0, NULL) : NULL;
    KT_INTEQ(json_array_size(o), 5000);
    KT_INTEQ(json_integer_value(json_array_get(o, 4999)), 4999);
    json_decref(o);
    free(s);

    /* a small document stays on the stack until taken: take copies it */
    ks_jw_init(&w, stack, sizeof(stack));
    ks_jw_raw(&w, "{}");
    KT_CHECK(w.heap == 0 && w.p == stack);
    s = ks_jw_take(&w, NULL);
    KT_CHECK(s && s != stack && strcmp(s, "{}") == 0);
    free(s);

    /* the reserve: ks_jw_tail always fits after any put */
    ks_jw_init(&w, stack, sizeof(stack));
    for (i = 0; i < 200; i++) {
        ks_jw_raw(&w, "x");
        KT_CHECK(w.cap - w.len >= KS_JW_RESERVE);
    }
    ks_jw_tail(&w, "}\n");
    KT_INTEQ(w.len, 202);
    KT_CHECK(memcmp(w.p + 200, "}\n", 2) == 0);
    ks_jw_free(&w);
}

/* base64 members: padded, unescaped, and growing the buffer like any other append */
KT_TEST(test_b64)
{
    char stack[80];
    static char big[3000];
    struct ks_jw w;
    json_t *o;
    char *s;

    ks_jw_init(&w, stack, sizeof(stack));
    ks_jw_open(&w, NULL);
    ks_jw_b64(&w, "a", "hello", 5);
    ks_jw_b64(&w, "e", "", 0);
    ks_jw_b64(&w, "b", "\xff\xfe", 2);
    ks_jw_close(&w, '}');
    s = ks_jw_take(&w, NULL);
    KT_CHECK(s && strcmp(s, "{\"a\":\"aGVsbG8=\",\"e\":\"\",\"b\":\"//4=\"}") == 0);
    free(s);

    memset(big, 'x', sizeof(big));
    ks_jw_init(&w, stack, sizeof(stack));
    ks_jw_open(&w, NULL);
    ks_jw_b64(&w, "big", big, sizeof(big));
    ks_jw_close(&w, '}');
    s = ks_jw_take(&w, NULL);
    o = s ? json_loads(s, 0, NULL) : NULL;
    KT_INTEQ(strlen(json_string_value(json_object_get(o, "big"))), 4000);
    json_decref(o);
    free(s);
}

/* Length-bounded strings: NULs are data (\u0000), and a multi-byte sequence cut by the
 * length is invalid even when the bytes after it would complete it (the copies below are
 * heap blocks of exactly len bytes, so ASan sees any read past the end). */
KT_TEST(test_quoten)
{
    static const struct {
        const char *in;
        size_t len;
        const char *text;
    } cases[] = {
        {"E\0second", 8, "\"E\\u0000second\""},
        {"\0", 1, "\"\\u0000\""},
        {"ab\0", 3, "\"ab\\u0000\""},
        {"caf\xc3\xa9", 5, "\"caf\xc3\xa9\""},
        {"caf\xc3\xa9", 4, "\"caf\\ufffd\""},
        {"\xe2\x82\xac", 2, "\"\\ufffd\\ufffd\""},
        {"\xf0\x9f\x92\xb8", 3, "\"\\ufffd\\ufffd\\ufffd\""},
        {"stop", 2, "\"st\""},
        {"", 0, "\"\""},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ks_jw w;
        char *in = malloc(cases[i].len ? cases[i].len : 1), *s;
        json_t *o;

        memcpy(in, cases[i].in, cases[i].len);
        ks_jw_init(&w, NULL, 0);
        KT_INTEQ(ks_jw_quoten(&w, in, cases[i].len), 0);
        s = ks_jw_take(&w, NULL);
        KT_CHECK_MSG(s && strcmp(s, cases[i].text) == 0, "case %zu: %s", i, s ? s : "-");
        o = s ? json_loads(s, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL) : NULL;
        KT_CHECK_MSG(json_is_string(o), "case %zu parses", i);
        json_decref(o);
        free(s);
        free(in);
    }

    /* a member: the value whole, NUL included, as jansson reads it back */
    {
        struct ks_jw w;
        json_t *o;
        char *s;

        ks_jw_init(&w, NULL, 0);
        ks_jw_open(&w, NULL);
        ks_jw_strn(&w, "v", "a\0b", 3);
        ks_jw_strn(&w, "n", NULL, 5);
        ks_jw_close(&w, '}');
        s = ks_jw_take(&w, NULL);
        o = s ? json_loads(s, JSON_ALLOW_NUL, NULL) : NULL;
        KT_INTEQ(json_string_length(json_object_get(o, "v")), 3);
        KT_CHECK(o && memcmp(json_string_value(json_object_get(o, "v")), "a\0b", 3) == 0);
        KT_CHECK(json_is_null(json_object_get(o, "n")));
        json_decref(o);
        free(s);
    }
}

KT_TEST(test_utf8_valid)
{
    static const struct {
        const char *s;
        int ok;
    } cases[] = {
        {"", 1},
        {"ord_1 a-b", 1},
        {"\xc3\xa9t\xc3\xa9", 1},        /* été */
        {"\xe2\x82\xac", 1},              /* € */
        {"\xf0\x9f\x98\x80", 1},          /* U+1F600 */
        {"\xff", 0},                       /* never a UTF-8 byte */
        {"\xc3", 0},                       /* cut by the end */
        {"\xc0\xaf", 0},                   /* overlong '/' */
        {"\xed\xa0\x80", 0},               /* a surrogate */
        {"\xf4\x90\x80\x80", 0},           /* above U+10FFFF */
        {"ok\x80", 0},                     /* a lone continuation byte */
        {"\xe0\x80\xaf", 0},               /* overlong, 3 bytes */
        {"\xf0\x80\x80\xaf", 0},           /* overlong, 4 bytes */
        {"\xf5\x80\x80\x80", 0},           /* F5 never starts a character */
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        KT_CHECK_MSG(ks_utf8_valid(cases[i].s, strlen(cases[i].s)) == cases[i].ok, "case %zu", i);
}

KT_TEST(test_utf8_prefix)
{
    const char *s = "ab\xc3\xa9\xe2\x82\xac"; /* a b é € : bytes 1 1 2 3 */
    size_t max;

    KT_INTEQ(ks_utf8_prefix(s, 0), 0);
    KT_INTEQ(ks_utf8_prefix(s, 2), 2);
    KT_INTEQ(ks_utf8_prefix(s, 3), 2); /* not half of é */
    KT_INTEQ(ks_utf8_prefix(s, 4), 4);
    KT_INTEQ(ks_utf8_prefix(s, 5), 4); /* not a third of € */
    KT_INTEQ(ks_utf8_prefix(s, 6), 4);
    KT_INTEQ(ks_utf8_prefix(s, 7), 7);
    KT_INTEQ(ks_utf8_prefix(s, 100), 7);
    for (max = 0; max < 9; max++)
        KT_CHECK_MSG(ks_utf8_valid(s, ks_utf8_prefix(s, max)), "max %zu", max);
}

/* text a buffer has already cut: the cut character's bytes are left out, nothing else */
KT_TEST(test_utf8_uncut)
{
    KT_INTEQ(ks_utf8_uncut(""), 0);
    KT_INTEQ(ks_utf8_uncut("ab\xc3\xa9"), 4);         /* whole */
    KT_INTEQ(ks_utf8_uncut("ab\xc3"), 2);              /* é cut after its first byte */
    KT_INTEQ(ks_utf8_uncut("a\xe2\x82"), 1);          /* € cut after two of three */
    KT_INTEQ(ks_utf8_uncut("a\xf0\x9f\x98"), 1);      /* an emoji cut after three of four */
    KT_INTEQ(ks_utf8_uncut("\xf0\x9f\x98\x80x"), 5); /* whole */
}

KT_MAIN(test_exact_text, test_escaping, test_growth, test_b64, test_quoten, test_utf8_valid,
        test_utf8_prefix, test_utf8_uncut)
