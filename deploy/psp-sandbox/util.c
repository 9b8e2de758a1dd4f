/* util.c - form decoding, credentials and fingerprints shared by the PSP modules. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deploy/psp-sandbox/sandbox.h"
#include "lib/crypto.h"
#include "lib/jsonw.h"
#include "lib/banned.h"

/* URL-decodes s[0..n) into a new string ('+' is a space in form bodies); NULL if a %
 * escape is malformed or a byte is NUL (it would cut the value short without a word). */
static char *url_decode(const char *s, size_t n)
{
    char *out = malloc(n + 1);
    size_t i, w = 0;

    if (!out)
        return NULL;
    for (i = 0; i < n; i++) {
        if (s[i] == '+') {
            out[w++] = ' ';
        } else if (s[i] == '%') {
            uint8_t byte;
            if (i + 2 >= n || ks_hex_decode(s + i + 1, 2, &byte, 1) != 1) {
                free(out);
                return NULL;
            }
            out[w++] = (char)byte;
            i += 2;
        } else {
            out[w++] = s[i];
        }
        if (out[w - 1] == '\0') {
            free(out);
            return NULL;
        }
    }
    out[w] = '\0';
    return out;
}

static int all_digits(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

/* Puts value under key "a[b][]" into root; 0 or -1 when the key is malformed or clashes. */
static int form_put(json_t *root, char *key, const char *value)
{
    char *segs[8];
    int n = 0, i;
    char *p = strchr(key, '[');
    json_t *cur = root;

    segs[n++] = key;
    while (p) {
        char *close = strchr(p, ']');
        if (!close || n >= 8)
            return -1;
        *p = '\0';
        *close = '\0';
        segs[n++] = p + 1;
        p = close + 1;
        if (*p == '\0')
            break;
        if (*p != '[')
            return -1;
    }
    if (!*segs[0])
        return -1;
    for (i = 0; i < n; i++) {
        int last = i == n - 1;
        int next_is_array = !last && (*segs[i + 1] == '\0' || all_digits(segs[i + 1]));
        json_t *child = NULL;

        if (json_is_object(cur)) {
            if (!*segs[i])
                return -1;
            child = json_object_get(cur, segs[i]);
            if (last) {
                json_object_set_new(cur, segs[i], json_string(value));
                return 0;
            }
            if (!child) {
                child = next_is_array ? json_array() : json_object();
                json_object_set_new(cur, segs[i], child);
            }
        } else if (json_is_array(cur)) {
            size_t idx = *segs[i] ? (size_t)strtoull(segs[i], NULL, 10) : json_array_size(cur);
            if (idx > json_array_size(cur) || idx > 1000)
                return -1;
            if (last) {
                if (idx == json_array_size(cur))
                    json_array_append_new(cur, json_string(value));
                else
                    json_array_set_new(cur, idx, json_string(value));
                return 0;
            }
            child = idx < json_array_size(cur) ? json_array_get(cur, idx) : NULL;
            if (!child) {
                child = next_is_array ? json_array() : json_object();
                json_array_append_new(cur, child);
            }
        } else {
            return -1;
        }
        if (next_is_array ? !json_is_array(child) : !json_is_object(child))
            return -1;
        cur = child;
    }
    return -1;
}

/* "could not decode parameter '<name>'" with the name as it arrived, up to 80 bytes, any
 * byte that is not printable ASCII as %XX: the message goes into a JSON answer */
static void bad_param(const char *name, size_t n, char *msg, size_t cap)
{
    char shown[80 * 3 + 1];
    size_t i, w = 0;

    for (i = 0; i < n && i < 80; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (ch >= 0x20 && ch < 0x7f)
            shown[w++] = (char)ch;
        else
            w += (size_t)snprintf(shown + w, sizeof(shown) - w, "%%%02X", ch);
    }
    shown[w] = '\0';
    snprintf(msg, cap, "Invalid request body: could not decode parameter '%s'", shown);
}

json_t *sb_form_parse(const char *s, size_t len, char *msg, size_t cap)
{
    json_t *root = json_object();
    size_t i = 0;

    while (i < len) {
        size_t end = i, eq;
        char *k, *v;
        int rc;

        while (end < len && s[end] != '&')
            end++;
        for (eq = i; eq < end && s[eq] != '='; eq++)
            ;
        if (end > i) {
            k = url_decode(s + i, eq - i);
            v = url_decode(eq < end ? s + eq + 1 : "", eq < end ? end - eq - 1 : 0);
            /* jansson keeps only UTF-8: any other name or value is refused, not dropped */
            rc = k && v && ks_utf8_valid(k, strlen(k)) && ks_utf8_valid(v, strlen(v))
                     ? form_put(root, k, v)
                     : -1;
            if (rc != 0)
                bad_param(s + i, eq - i, msg, cap);
            free(k);
            free(v);
            if (rc != 0) {
                json_decref(root);
                return NULL;
            }
        }
        i = end + 1;
    }
    return root;
}

int sb_idem_key_ok(const char *key)
{
    size_t n = strlen(key);

    return n <= 255 && ks_utf8_valid(key, n);
}

int sb_path_id(const char *path, const char *prefix, const char *suffix, char *id, size_t cap)
{
    size_t np = strlen(prefix), ns = strlen(suffix), n = strlen(path), len;

    if (n <= np + ns || strncmp(path, prefix, np) != 0 || strcmp(path + n - ns, suffix) != 0)
        return 0;
    len = n - np - ns;
    if (len >= cap || memchr(path + np, '/', len))
        return 0;
    memcpy(id, path + np, len);
    id[len] = '\0';
    return 1;
}

void sb_auth_user(const char *authz, char *out, size_t cap)
{
    uint8_t dec[512];
    long n;
    const char *colon;

    out[0] = '\0';
    if (!authz)
        return;
    if (strncasecmp(authz, "Bearer ", 7) == 0) {
        snprintf(out, cap, "%s", authz + 7);
        return;
    }
    if (strncasecmp(authz, "Basic ", 6) != 0)
        return;
    n = ks_b64_decode(authz + 6, strlen(authz + 6), dec, sizeof(dec) - 1);
    if (n < 0)
        return;
    dec[n] = '\0';
    colon = memchr(dec, ':', (size_t)n);
    snprintf(out, cap, "%.*s", (int)(colon ? colon - (const char *)dec : n), (const char *)dec);
}

void sb_fingerprint(const char *method, const char *path, const char *canon, char out[65])
{
    size_t a = strlen(method), b = strlen(path), c = strlen(canon);
    char *buf = malloc(a + b + c + 3);
    uint8_t h[KS_SHA256_LEN];

    if (!buf) {
        memset(out, '0', 64);
        out[64] = '\0';
        return;
    }
    snprintf(buf, a + b + c + 3, "%s\n%s\n%s", method, path, canon);
    ks_sha256(buf, a + b + c + 2, h);
    free(buf);
    ks_hex_encode(h, sizeof(h), out);
}

void sb_cred_tag(const char *cred, char out[17])
{
    uint8_t h[KS_SHA256_LEN];
    char hex[65];

    ks_sha256(cred, strlen(cred), h);
    ks_hex_encode(h, sizeof(h), hex);
    snprintf(out, 17, "%.16s", hex);
}
