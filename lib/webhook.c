/* webhook.c - see webhook.h */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "crypto.h"
#include "webhook.h"
#include "banned.h"

/* Unix seconds: 1 to 12 digits, nothing else. */
static int parse_ts(const char *s, size_t n, int64_t *out)
{
    int64_t v = 0;
    size_t i;

    if (n == 0 || n > 12)
        return -1;
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static int within(int64_t now, int64_t t, int64_t tolerance)
{
    int64_t d = now > t ? now - t : t - now;
    return d <= tolerance;
}

static void mac_stripe(const char *secret, const char *t, size_t tl, const void *body,
                       size_t len, uint8_t mac[KS_SHA256_LEN])
{
    /* HMAC over "<t>.<body>" without copying the body: HMAC needs one buffer, so the
     * message is assembled once; bodies are bounded by the ingress (webhook.max_body) */
    char *buf = malloc(tl + 1 + len + 1);

    if (!buf) {
        memset(mac, 0, KS_SHA256_LEN);
        return;
    }
    memcpy(buf, t, tl);
    buf[tl] = '.';
    if (len)
        memcpy(buf + tl + 1, body, len);
    ks_hmac_sha256(secret, strlen(secret), buf, tl + 1 + len, mac);
    free(buf);
}

enum ks_code ks_webhook_verify_stripe(const char *header, const void *body, size_t len,
                                      const char *secret, int64_t now, int64_t tolerance,
                                      struct ks_err *err)
{
    const char *p, *t = NULL;
    size_t tl = 0;
    int64_t ts;
    int have_v1 = 0, match = 0;
    uint8_t mac[KS_SHA256_LEN], sig[KS_SHA256_LEN];

    if (!header || !*header)
        return ks_err_set(err, KS_EAUTH, 0, "stripe-signature", "signature header missing");
    if (!secret || !*secret)
        return ks_err_set(err, KS_EAUTH, 0, NULL, "no secret configured");
    for (p = header; *p;) {
        size_t n = strcspn(p, ",");
        if (n > 2 && p[0] == 't' && p[1] == '=') {
            t = p + 2;
            tl = n - 2;
        }
        p += n;
        if (*p == ',')
            p++;
    }
    if (!t || parse_ts(t, tl, &ts) != 0)
        return ks_err_set(err, KS_EAUTH, 0, "stripe-signature", "signature header has no valid t=");
    mac_stripe(secret, t, tl, body, len, mac);
    for (p = header; *p;) {
        size_t n = strcspn(p, ",");
        if (n > 3 && p[0] == 'v' && p[1] == '1' && p[2] == '=') {
            have_v1 = 1;
            if (n - 3 == 2 * KS_SHA256_LEN &&
                ks_hex_decode(p + 3, n - 3, sig, sizeof(sig)) == KS_SHA256_LEN &&
                ks_ct_equal(sig, mac, KS_SHA256_LEN))
                match = 1;
        }
        p += n;
        if (*p == ',')
            p++;
    }
    if (!have_v1)
        return ks_err_set(err, KS_EAUTH, 0, "stripe-signature", "signature header has no v1=");
    if (!match)
        return ks_err_set(err, KS_EAUTH, 0, "stripe-signature", "signature does not match");
    if (!within(now, ts, tolerance))
        return ks_err_set(err, KS_ERANGE, 0, "stripe-signature",
                          "timestamp outside the %lld s tolerance", (long long)tolerance);
    return KS_OK;
}

void ks_webhook_sign_stripe(const char *secret, int64_t t, const void *body, size_t len,
                            char out[KS_WEBHOOK_SIG_LEN])
{
    char ts[24], hex[2 * KS_SHA256_LEN + 1];
    uint8_t mac[KS_SHA256_LEN];
    int n = snprintf(ts, sizeof(ts), "%lld", (long long)t);

    mac_stripe(secret, ts, (size_t)n, body, len, mac);
    ks_hex_encode(mac, sizeof(mac), hex);
    snprintf(out, KS_WEBHOOK_SIG_LEN, "t=%s,v1=%s", ts, hex);
}

/* key of a "whsec_<base64>" secret; -1 when malformed */
static long standard_key(const char *secret, uint8_t *key, size_t cap)
{
    if (!secret || strncmp(secret, "whsec_", 6) != 0)
        return -1;
    return ks_b64_decode(secret + 6, strlen(secret + 6), key, cap);
}

static int standard_mac(const uint8_t *key, size_t klen, const char *id, const char *ts,
                        const void *body, size_t len, uint8_t mac[KS_SHA256_LEN])
{
    size_t il = strlen(id), tl = strlen(ts);
    char *buf = malloc(il + tl + 2 + len + 1);

    if (!buf)
        return -1;
    memcpy(buf, id, il);
    buf[il] = '.';
    memcpy(buf + il + 1, ts, tl);
    buf[il + 1 + tl] = '.';
    if (len)
        memcpy(buf + il + tl + 2, body, len);
    ks_hmac_sha256(key, klen, buf, il + tl + 2 + len, mac);
    free(buf);
    return 0;
}

enum ks_code ks_webhook_verify_standard(const char *id, const char *timestamp,
                                        const char *signature, const void *body, size_t len,
                                        const char *secret, int64_t now, int64_t tolerance,
                                        struct ks_err *err)
{
    uint8_t key[128], mac[KS_SHA256_LEN], sig[KS_SHA256_LEN + 8];
    long klen = standard_key(secret, key, sizeof(key));
    int64_t ts;
    int match = 0;
    const char *p;

    if (klen <= 0)
        return ks_err_set(err, KS_EAUTH, 0, NULL, "no valid whsec_ secret configured");
    if (!id || !*id || strlen(id) > 256)
        return ks_err_set(err, KS_EAUTH, 0, "webhook-id", "webhook-id missing or too long");
    if (!timestamp || parse_ts(timestamp, strlen(timestamp), &ts) != 0)
        return ks_err_set(err, KS_EAUTH, 0, "webhook-timestamp", "webhook-timestamp missing or malformed");
    if (!signature || !*signature)
        return ks_err_set(err, KS_EAUTH, 0, "webhook-signature", "webhook-signature missing");
    if (standard_mac(key, (size_t)klen, id, timestamp, body, len, mac) != 0)
        return ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
    for (p = signature; *p;) {
        size_t n = strcspn(p, " ");
        if (n > 3 && strncmp(p, "v1,", 3) == 0 &&
            ks_b64_decode(p + 3, n - 3, sig, sizeof(sig)) == KS_SHA256_LEN &&
            ks_ct_equal(sig, mac, KS_SHA256_LEN))
            match = 1;
        p += n;
        while (*p == ' ')
            p++;
    }
    if (!match)
        return ks_err_set(err, KS_EAUTH, 0, "webhook-signature", "signature does not match");
    if (!within(now, ts, tolerance))
        return ks_err_set(err, KS_ERANGE, 0, "webhook-timestamp",
                          "timestamp outside the %lld s tolerance", (long long)tolerance);
    return KS_OK;
}

int ks_webhook_sign_standard(const char *secret, const char *id, int64_t timestamp,
                             const void *body, size_t len, char out[KS_WEBHOOK_SIG_LEN])
{
    uint8_t key[128], mac[KS_SHA256_LEN];
    char ts[24], b64[64];
    long klen = standard_key(secret, key, sizeof(key));

    if (klen <= 0)
        return -1;
    snprintf(ts, sizeof(ts), "%lld", (long long)timestamp);
    if (standard_mac(key, (size_t)klen, id, ts, body, len, mac) != 0)
        return -1;
    ks_b64_encode(mac, sizeof(mac), b64);
    snprintf(out, KS_WEBHOOK_SIG_LEN, "v1,%s", b64);
    return 0;
}

enum ks_code ks_webhook_verify_xendit(const char *token_header, const char *expected,
                                      struct ks_err *err)
{
    if (!expected || !*expected)
        return ks_err_set(err, KS_EAUTH, 0, NULL, "no callback token configured");
    if (!token_header || !*token_header)
        return ks_err_set(err, KS_EAUTH, 0, "x-callback-token", "callback token missing");
    if (!ks_ct_streq(token_header, expected))
        return ks_err_set(err, KS_EAUTH, 0, "x-callback-token", "callback token does not match");
    return KS_OK;
}

void ks_webhook_midtrans_signature(const char *order_id, const char *status_code,
                                   const char *gross_amount, const char *server_key,
                                   char out[129])
{
    size_t a = strlen(order_id), b = strlen(status_code), c = strlen(gross_amount),
           d = strlen(server_key);
    char *buf = malloc(a + b + c + d + 1);
    uint8_t h[KS_SHA512_LEN];

    if (!buf) {
        out[0] = '\0';
        return;
    }
    memcpy(buf, order_id, a);
    memcpy(buf + a, status_code, b);
    memcpy(buf + a + b, gross_amount, c);
    memcpy(buf + a + b + c, server_key, d);
    ks_sha512(buf, a + b + c + d, h);
    free(buf);
    ks_hex_encode(h, sizeof(h), out);
}

static const char *jstr(json_t *o, const char *name)
{
    json_t *v = json_object_get(o, name);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

enum ks_code ks_webhook_verify_midtrans(const void *body, size_t len, const char *server_key,
                                        char *event_id, size_t event_id_len,
                                        struct ks_err *err)
{
    json_t *root = NULL;
    const char *oid, *sc, *ga, *sk, *tid, *ts;
    char want[129];
    uint8_t a[KS_SHA512_LEN], b[KS_SHA512_LEN];
    enum ks_code rc;

    if (!server_key || !*server_key)
        return ks_err_set(err, KS_EAUTH, 0, NULL, "no server key configured");
    root = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(root)) {
        rc = ks_err_set(err, KS_EAUTH, 0, "body", "body is not a json object");
        goto out;
    }
    oid = jstr(root, "order_id");
    sc = jstr(root, "status_code");
    ga = jstr(root, "gross_amount");
    sk = jstr(root, "signature_key");
    if (!oid || !sc || !ga || !sk) {
        rc = ks_err_set(err, KS_EAUTH, 0, "signature_key",
                        "order_id, status_code, gross_amount or signature_key missing");
        goto out;
    }
    ks_webhook_midtrans_signature(oid, sc, ga, server_key, want);
    if (strlen(sk) != 2 * KS_SHA512_LEN ||
        ks_hex_decode(sk, strlen(sk), a, sizeof(a)) != KS_SHA512_LEN ||
        ks_hex_decode(want, strlen(want), b, sizeof(b)) != KS_SHA512_LEN ||
        !ks_ct_equal(a, b, KS_SHA512_LEN)) {
        rc = ks_err_set(err, KS_EAUTH, 0, "signature_key", "signature does not match");
        goto out;
    }
    if (event_id && event_id_len) {
        tid = jstr(root, "transaction_id");
        ts = jstr(root, "transaction_status");
        snprintf(event_id, event_id_len, "%s:%s", tid ? tid : oid, ts ? ts : sc);
    }
    rc = KS_OK;
out:
    json_decref(root);
    return rc;
}
