/* jsonw.c - see jsonw.h. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "jsonw.h"

#include "banned.h"

void ks_jw_init(struct ks_jw *w, char *stack, size_t cap)
{
    w->p = stack;
    w->len = 0;
    w->cap = stack ? cap : 0;
    w->heap = 0;
    w->full = 0;
    w->comma = 0;
}

void ks_jw_free(struct ks_jw *w)
{
    if (w->heap)
        free(w->p);
    ks_jw_init(w, NULL, 0);
}

/* Makes room for n more bytes (and the reserve); 0, or -1 when full. */
static int grow(struct ks_jw *w, size_t n)
{
    if (w->full)
        return -1;
    if (w->len + n + KS_JW_RESERVE > w->cap) {
        size_t ncap = w->cap ? w->cap * 2 : 256;
        char *np;
        while (ncap < w->len + n + KS_JW_RESERVE)
            ncap *= 2;
        np = w->heap ? realloc(w->p, ncap) : malloc(ncap);
        if (!np) {
            w->full = 1;
            return -1;
        }
        if (!w->heap && w->len)
            memcpy(np, w->p, w->len);
        w->p = np;
        w->cap = ncap;
        w->heap = 1;
    }
    return 0;
}

int ks_jw_put(struct ks_jw *w, const char *s, size_t n)
{
    if (grow(w, n) != 0)
        return -1;
    memcpy(w->p + w->len, s, n);
    w->len += n;
    return 0;
}

int ks_jw_raw(struct ks_jw *w, const char *s)
{
    return ks_jw_put(w, s, strlen(s));
}

void ks_jw_tail(struct ks_jw *w, const char *s)
{
    size_t n = strlen(s);

    if (!w->p || n > KS_JW_RESERVE || w->len + n > w->cap)
        return; /* nothing was ever put, or the caller broke the contract */
    memcpy(w->p + w->len, s, n);
    w->len += n;
}

/* Length of the valid UTF-8 sequence at s (1..4, within the n bytes left), or 0 if the
 * bytes there are not one (overlong forms, surrogates and code points above U+10FFFF are
 * invalid, and so is a sequence cut by the end). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        return n >= 2 && (s[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        unsigned char lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
        return n >= 3 && s[1] >= lo && s[1] <= hi && (s[2] & 0xc0) == 0x80 ? 3 : 0;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        unsigned char lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
        return n >= 4 && s[1] >= lo && s[1] <= hi && (s[2] & 0xc0) == 0x80 &&
                       (s[3] & 0xc0) == 0x80
                   ? 4
                   : 0;
    }
    return 0;
}

int ks_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    size_t k;

    for (; p < end; p += k)
        if ((k = utf8_seq(p, (size_t)(end - p))) == 0)
            return 0;
    return 1;
}

size_t ks_utf8_prefix(const char *s, size_t max)
{
    size_t n = strnlen(s, max);

    if (n < max || s[n] == '\0')
        return n;
    /* s[n] is the first byte left out: if it continues a character, leave that out too */
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
        n--;
    return n;
}

size_t ks_utf8_uncut(const char *s)
{
    size_t n = strlen(s);

    while (n > 0 && !ks_utf8_valid(s, n))
        n--;
    return n;
}

int ks_jw_quote(struct ks_jw *w, const char *s)
{
    return ks_jw_quoten(w, s, strlen(s));
}

