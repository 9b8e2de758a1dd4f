/* worker_util.c - the pure pieces of the worker runtime: retry schedule, traceparent,
 * PostgreSQL array literals, and the dedup helper. See worker.h. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "worker.h"
#include "banned.h"

/* --- retry schedule ------------------------------------------------------------------- */

int ks_retry_parse(const char *spec, int64_t *delays, char (*names)[16], size_t max)
{
    size_t n = 0;
    const char *p = spec;

    while (p && *p) {
        size_t len = strcspn(p, ",");
        char tok[16];
        int64_t v = 0, mult;
        size_t i, digits = 0;

        while (len && *p == ' ')
            p++, len--;
        if (len == 0 || len >= sizeof(tok) || n >= max)
            return -1;
        memcpy(tok, p, len);
        tok[len] = '\0';
        while (len && tok[len - 1] == ' ')
            tok[--len] = '\0';
        for (i = 0; tok[i] >= '0' && tok[i] <= '9'; i++, digits++) {
            if (v > 100000000)
                return -1;
            v = v * 10 + (tok[i] - '0');
        }
        if (digits == 0 || v == 0)
            return -1;
        if (strcmp(tok + i, "ms") == 0)
            mult = 1;
        else if (strcmp(tok + i, "s") == 0)
            mult = 1000;
        else if (strcmp(tok + i, "m") == 0)
            mult = 60000;
        else if (strcmp(tok + i, "h") == 0)
            mult = 3600000;
        else
            return -1;
        delays[n] = v * mult;
        if (n > 0 && delays[n] <= delays[n - 1])
            return -1; /* shortest first, no repeats: topic choice depends on it */
        if (names)
            snprintf(names[n], 16, "%s", tok);
        n++;
        p += strcspn(p, ",");
        if (*p == ',')
            p++;
    }
    return (int)n;
}

int64_t ks_retry_backoff(const int64_t *delays, size_t n, int attempt, int jitter_pct,
                         uint32_t rnd, size_t *topic_idx)
{
    int64_t d, span, cap;
    size_t i, idx = 0;

    if (n == 0) {
        if (topic_idx)
            *topic_idx = 0;
        return 0;
    }
    cap = delays[n - 1];
    d = delays[0];
    for (i = 1; i < (size_t)(attempt > 0 ? attempt : 1) && d < cap; i++)
        d = d > cap / 2 ? cap : d * 2; /* a doubling past cap could overflow */
    if (d > cap)
        d = cap;
    if (jitter_pct < 0)
        jitter_pct = 0;
    if (jitter_pct > 100)
        jitter_pct = 100;
    /* full-range jitter around d: d * (1 + j * (2u - 1)), u in [0,1). Split so no
     * product overflows: the parser accepts delays of ~1e9 hours, and 1e6 * span did */
    span = d / 100 * jitter_pct + d % 100 * jitter_pct / 100;
    if (span > 0) {
        int64_t k = 2 * (int64_t)(rnd % 1000000) - 1000000; /* -1e6 .. 1e6 - 2 */
        int64_t off = k * (span / 1000000) + k * (span % 1000000) / 1000000;
        d = off > 0 && d > INT64_MAX - off ? INT64_MAX : d + off;
    }
    if (d < 0)
        d = 0;
    for (i = 0; i < n; i++)
        if (delays[i] <= d)
            idx = i;
    if (topic_idx)
        *topic_idx = idx;
    return d;
}

/* --- W3C traceparent ------------------------------------------------------------------ */

static int hex_lower(const char *s, size_t n, char *out)
{
    int nonzero = 0;

    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'F')
            c = (char)(c - 'A' + 'a');
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return -1;
        if (c != '0')
            nonzero = 1;
        out[i] = c;
    }
    out[n] = '\0';
    return nonzero;
}

