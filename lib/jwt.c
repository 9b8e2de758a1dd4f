/* jwt.c - see jwt.h */
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "jwt.h"
#include "banned.h"

static const char jwt_header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

static char *b64url_dup(const void *in, size_t len)
{
    char *out = malloc(ks_b64_enclen(len) + 1);

    if (out)
        ks_b64url_encode(in, len, out);
    return out;
}

char *ks_jwt_sign(const json_t *claims, const void *key, size_t klen, struct ks_err *err)
{
    char *payload = NULL, *h64 = NULL, *p64 = NULL, *tok = NULL, *s64 = NULL;
    uint8_t mac[KS_SHA256_LEN];
    size_t hl, pl, sl;

    payload = json_dumps(claims, JSON_COMPACT | JSON_SORT_KEYS);
    if (!payload || !(h64 = b64url_dup(jwt_header, strlen(jwt_header))) ||
        !(p64 = b64url_dup(payload, strlen(payload)))) {
        ks_err_set(err, KS_ENOMEM, 0, NULL, "out of memory");
        goto out;
    }
    hl = strlen(h64);
    pl = strlen(p64);
    tok = malloc(hl + pl + 2 + ks_b64_enclen(KS_SHA256_LEN) + 1);
    if (!tok) {
        ks_err_set(err, KS_ENOMEM, 0, NULL, "out of memory");
        goto out;
    }
    memcpy(tok, h64, hl);
    tok[hl] = '.';
    memcpy(tok + hl + 1, p64, pl);
    ks_hmac_sha256(key, klen, tok, hl + 1 + pl, mac);
    if (!(s64 = b64url_dup(mac, sizeof(mac)))) {
        free(tok);
        tok = NULL;
        ks_err_set(err, KS_ENOMEM, 0, NULL, "out of memory");
        goto out;
    }
    sl = strlen(s64);
    tok[hl + 1 + pl] = '.';
    memcpy(tok + hl + 2 + pl, s64, sl + 1);
out:
    free(payload);
    free(h64);
    free(p64);
    free(s64);
    return tok;
}

/* base64url of a JWT part: the url alphabet only, no padding. */
static int b64url_ok(const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return 0;
    }
    return n > 0;
}

static json_t *decode_part(const char *s, size_t n)
{
    uint8_t buf[KS_JWT_MAX_LEN];
    long m = ks_b64_decode(s, n, buf, sizeof(buf));
    json_t *j;

    if (m <= 0)
        return NULL;
    j = json_loadb((const char *)buf, (size_t)m, JSON_REJECT_DUPLICATES, NULL);
    if (j && !json_is_object(j)) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

static int header_ok(const json_t *h)
{
    const char *k;
    json_t *v;

    json_object_foreach((json_t *)h, k, v) {
        if (strcmp(k, "alg") == 0) {
            if (!json_is_string(v) || strcmp(json_string_value(v), "HS256") != 0)
                return 0;
        } else if (strcmp(k, "typ") == 0) {
            if (!json_is_string(v) || strcmp(json_string_value(v), "JWT") != 0)
                return 0;
        } else if (strcmp(k, "kid") != 0) {
            return 0; /* crit, jku, jwk, x5u...: nothing a pinned HS256 verifier honours */
        }
    }
    return json_object_get(h, "alg") != NULL;
}

enum ks_code ks_jwt_verify(const char *token, size_t len, const void *key, size_t klen,
                           int64_t now, int64_t leeway_s, json_t **claims, struct ks_err *err)
{
    const char *d1, *d2;
    json_t *hdr = NULL, *pl = NULL, *v;
    uint8_t mac[KS_SHA256_LEN], sig[KS_SHA256_LEN + 4];
    long sl;
    enum ks_code rc = KS_EAUTH;

    if (len == 0 || len > KS_JWT_MAX_LEN) {
        ks_err_set(err, KS_EAUTH, 0, NULL, "token length out of bounds");
        goto out;
    }
    d1 = memchr(token, '.', len);
    d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token)) : NULL;
    if (!d1 || !d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token)) ||
        !b64url_ok(token, (size_t)(d1 - token)) || !b64url_ok(d1 + 1, (size_t)(d2 - d1 - 1)) ||
        !b64url_ok(d2 + 1, len - (size_t)(d2 + 1 - token))) {
        ks_err_set(err, KS_EAUTH, 0, NULL, "token is not three base64url parts");
        goto out;
    }
    /* the header first: an unexpected algorithm is refused before any other work */
    hdr = decode_part(token, (size_t)(d1 - token));
    if (!hdr || !header_ok(hdr)) {
        ks_err_set(err, KS_EAUTH, 0, NULL, "token header is not {alg: HS256}");
        goto out;
    }
    sl = ks_b64_decode(d2 + 1, len - (size_t)(d2 + 1 - token), sig, sizeof(sig));
    ks_hmac_sha256(key, klen, token, (size_t)(d2 - token), mac);
    if (sl != KS_SHA256_LEN || !ks_ct_equal(mac, sig, KS_SHA256_LEN)) {
        ks_err_set(err, KS_EAUTH, 0, NULL, "token signature does not match");
        goto out;
    }
    pl = decode_part(d1 + 1, (size_t)(d2 - d1 - 1));
    if (!pl) {
        ks_err_set(err, KS_EAUTH, 0, NULL, "token payload is not a json object");
        goto out;
    }
    v = json_object_get(pl, "exp");
    if (!json_is_integer(v)) {
        ks_err_set(err, KS_EAUTH, 0, NULL, "token has no integer exp");
        goto out;
    }
    if (json_integer_value(v) + leeway_s <= now) {
        rc = ks_err_set(err, KS_ERANGE, 0, NULL, "token expired");
        goto out;
    }
    v = json_object_get(pl, "nbf");
    if (v && (!json_is_integer(v) || json_integer_value(v) > now + leeway_s)) {
        rc = ks_err_set(err, KS_ERANGE, 0, NULL, "token not valid yet");
        goto out;
    }
    v = json_object_get(pl, "iat");
    if (v && (!json_is_integer(v) || json_integer_value(v) > now + leeway_s)) {
        rc = ks_err_set(err, KS_ERANGE, 0, NULL, "token issued in the future");
        goto out;
    }
    *claims = pl;
    pl = NULL;
    rc = KS_OK;
out:
    json_decref(hdr);
    json_decref(pl);
    return rc;
}