int ks_jw_quoten(struct ks_jw *w, const char *s, size_t len)
{
    size_t start = w->len;
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    int rc = ks_jw_put(w, "\"", 1);

    while (rc == 0 && p < end) {
        const unsigned char *run = p;
        size_t n;
        /* copy plain runs in one go */
        while (p < end && *p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\')
            p++;
        if (p > run)
            rc = ks_jw_put(w, (const char *)run, (size_t)(p - run));
        if (rc != 0 || p == end)
            break;
        if (*p == '"' || *p == '\\') {
            char esc[2] = {'\\', (char)*p};
            rc = ks_jw_put(w, esc, 2);
            p++;
        } else if (*p < 0x20 || *p == 0x7f) {
            char esc[8];
            switch (*p) {
            case '\n': rc = ks_jw_put(w, "\\n", 2); break;
            case '\r': rc = ks_jw_put(w, "\\r", 2); break;
            case '\t': rc = ks_jw_put(w, "\\t", 2); break;
            case '\b': rc = ks_jw_put(w, "\\b", 2); break;
            case '\f': rc = ks_jw_put(w, "\\f", 2); break;
            default:
                snprintf(esc, sizeof(esc), "\\u%04x", *p);
                rc = ks_jw_put(w, esc, 6);
            }
            p++;
        } else if ((n = utf8_seq(p, (size_t)(end - p))) > 0) {
            rc = ks_jw_put(w, (const char *)p, n);
            p += n;
        } else {
            rc = ks_jw_put(w, "\\ufffd", 6);
            p++;
        }
    }
    if (rc == 0)
        rc = ks_jw_put(w, "\"", 1);
    if (rc != 0)
        w->len = start;
    return rc;
}

/* the separator and the name of a member ("name" non-NULL) or element */
static void lead(struct ks_jw *w, const char *name)
{
    if (w->comma)
        ks_jw_put(w, ",", 1);
    if (name) {
        ks_jw_quote(w, name);
        ks_jw_put(w, ":", 1);
    }
    w->comma = 1;
}

void ks_jw_open(struct ks_jw *w, const char *name)
{
    lead(w, name);
    ks_jw_put(w, "{", 1);
    w->comma = 0;
}

void ks_jw_open_array(struct ks_jw *w, const char *name)
{
    lead(w, name);
    ks_jw_put(w, "[", 1);
    w->comma = 0;
}

void ks_jw_close(struct ks_jw *w, char c)
{
    ks_jw_put(w, &c, 1);
    w->comma = 1;
}

void ks_jw_str(struct ks_jw *w, const char *name, const char *v)
{
    ks_jw_strn(w, name, v, v ? strlen(v) : 0);
}

void ks_jw_strn(struct ks_jw *w, const char *name, const char *v, size_t len)
{
    lead(w, name);
    if (v)
        ks_jw_quoten(w, v, len);
    else
        ks_jw_put(w, "null", 4);
}

void ks_jw_int(struct ks_jw *w, const char *name, int64_t v)
{
    char buf[24];
    int n = snprintf(buf, sizeof(buf), "%" PRId64, v);

    lead(w, name);
    ks_jw_put(w, buf, (size_t)n);
}

void ks_jw_b64(struct ks_jw *w, const char *name, const void *data, size_t len)
{
    size_t n = ks_b64_enclen(len);

    lead(w, name);
    /* base64 needs no escaping: encoded in place, its NUL lands where the quote goes */
    if (grow(w, n + 2) != 0)
        return;
    w->p[w->len++] = '"';
    ks_b64_encode((const uint8_t *)data, len, w->p + w->len);
    w->len += n;
    w->p[w->len++] = '"';
}

void ks_jw_json(struct ks_jw *w, const char *name, const char *json)
{
    lead(w, name);
    ks_jw_raw(w, json);
}

char *ks_jw_take(struct ks_jw *w, size_t *len)
{
    char *s;

    if (w->full || ks_jw_put(w, "", 0) != 0) { /* makes sure there is a buffer */
        ks_jw_free(w);
        return NULL;
    }
    if (w->heap) {
        s = w->p;
    } else if ((s = malloc(w->len + 1)) != NULL) {
        memcpy(s, w->p, w->len);
    } else {
        ks_jw_init(w, NULL, 0);
        return NULL;
    }
    s[w->len] = '\0'; /* the reserve guarantees the room */
    if (len)
        *len = w->len;
    ks_jw_init(w, NULL, 0);
    return s;
}