int ks_traceparent_parse(const char *s, char trace_id[33], char span_id[17], char flags[3])
{
    char ver[3], t[33], sp[17], fl[3];

    /* version 00 is exactly 55 characters; later versions may append fields after '-' */
    if (!s || strlen(s) < 55 || s[2] != '-' || s[35] != '-' || s[52] != '-')
        return -1;
    if (s[55] != '\0' && s[55] != '-')
        return -1;
    if (hex_lower(s, 2, ver) < 0 || strcmp(ver, "ff") == 0)
        return -1;
    if (strcmp(ver, "00") == 0 && s[55] != '\0')
        return -1;
    if (hex_lower(s + 3, 32, t) != 1 || hex_lower(s + 36, 16, sp) != 1 ||
        hex_lower(s + 53, 2, fl) < 0)
        return -1;
    memcpy(trace_id, t, 33);
    memcpy(span_id, sp, 17);
    memcpy(flags, fl, 3);
    return 0;
}

void ks_traceparent_format(const char *trace_id, const char *span_id, const char *flags,
                           char out[56])
{
    /* by hand: it runs for every output, and snprintf was a visible share of emitting */
    size_t o = 0, l;

    memcpy(out, "00-", 3);
    o = 3;
    l = strnlen(trace_id, 32);
    memcpy(out + o, trace_id, l);
    o += l;
    out[o++] = '-';
    l = strnlen(span_id, 16);
    memcpy(out + o, span_id, l);
    o += l;
    out[o++] = '-';
    l = strnlen(flags, 2);
    memcpy(out + o, flags, l);
    o += l;
    out[o] = '\0';
}

/* --- array literals ------------------------------------------------------------------- */

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

/* --- dedup ---------------------------------------------------------------------------- */

static const char SQL_DEDUP[] =
    "INSERT INTO kasir_processed (consumer, message_id) "
    "SELECT $1, m FROM unnest($2::text[]) AS u(m) "
    "ON CONFLICT DO NOTHING RETURNING message_id";

enum ks_code ks_dedup_claim(PGconn *pg, const char *consumer, const char *const *ids,
                            size_t n, unsigned char *fresh, struct ks_err *err)
{
    struct ks_pgarr arr;
    const char *params[2];
    PGresult *res = NULL;
    enum ks_code rc = KS_OK;
    json_t *seen = NULL;
    int i, rows;

    if (n == 0)
        return KS_OK;
    ks_pgarr_init(&arr);
    for (size_t k = 0; k < n; k++)
        ks_pgarr_text(&arr, ids[k]);
    params[0] = consumer;
    params[1] = ks_pgarr_str(&arr);
    seen = json_object();
    if (!params[1] || !seen) {
        rc = ks_err_set(err, KS_ENOMEM, 0, NULL, "out of memory");
        goto out;
    }
    res = PQexecParams(pg, SQL_DEDUP, 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = ks_pg_check(pg, res, PGRES_TUPLES_OK, "claim message ids", err);
        goto out;
    }
    /* a hash set of the fresh ones; duplicates inside ids are fresh only once */
    rows = PQntuples(res);
    for (i = 0; i < rows; i++)
        json_object_set_new(seen, PQgetvalue(res, i, 0), json_true());
    for (size_t k = 0; k < n; k++) {
        fresh[k] = json_object_get(seen, ids[k]) != NULL;
        if (fresh[k])
            json_object_del(seen, ids[k]);
    }
out:
    PQclear(res);
    json_decref(seen);
    ks_pgarr_release(&arr);
    return rc;
}

/* --- retry and dead-letter headers ---------------------------------------------------- */

static int runtime_owned(const char *name)
{
    return strcmp(name, KS_H_ATTEMPT) == 0 || strcmp(name, KS_H_MESSAGE_ID) == 0 ||
           strcmp(name, KS_H_TRACEPARENT) == 0 || strncmp(name, "kasir.retry.", 12) == 0 ||
           strncmp(name, "kasir.origin.", 13) == 0 || strncmp(name, "kasir.error.", 12) == 0;
}

static void hdr_str(rd_kafka_headers_t *h, const char *name, const char *v)
{
    if (v)
        rd_kafka_header_add(h, name, -1, v, -1);
}

