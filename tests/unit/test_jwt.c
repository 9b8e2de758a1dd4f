/* test_jwt.c - HS256 sign/verify, the RFC 7515 A.1 vector, pinned algorithm, expiry. */
#include <stdlib.h>
#include <string.h>

#include "lib/crypto.h"
#include "lib/jwt.h"
#include "tests/unit/ktest.h"

static const char rfc_token[] =
    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9."
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ."
    "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
static const char rfc_key_hex[] =
    "0323354b2b0fa5bc837e0665777ba68f5ab328e6f054c928a90f84b2d2502ebfd3fb5a92d20647ef968ab4c377623d"
    "223d2e2172052e4f08c0cd9af567d080a3";

KT_TEST(rfc7515_vector)
{
    uint8_t key[64];
    json_t *c = NULL;
    struct ks_err e = {0};

    KT_INTEQ(ks_hex_decode(rfc_key_hex, strlen(rfc_key_hex), key, sizeof(key)), 64);
    KT_INTEQ(ks_jwt_verify(rfc_token, strlen(rfc_token), key, 64, 1300819000, 0, &c, &e), KS_OK);
    KT_STREQ(json_string_value(json_object_get(c, "iss")), "joe");
    json_decref(c);
    c = NULL;
    /* expired after its exp */
    KT_INTEQ(ks_jwt_verify(rfc_token, strlen(rfc_token), key, 64, 1300819381, 0, &c, &e), KS_ERANGE);
    /* a flipped key byte */
    key[0] ^= 1;
    KT_INTEQ(ks_jwt_verify(rfc_token, strlen(rfc_token), key, 64, 1300819000, 0, &c, &e), KS_EAUTH);
}

KT_TEST(round_trip_and_tamper)
{
    json_t *claims = json_pack("{s:s, s:I}", "sub", "ptn_1", "exp", (json_int_t)2000000000);
    struct ks_err e = {0};
    char *tok = ks_jwt_sign(claims, "k", 1, &e), *bad;
    json_t *out = NULL;
    size_t n;

    KT_CHECK(tok != NULL);
    KT_INTEQ(ks_jwt_verify(tok, strlen(tok), "k", 1, 1700000000, 0, &out, &e), KS_OK);
    KT_STREQ(json_string_value(json_object_get(out, "sub")), "ptn_1");
    json_decref(out);
    out = NULL;
    n = strlen(tok);
    bad = strdup(tok);
    bad[n - 2] = bad[n - 2] == 'A' ? 'B' : 'A';
    KT_INTEQ(ks_jwt_verify(bad, n, "k", 1, 1700000000, 0, &out, &e), KS_EAUTH);
    KT_INTEQ(ks_jwt_verify(tok, n, "other", 5, 1700000000, 0, &out, &e), KS_EAUTH);
    KT_INTEQ(ks_jwt_verify(tok, n - 1, "k", 1, 1700000000, 0, &out, &e), KS_EAUTH);
    free(bad);
    free(tok);
    json_decref(claims);
}

KT_TEST(algorithm_pinned)
{
    /* {"alg":"none"} . {"exp":2000000000} . "" and HS512/RS256 headers */
    static const char *const forged[] = {
        "eyJhbGciOiJub25lIn0.eyJleHAiOjIwMDAwMDAwMDB9.",
        "eyJhbGciOiJub25lIn0.eyJleHAiOjIwMDAwMDAwMDB9",
        "eyJhbGciOiJIUzUxMiJ9.eyJleHAiOjIwMDAwMDAwMDB9.AAAA",
        "eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjIwMDAwMDAwMDB9.AAAA",
        "eyJhbGciOiJIUzI1NiIsImNyaXQiOlsiYiJdfQ.eyJleHAiOjIwMDAwMDAwMDB9.AAAA",
        "", "...", "a.b.c.d",
    };
    struct ks_err e = {0};
    json_t *out = NULL;
    size_t i;

    for (i = 0; i < sizeof(forged) / sizeof(forged[0]); i++)
        KT_INTEQ(ks_jwt_verify(forged[i], strlen(forged[i]), "k", 1, 1700000000, 0, &out, &e),
                 KS_EAUTH);
    KT_CHECK(out == NULL);
}

KT_TEST(missing_exp_refused)
{
    json_t *claims = json_pack("{s:s}", "sub", "x");
    struct ks_err e = {0};
    char *tok = ks_jwt_sign(claims, "k", 1, &e);
    json_t *out = NULL;

    KT_INTEQ(ks_jwt_verify(tok, strlen(tok), "k", 1, 1700000000, 0, &out, &e), KS_EAUTH);
    free(tok);
    json_decref(claims);
}

KT_MAIN(rfc7515_vector, round_trip_and_tamper, algorithm_pinned, missing_exp_refused)
