/* pgarr.c - PostgreSQL array parameters, text and binary. See pgarr.h. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgarr.h"
#include "banned.h"

void ks_pgarr_init(struct ks_pgarr *a)
{
    memset(a, 0, sizeof(*a));
}

void ks_pgarr_reset(struct ks_pgarr *a)
{
    a->len = 0;
    a->n = 0;
    a->oom = 0;
}

void ks_pgarr_release(struct ks_pgarr *a)
{
    free(a->buf);
    ks_pgarr_init(a);
}

static int pgarr_reserve(struct ks_pgarr *a, size_t more)
{
    size_t want = a->len + more + 3; /* room for '{' or ',', '}' and NUL */
    char *nb;

    if (a->oom)
        return -1;
    if (want <= a->cap)
        return 0;
    if (want < a->cap * 2)
        want = a->cap * 2;
    if (want < 256)
        want = 256;
    nb = realloc(a->buf, want);
    if (!nb) {
        a->oom = 1;
        return -1;
    }
    a->buf = nb;
    a->cap = want;
    return 0;
}

static void pgarr_sep(struct ks_pgarr *a)
{
    a->buf[a->len++] = a->n ? ',' : '{';
    a->n++;
}

void ks_pgarr_textn(struct ks_pgarr *a, const char *s, size_t len)
{
    size_t i;

    if (pgarr_reserve(a, 2 * len + 2) != 0)
        return;
    pgarr_sep(a);
    a->buf[a->len++] = '"';
    for (i = 0; i < len; i++) {
        if (s[i] == '"' || s[i] == '\\')
            a->buf[a->len++] = '\\';
        a->buf[a->len++] = s[i];
    }
    a->buf[a->len++] = '"';
}

void ks_pgarr_text(struct ks_pgarr *a, const char *s)
{
    if (!s) {
        if (pgarr_reserve(a, 4) != 0)
            return;
        pgarr_sep(a);
        memcpy(a->buf + a->len, "NULL", 4);
        a->len += 4;
        return;
    }
    ks_pgarr_textn(a, s, strlen(s));
}

void ks_pgarr_int(struct ks_pgarr *a, int64_t v)
{
    if (pgarr_reserve(a, 24) != 0)
        return;
    pgarr_sep(a);
    a->len += (size_t)snprintf(a->buf + a->len, 24, "%" PRId64, v);
}

void ks_pgarr_bytea(struct ks_pgarr *a, const void *p, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *b = p;

    if (!p) {
        ks_pgarr_text(a, NULL);
        return;
    }
    /* "\\x..." inside the array literal: the array parser eats one backslash */
    if (pgarr_reserve(a, 2 * len + 6) != 0)
        return;
    pgarr_sep(a);
    memcpy(a->buf + a->len, "\"\\\\x", 4);
    a->len += 4;
    for (size_t i = 0; i < len; i++) {
        a->buf[a->len++] = hex[b[i] >> 4];
        a->buf[a->len++] = hex[b[i] & 15];
    }
    a->buf[a->len++] = '"';
}

const char *ks_pgarr_str(struct ks_pgarr *a)
{
    if (pgarr_reserve(a, 2) != 0)
        return NULL;
    if (a->n == 0) {
        memcpy(a->buf, "{}", 3);
        return a->buf;
    }
    a->buf[a->len] = '}';
    a->buf[a->len + 1] = '\0';
    /* not counted in len: more elements may still be appended over it */
    return a->buf;
}

/* --- binary arrays (array_send format) ------------------------------------------------ */

#define PGBIN_HDR 20 /* ndim, flags, element oid, length, lower bound */

void ks_pgarr_bin_init(struct ks_pgarr_bin *a, unsigned oid)
{
    memset(a, 0, sizeof(*a));
    a->oid = oid;
    a->len = PGBIN_HDR;
}

void ks_pgarr_bin_reset(struct ks_pgarr_bin *a)
{
    a->len = PGBIN_HDR;
    a->n = 0;
    a->nulls = 0;
    a->oom = 0;
}

void ks_pgarr_bin_release(struct ks_pgarr_bin *a)
{
    free(a->buf);
    ks_pgarr_bin_init(a, a->oid);
}

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static unsigned char *bin_room(struct ks_pgarr_bin *a, size_t more)
{
    if (a->oom)
        return NULL;
    if (a->len + more > a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 4096;
        unsigned char *nb;
        while (nc < a->len + more)
            nc *= 2;
        if (!(nb = realloc(a->buf, nc))) {
            a->oom = 1;
            return NULL;
        }
        a->buf = nb;
        a->cap = nc;
    }
    return a->buf + a->len;
}

void ks_pgarr_bin_bytes(struct ks_pgarr_bin *a, const void *p, size_t len)
{
    unsigned char *d = bin_room(a, 4 + (p ? len : 0));
    if (!d)
        return;
    if (!p) {
        put32(d, 0xffffffffu);
        a->nulls = 1;
        a->len += 4;
        a->n++;
        return;
    }
    put32(d, (uint32_t)len);
    if (len)
        memcpy(d + 4, p, len);
    a->len += 4 + len;
    a->n++;
}

void ks_pgarr_bin_int8(struct ks_pgarr_bin *a, int64_t v)
{
    unsigned char *d = bin_room(a, 12);
    if (!d)
        return;
    put32(d, 8);
    put32(d + 4, (uint32_t)((uint64_t)v >> 32));
    put32(d + 8, (uint32_t)v);
    a->len += 12;
    a->n++;
}

void ks_pgarr_bin_int4(struct ks_pgarr_bin *a, int32_t v)
{
    unsigned char *d = bin_room(a, 8);
    if (!d)
        return;
    put32(d, 4);
    put32(d + 4, (uint32_t)v);
    a->len += 8;
    a->n++;
}

const char *ks_pgarr_bin_data(struct ks_pgarr_bin *a, int *len)
{
    if (a->oom || (!a->buf && !bin_room(a, 0)))
        return NULL;
    if (a->n == 0) {
        /* an empty array has no dimensions */
        put32(a->buf, 0);
        put32(a->buf + 4, 0);
        put32(a->buf + 8, a->oid);
        *len = 12;
        return (const char *)a->buf;
    }
    put32(a->buf, 1);
    put32(a->buf + 4, (uint32_t)a->nulls);
    put32(a->buf + 8, a->oid);
    put32(a->buf + 12, (uint32_t)a->n);
    put32(a->buf + 16, 1);
    *len = (int)a->len;
    return (const char *)a->buf;
}