static void hdr_int(rd_kafka_headers_t *h, const char *name, int64_t v)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%" PRId64, v);
    rd_kafka_header_add(h, name, -1, buf, -1);
}

rd_kafka_headers_t *ks_failure_headers(const rd_kafka_headers_t *src, const struct ks_failure *f)
{
    rd_kafka_headers_t *h = rd_kafka_headers_new(24);
    const char *name;
    const void *val;
    size_t vlen;

    if (!h)
        return NULL;
    for (size_t i = 0; src && rd_kafka_header_get_all(src, i, &name, &val, &vlen) == 0; i++)
        if (!runtime_owned(name))
            rd_kafka_header_add(h, name, -1, val, val ? (ssize_t)vlen : 0);
    hdr_str(h, KS_H_MESSAGE_ID, f->message_id);
    hdr_str(h, KS_H_TRACEPARENT, f->traceparent);
    hdr_int(h, KS_H_ATTEMPT, f->attempt);
    hdr_str(h, KS_H_ORIGIN_TOPIC, f->origin_topic);
    hdr_int(h, KS_H_ORIGIN_PARTITION, f->origin_partition);
    hdr_int(h, KS_H_ORIGIN_OFFSET, f->origin_offset);
    hdr_int(h, KS_H_ORIGIN_TIMESTAMP, f->origin_timestamp_ms);
    hdr_str(h, KS_H_GROUP, f->group);
    hdr_str(h, KS_H_ERR_CLASS, f->error_class);
    if (f->err) {
        hdr_str(h, KS_H_ERR_CODE, ks_code_name(f->err->code));
        hdr_str(h, KS_H_ERR_MSG, f->err->msg);
        if (f->err->field[0])
            hdr_str(h, KS_H_ERR_FIELD, f->err->field);
    }
    hdr_int(h, KS_H_FIRST_FAILURE, f->first_failure_ms);
    hdr_int(h, KS_H_LAST_FAILURE, f->now_ms);
    hdr_str(h, KS_H_INSTANCE, f->instance);
    if (f->not_before_ms >= 0)
        hdr_int(h, KS_H_NOT_BEFORE, f->not_before_ms);
    return h;
}

/* --- binary arrays -------------------------------------------------------------------- */

#define PGBIN_HDR 20 /* ndim, flags, element oid, length, lower bound */

void ks_pgbin_init(struct ks_pgbin *a, unsigned oid)
{
    memset(a, 0, sizeof(*a));
    a->oid = oid;
    a->len = PGBIN_HDR;
}

void ks_pgbin_reset(struct ks_pgbin *a)
{
    a->len = PGBIN_HDR;
    a->n = 0;
    a->nulls = 0;
    a->oom = 0;
}

void ks_pgbin_release(struct ks_pgbin *a)
{
    free(a->buf);
    ks_pgbin_init(a, a->oid);
}

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static unsigned char *pgbin_room(struct ks_pgbin *a, size_t more)
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

void ks_pgbin_bytes(struct ks_pgbin *a, const void *p, size_t len)
{
    unsigned char *d = pgbin_room(a, 4 + (p ? len : 0));
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

void ks_pgbin_int8(struct ks_pgbin *a, int64_t v)
{
    unsigned char *d = pgbin_room(a, 12);
    if (!d)
        return;
    put32(d, 8);
    put32(d + 4, (uint32_t)((uint64_t)v >> 32));
    put32(d + 8, (uint32_t)v);
    a->len += 12;
    a->n++;
}

void ks_pgbin_int4(struct ks_pgbin *a, int32_t v)
{
    unsigned char *d = pgbin_room(a, 8);
    if (!d)
        return;
    put32(d, 4);
    put32(d + 4, (uint32_t)v);
    a->len += 8;
    a->n++;
}

const char *ks_pgbin_data(struct ks_pgbin *a, int *len)
{
    if (a->oom || (!a->buf && !pgbin_room(a, 0)))
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
