/* pgarr.c - PostgreSQL array parameters, text and binary. See pgarr.h. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "pgarr.h"
#include "banned.h"

void ks_pgarr_init(struct ks_pgarr *a)
{
    memset(a, 0, sizeof(*a));
}

void ks_pgarr_reset(struct ks_pgarr *a)
{
    ks_buf_reset(&a->b);
    a->n = 0;
}

void ks_pgarr_release(struct ks_pgarr *a)
{
    ks_buf_release(&a->b);
    ks_pgarr_init(a);
}

/* room for more bytes and the '{' or ',' before them and the '}' after (the NUL is the
 * buffer's own) */
static int pgarr_reserve(struct ks_pgarr *a, size_t more)
{
    return ks_buf_room(&a->b, more + 2) ? 0 : -1;
}

static void pgarr_sep(struct ks_pgarr *a)
{
    a->b.p[a->b.len++] = a->n ? ',' : '{';
    a->n++;
}

void ks_pgarr_textn(struct ks_pgarr *a, const char *s, size_t len)
{
    size_t i;

    if (pgarr_reserve(a, 2 * len + 2) != 0)
        return;
    pgarr_sep(a);
    a->b.p[a->b.len++] = '"';
    for (i = 0; i < len; i++) {
        if (s[i] == '"' || s[i] == '\\')
            a->b.p[a->b.len++] = '\\';
        a->b.p[a->b.len++] = s[i];
    }
    a->b.p[a->b.len++] = '"';
}

void ks_pgarr_text(struct ks_pgarr *a, const char *s)
{
    if (!s) {
        if (pgarr_reserve(a, 4) != 0)
            return;
        pgarr_sep(a);
        memcpy(a->b.p + a->b.len, "NULL", 4);
        a->b.len += 4;
        return;
    }
    ks_pgarr_textn(a, s, strlen(s));
}

void ks_pgarr_int(struct ks_pgarr *a, int64_t v)
{
    if (pgarr_reserve(a, 24) != 0)
        return;
    pgarr_sep(a);
    a->b.len += (size_t)snprintf((char *)a->b.p + a->b.len, 24, "%" PRId64, v);
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
    memcpy(a->b.p + a->b.len, "\"\\\\x", 4);
    a->b.len += 4;
    for (size_t i = 0; i < len; i++) {
        a->b.p[a->b.len++] = hex[b[i] >> 4];
        a->b.p[a->b.len++] = hex[b[i] & 15];
    }
    a->b.p[a->b.len++] = '"';
}

const char *ks_pgarr_str(struct ks_pgarr *a)
{
    if (pgarr_reserve(a, 2) != 0)
        return NULL;
    if (a->n == 0) {
        memcpy(a->b.p, "{}", 3);
        return (const char *)a->b.p;
    }
    a->b.p[a->b.len] = '}';
    a->b.p[a->b.len + 1] = '\0';
    /* not counted in len: more elements may still be appended over it */
    return (const char *)a->b.p;
}

/* --- binary arrays (array_send format) ------------------------------------------------ */

#define PGBIN_HDR 20 /* ndim, flags, element oid, length, lower bound */

void ks_pgarr_bin_init(struct ks_pgarr_bin *a, unsigned oid)
{
    memset(a, 0, sizeof(*a));
    a->oid = oid; /* b.len 0: the header is reserved with the first element */
}

void ks_pgarr_bin_reset(struct ks_pgarr_bin *a)
{
    ks_buf_reset(&a->b);
    a->n = 0;
    a->nulls = 0;
}

void ks_pgarr_bin_release(struct ks_pgarr_bin *a)
{
    ks_buf_release(&a->b);
    ks_pgarr_bin_init(a, a->oid);
}

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* room for more bytes after the header, which the first call reserves */
static unsigned char *bin_room(struct ks_pgarr_bin *a, size_t more)
{
    if (a->b.len == 0) {
        if (!ks_buf_room(&a->b, PGBIN_HDR + more))
            return NULL;
        a->b.len = PGBIN_HDR;
    }
    return ks_buf_room(&a->b, more);
}

void ks_pgarr_bin_bytes(struct ks_pgarr_bin *a, const void *p, size_t len)
{
    unsigned char *d = bin_room(a, 4 + (p ? len : 0));
    if (!d)
        return;
    if (!p) {
        put32(d, 0xffffffffu);
        a->nulls = 1;
        a->b.len += 4;
        a->n++;
        return;
    }
    put32(d, (uint32_t)len);
    if (len)
        memcpy(d + 4, p, len);
    a->b.len += 4 + len;
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
    a->b.len += 12;
    a->n++;
}

void ks_pgarr_bin_int4(struct ks_pgarr_bin *a, int32_t v)
{
    unsigned char *d = bin_room(a, 8);
    if (!d)
        return;
    put32(d, 4);
    put32(d + 4, (uint32_t)v);
    a->b.len += 8;
    a->n++;
}

const char *ks_pgarr_bin_data(struct ks_pgarr_bin *a, int *len)
{
    if (!bin_room(a, 0))
        return NULL;
    if (a->n == 0) {
        /* an empty array has no dimensions */
        put32(a->b.p, 0);
        put32(a->b.p + 4, 0);
        put32(a->b.p + 8, a->oid);
        *len = 12;
        return (const char *)a->b.p;
    }
    put32(a->b.p, 1);
    put32(a->b.p + 4, (uint32_t)a->nulls);
    put32(a->b.p + 8, a->oid);
    put32(a->b.p + 12, (uint32_t)a->n);
    put32(a->b.p + 16, 1);
    *len = (int)a->b.len;
    return (const char *)a->b.p;
}
