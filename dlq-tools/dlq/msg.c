/* msg.c - one dead letter: its headers, the filters, and how it is printed. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dlq.h"
#include "lib/crypto.h"
#include "lib/kafka.h"
#include "lib/serde.h"
#include "lib/headers.h"
#include "lib/ids.h"
#include "lib/jsonw.h"
#include "lib/pgarr.h"
#include "lib/banned.h"

int64_t dlq_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void copy_val(char *dst, size_t cap, const void *v, size_t len)
{
    if (len >= cap)
        len = cap - 1;
    memcpy(dst, v, len);
    dst[len] = '\0';
}

static int64_t num_val(const void *v, size_t len)
{
    char buf[32];
    copy_val(buf, sizeof(buf), v, len);
    return buf[0] ? strtoll(buf, NULL, 10) : -1;
}

int dlq_topic_origin(const char *name, size_t len, size_t *olen)
{
    if (len < 4 || memcmp(name + len - 4, ".dlq", 4) != 0)
        return 0;
    *olen = len - 4;
    return 1;
}

int dlq_target_ok(const void *v, size_t len)
{
    const unsigned char *p = v;
    size_t olen;
    if (len == 0 || len > 249 || dlq_topic_origin(v, len, &olen) ||
        (len >= 2 && p[0] == '_' && p[1] == '_'))
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') ||
              (p[i] >= '0' && p[i] <= '9') || p[i] == '.' || p[i] == '_' || p[i] == '-'))
            return 0;
    return 1;
}

/* The runtime dead-letters a message of topic T to T.dlq, always: in a DLQ so named, a header
 * naming another topic is corrupt or forged. (The command line reads no other topic.) */
static int origin_is_own(const char *dlq, const void *v, size_t len)
{
    size_t olen;

    if (!dlq_topic_origin(dlq, strlen(dlq), &olen) || olen == 0)
        return 1;
    return len == olen && memcmp(dlq, v, len) == 0;
}

void dlq_msg_parse(struct dlq_msg *d, rd_kafka_message_t *rkm)
{
    rd_kafka_headers_t *h = NULL;
    const char *name;
    const void *v;
    size_t len;
    static const char pfx_origin[] = "kasir.origin.", pfx_error[] = "kasir.error.";

    memset(d, 0, sizeof(*d));
    d->rkm = rkm;
    d->dlq = rd_kafka_topic_name(rkm->rkt);
    d->partition = rkm->partition;
    d->offset = rkm->offset;
    d->ts = rd_kafka_message_timestamp(rkm, NULL);
    d->origin_partition = -1;
    d->origin_offset = d->origin_ts = d->first_failure = d->last_failure = -1;
    if (rd_kafka_message_headers(rkm, &h) == 0)
        /* one pass over the headers; the last value of a name wins, as with get_last */
        for (size_t i = 0; rd_kafka_header_get_all(h, i, &name, &v, &len) == 0; i++) {
            if (!v)
                continue;
            if (strcmp(name, KS_H_MESSAGE_ID) == 0)
                /* as the worker read it: never cut, never bytes PostgreSQL refuses */
                ks_id_from_bytes(v, len, d->message_id);
            else if (strcmp(name, KS_H_ATTEMPT) == 0)
                d->attempt = (int)num_val(v, len);
            else if (strncmp(name, pfx_origin, sizeof(pfx_origin) - 1) == 0) {
                if (strcmp(name, KS_H_ORIGIN_TOPIC) == 0 && dlq_target_ok(v, len)) {
                    copy_val(d->origin, sizeof(d->origin), v, len);
                    d->origin_foreign = !origin_is_own(d->dlq, v, len);
                }
                else if (strcmp(name, KS_H_ORIGIN_PARTITION) == 0)
                    d->origin_partition = (int32_t)num_val(v, len);
                else if (strcmp(name, KS_H_ORIGIN_OFFSET) == 0)
                    d->origin_offset = num_val(v, len);
                else if (strcmp(name, KS_H_ORIGIN_TIMESTAMP) == 0)
                    d->origin_ts = num_val(v, len);
            } else if (strncmp(name, pfx_error, sizeof(pfx_error) - 1) == 0) {
                if (strcmp(name, KS_H_ERR_CLASS) == 0)
                    copy_val(d->cls, sizeof(d->cls), v, len);
                else if (strcmp(name, KS_H_ERR_CODE) == 0)
                    copy_val(d->code, sizeof(d->code), v, len);
                else if (strcmp(name, KS_H_ERR_MSG) == 0)
                    copy_val(d->msg, sizeof(d->msg), v, len);
                else if (strcmp(name, KS_H_ERR_FIELD) == 0)
                    copy_val(d->field, sizeof(d->field), v, len);
                else if (strcmp(name, KS_H_GROUP) == 0)
                    copy_val(d->group, sizeof(d->group), v, len);
                else if (strcmp(name, KS_H_INSTANCE) == 0)
                    copy_val(d->instance, sizeof(d->instance), v, len);
                else if (strcmp(name, KS_H_FIRST_FAILURE) == 0)
                    d->first_failure = num_val(v, len);
                else if (strcmp(name, KS_H_LAST_FAILURE) == 0)
                    d->last_failure = num_val(v, len);
            }
        }
    if (!d->origin[0]) { /* not written by the runtime: <topic>.dlq names its origin */
        size_t olen;
        if (dlq_topic_origin(d->dlq, strlen(d->dlq), &olen) && olen > 0)
            copy_val(d->origin, sizeof(d->origin), d->dlq, olen);
    }
    if (!d->message_id[0] && d->origin[0] && d->origin_partition >= 0 && d->origin_offset >= 0) {
        /* the id the runtime gives a message without one (lib/README.md, message ids) */
        char ps[16], os[24], id[KS_ID_LEN];
        snprintf(ps, sizeof(ps), "%d", (int)d->origin_partition);
        snprintf(os, sizeof(os), "%" PRId64, d->origin_offset);
        ks_id_derive("msg", "kafka", id, d->origin, ps, os, NULL);
        copy_val(d->message_id, sizeof(d->message_id), id, strlen(id));
    }
}

static int in_list(char **list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], s) == 0)
            return 1;
    return 0;
}

int dlq_msg_match(const struct dlq_opts *o, const struct dlq_msg *d)
{
    const rd_kafka_message_t *m = d->rkm;

    if (o->nrefs) {
        int hit = 0;
        for (size_t i = 0; i < o->nrefs && !hit; i++)
            hit = o->refs[i].partition == d->partition && o->refs[i].offset == d->offset &&
                  strcmp(o->refs[i].topic, d->dlq) == 0;
        if (!hit)
            return 0;
    }
    if (o->nerrors && !in_list(o->errors, o->nerrors, d->cls))
        return 0;
    if (o->norigins && !in_list(o->origins, o->norigins, d->origin))
        return 0;
    if (o->since >= 0 && d->ts < o->since)
        return 0;
    if (o->until >= 0 && d->ts >= o->until)
        return 0;
    if (o->key && (!m->key || m->key_len != strlen(o->key) ||
                   memcmp(m->key, o->key, m->key_len) != 0))
        return 0;
    if (o->nhdrs) {
        rd_kafka_headers_t *h = NULL;
        if (rd_kafka_message_headers(m, &h) != 0)
            return 0;
        for (size_t i = 0; i < o->nhdrs; i++) {
            const void *v;
            size_t len;
            if (rd_kafka_header_get_last(h, o->hdrs[i].name, &v, &len) != 0 || !v ||
                len != strlen(o->hdrs[i].value) || memcmp(v, o->hdrs[i].value, len) != 0)
                return 0;
        }
    }
    return 1;
}

struct ks_scan *dlq_scan_open(struct dlq_ctx *c, struct ks_err *err)
{
    static const char *every[] = {"^.*\\.dlq$"};
    const char *const *topics = every;
    size_t ntopics = 1;
    struct ks_scan_range *ranges = NULL;
    struct ks_scan_opts so = {.from = KS_SCAN_BEGINNING};
    struct ks_scan *s = NULL;
    rd_kafka_conf_t *conf;
    const char **names = NULL;

    if (c->o.nrefs) { /* only the partitions of the refs, from the least to the greatest */
        size_t n = 0;
        if (!(ranges = calloc(c->o.nrefs, sizeof(*ranges))) ||
            !(names = calloc(c->o.nrefs, sizeof(*names)))) {
            ks_err_set(err, KS_ENOMEM, 0, NULL, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < c->o.nrefs; i++) {
            const struct dlq_ref *r = &c->o.refs[i];
            size_t k = 0;
            while (k < n && !(ranges[k].partition == r->partition &&
                              strcmp(ranges[k].topic, r->topic) == 0))
                k++;
            if (k == n) {
                ranges[n] = (struct ks_scan_range){r->topic, r->partition, r->offset,
                                                   r->offset + 1};
                names[n++] = r->topic;
            } else {
                if (r->offset < ranges[k].start)
                    ranges[k].start = r->offset;
                if (r->offset + 1 > ranges[k].end)
                    ranges[k].end = r->offset + 1;
            }
        }
        topics = names;
        ntopics = n;
        if (!(conf = ks_kafka_conf_new(c->brokers, "consumer", c->cfg, err)))
            goto out;
        s = ks_scan_new(conf, topics, ntopics, ranges, n, &so, err);
        goto out;
    }
    if (c->o.ndlqs) {
        topics = (const char *const *)c->o.dlqs;
        ntopics = c->o.ndlqs;
    }
    if (!(conf = ks_kafka_conf_new(c->brokers, "consumer", c->cfg, err)))
        goto out;
    s = ks_scan_new(conf, topics, ntopics, NULL, 0, &so, err);
out:
    if (s && c->db && !c->marks) {
        char **t = calloc(ks_scan_topic_count(s) + 1, sizeof(*t));
        if (t) {
            for (size_t i = 0; i < ks_scan_topic_count(s); i++)
                t[i] = (char *)ks_scan_topic(s, i);
            /* the lock first: marks read before it could miss a replay finishing meanwhile */
            /* and a killed replay's copies recorded before the marks are read */
            if (!c->lock ||
                (dlq_lock_topics(ks_db_conn(c->db), t, ks_scan_topic_count(s), err) == KS_OK &&
                 dlq_recover(c, err) == KS_OK))
                c->marks = dlq_marks_load(ks_db_conn(c->db), t, ks_scan_topic_count(s), err);
            free(t);
        }
        if (!c->marks) {
            if (!err->msg[0])
                ks_err_set(err, KS_ENOMEM, 0, NULL, "out of memory");
            ks_scan_free(s);
            s = NULL;
        }
    }
    free(ranges);
    free(names);
    return s;
}

int dlq_next(struct dlq_ctx *c, struct ks_scan *s, int timeout_ms, struct dlq_msg *d,
             struct ks_err *err)
{
    int want = c->o.status ? c->o.status : DLQ_ANY;

    for (;;) {
        rd_kafka_message_t *m = NULL;
        int r = ks_scan_next(s, timeout_ms, &m, err);

        if (r != 1)
            return r;
        dlq_msg_parse(d, m);
        /* the scan's copy of the topic name outlives the message (progress marks keep it) */
        for (size_t i = 0; i < ks_scan_topic_count(s); i++)
            if (strcmp(ks_scan_topic(s, i), d->dlq) == 0) {
                d->dlq = ks_scan_topic(s, i);
                break;
            }
        d->state = c->marks ? dlq_marks_get(c->marks, d->dlq, d->partition, d->offset) : 0;
        if (dlq_msg_match(&c->o, d) && (d->state == 0 || (d->state & want)))
            return 1;
        rd_kafka_message_destroy(m);
    }
}

const char *dlq_state_name(int state)
{
    if (state & DLQ_RESOLVED)
        return "resolved";
    if (state & DLQ_REPLAYED)
        return "replayed";
    return state ? "open" : "?";
}

void dlq_fmt_time(int64_t ms, char *buf, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    if (ms < 0 || !gmtime_r(&t, &tm)) {
        snprintf(buf, len, "-");
        return;
    }
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

void dlq_fmt_age(int64_t ms, int64_t now, char *buf, size_t len)
{
    int64_t s = (now - ms) / 1000;

    if (ms < 0)
        snprintf(buf, len, "-");
    else if (s < 120)
        snprintf(buf, len, "%" PRId64 "s", s < 0 ? 0 : s);
    else if (s < 7200)
        snprintf(buf, len, "%" PRId64 "m", s / 60);
    else if (s < 172800)
        snprintf(buf, len, "%" PRId64 "h", s / 3600);
    else
        snprintf(buf, len, "%" PRId64 "d", s / 86400);
}

json_t *dlq_text(const void *p, size_t len, int *exact)
{
    struct ks_jw w;
    json_t *j;
    char *q;
    size_t n;

    if (exact)
        *exact = 1;
    if (!p)
        return json_null();
    if ((j = json_stringn(p, len)))
        return j;
    /* not UTF-8: jansson refuses it, so take the text lib/jsonw makes of it (its one rule:
     * each invalid byte becomes U+FFFD) and read that back */
    if (exact)
        *exact = 0;
    ks_jw_init(&w, NULL, 0);
    ks_jw_quoten(&w, p, len);
    if (!(q = ks_jw_take(&w, &n)))
        return NULL;
    j = json_loadb(q, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    free(q);
    return j;
}

int dlq_utf8(const char *s)
{
    json_t *j = json_string(s); /* jansson checks: NULL when s is not UTF-8 */
    json_decref(j);
    return j != NULL;
}

static char *b64(const void *p, size_t len)
{
    char *s = malloc(ks_b64_enclen(len) + 1);
    if (s)
        ks_b64_encode(p, len, s);
    return s;
}

/* obj[name] = the bytes as text; bytes that are not UTF-8 also get obj[name_base64], exact.
 * name is the tool's own (ASCII). -1 when out of memory: the caller fails the line. */
static int set_text(json_t *obj, const char *name, const void *p, size_t len)
{
    int exact = 1, rc;
    json_t *v = dlq_text(p, len, &exact);
    char k[64], *e;

    if (!v || json_object_set_new(obj, name, v) != 0)
        return -1;
    if (exact)
        return 0;
    snprintf(k, sizeof(k), "%s_base64", name);
    if (!(e = b64(p, len)))
        return -1;
    rc = json_object_set_new(obj, k, json_string(e)) == 0 ? 0 : -1;
    free(e);
    return rc;
}

static int set_str(json_t *obj, const char *name, const char *s)
{
    return set_text(obj, name, s, strlen(s));
}

/* A map of names to bytes (headers): {name: text} and, for values that are not UTF-8,
 * {name: base64} beside it; named_set adds them as <name> and <name>_base64 and frees nm. */
static json_t *named_new(void)
{
    return json_pack("{s:{}, s:{}}", "text", "base64");
}

static int named_add(json_t *nm, const char *name, const void *p, size_t len)
{
    int exact = 1, bad;
    json_t *k = dlq_text(name, strlen(name), NULL), *tv = dlq_text(p, len, &exact);
    char *b = exact ? NULL : b64(p, len);

    bad = !k || !tv || (!exact && !b);
    if (!bad)
        bad = json_object_set(json_object_get(nm, "text"), json_string_value(k), tv) ||
              (b && json_object_set_new(json_object_get(nm, "base64"), json_string_value(k),
                                        json_string(b)));
    json_decref(k);
    json_decref(tv);
    free(b);
    return bad ? -1 : 0;
}

static int named_set(json_t *obj, const char *name, json_t *nm)
{
    json_t *b = json_object_get(nm, "base64");
    char k[64];
    int bad = !nm || json_object_set(obj, name, json_object_get(nm, "text"));

    snprintf(k, sizeof(k), "%s_base64", name);
    if (!bad && json_object_size(b))
        bad = json_object_set(obj, k, b);
    json_decref(nm);
    return bad ? -1 : 0;
}

json_t *dlq_msg_json(const struct dlq_msg *d, int full, int raw)
{
    const rd_kafka_message_t *m = d->rkm;
    char ref[400];
    json_t *j = json_object(), *err = json_object(), *org = json_object();
    int bad = !j || !err || !org;

    snprintf(ref, sizeof(ref), "%s:%d:%" PRId64, d->dlq, (int)d->partition, d->offset);
    /* every string may come from a header, and a header is bytes: set_text keeps a line
     * for every message, whatever its bytes */
    bad |= set_str(j, "ref", ref) | set_str(j, "dlq_topic", d->dlq);
    bad |= json_object_set_new(j, "partition", json_integer(d->partition));
    bad |= json_object_set_new(j, "offset", json_integer(d->offset));
    bad |= json_object_set_new(j, "timestamp", json_integer(d->ts));
    bad |= set_str(j, "status", dlq_state_name(d->state));
    bad |= set_str(j, "message_id", d->message_id);
    bad |= set_text(j, "key", m->key, m->key_len);
    bad |= set_str(err, "class", d->cls) | set_str(err, "code", d->code);
    bad |= set_str(err, "message", d->msg) | set_str(err, "field", d->field);
    bad |= json_object_set(j, "error", err);
    bad |= set_str(org, "topic", d->origin);
    bad |= json_object_set_new(org, "partition", json_integer(d->origin_partition));
    bad |= json_object_set_new(org, "offset", json_integer(d->origin_offset));
    bad |= json_object_set_new(org, "timestamp", json_integer(d->origin_ts));
    bad |= json_object_set(j, "origin", org);
    bad |= set_str(j, "group", d->group) | set_str(j, "instance", d->instance);
    bad |= json_object_set_new(j, "attempts", json_integer(d->attempt));
    bad |= json_object_set_new(j, "first_failure", json_integer(d->first_failure));
    bad |= json_object_set_new(j, "last_failure", json_integer(d->last_failure));
    json_decref(err);
    json_decref(org);
    if (full && !bad) {
        rd_kafka_headers_t *h = NULL;
        json_t *nm = named_new(), *v = NULL;
        const struct ks_schema *w = NULL;
        struct ks_err e = {0};
        const char *name;
        const void *val;
        size_t len;

        /* headers: {name: text}; values that are not UTF-8 also in headers_base64 */
        bad |= !nm;
        if (!bad && rd_kafka_message_headers(m, &h) == 0)
            for (size_t i = 0; rd_kafka_header_get_all(h, i, &name, &val, &len) == 0; i++)
                bad |= named_add(nm, name, val, len);
        bad |= named_set(j, "headers", nm);
        if (ks_serde_decode(m->payload, m->len, &w, &v, &e) == KS_OK) {
            bad |= set_str(j, "schema", ks_schema_name(w));
            bad |= json_object_set_new(j, "value", v);
        } else {
            bad |= json_object_set_new(j, "schema", json_null());
            bad |= json_object_set_new(j, "value", json_null());
            bad |= set_str(j, "decode_error", e.msg);
        }
        if (raw || !v) {
            char *b = b64(m->payload, m->len);
            bad |= !b || json_object_set_new(j, "value_base64", json_string(b));
            free(b);
        }
    }
    if (bad) {
        json_decref(j);
        return NULL;
    }
    return j;
}

int dlq_output_failed;

void dlq_json_line(json_t *j)
{
    if (j) {
        json_dumpf(j, stdout, JSON_COMPACT);
        fputc('\n', stdout);
    } else if (!dlq_output_failed++) { /* a line left out must not pass for a shorter list */
        fprintf(stderr, "kasir-dlq: could not build a JSON line (out of memory)\n");
    }
    json_decref(j);
}

void dlq_print_row_header(void)
{
    printf("%-34s %5s %-9s %-8s %-34s %-16s %3s %-8s %s\n", "REF", "AGE", "CLASS", "CODE",
           "ORIGIN", "KEY", "ATT", "STATUS", "MESSAGE");
}

/* length of the UTF-8 sequence at p (at most n bytes) that a terminal may be given as it
 * is, or 0: a control character (C0, DEL, C1) or a byte that starts no valid sequence */
static size_t tty_char(const unsigned char *p, size_t n)
{
    size_t k = p[0] < 0x80 ? 1 : p[0] >= 0xc2 && p[0] <= 0xdf ? 2
             : p[0] >= 0xe0 && p[0] <= 0xef ? 3 : p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : 0;

    if (k == 0 || k > n)
        return 0;
    for (size_t i = 1; i < k; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    if (k == 1)
        return p[0] < 0x20 || p[0] == 0x7f ? 0 : 1;
    if (k == 2 && p[0] == 0xc2 && p[1] < 0xa0) /* U+0080..U+009F: C1, CSI among them */
        return 0;
    return k;
}

int dlq_printable(const char *s)
{
    size_t len = strlen(s);

    for (size_t i = 0, k; i < len; i += k)
        if (!(k = tty_char((const unsigned char *)s + i, len - i)))
            return 0;
    return dlq_utf8(s);
}

/* A dead letter's bytes for a terminal: anyone who can get a message dead-lettered writes
 * them, and escape sequences would act on the operator's screen. Control characters and
 * bytes that are not UTF-8 are written as \xNN; into out (cut to cap), or to f when out
 * is NULL. */
static const char *tty_text(const char *s, size_t len, char *out, size_t cap, FILE *f)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0;

    for (size_t i = 0; i < len;) {
        char esc[5];
        size_t k = tty_char(p + i, len - i);
        const char *src = k ? s + i : esc;
        size_t n = k ? k : 4;

        if (!k)
            snprintf(esc, sizeof(esc), "\\x%02x", p[i]);
        i += k ? k : 1;
        if (!out) {
            fwrite(src, 1, n, f);
            continue;
        }
        if (o + n >= cap)
            break;
        memcpy(out + o, src, n);
        o += n;
    }
    if (out)
        out[o] = '\0';
    return out;
}

#define TTY(s, buf) tty_text((s), strlen(s), (buf), sizeof(buf), NULL)

void dlq_tty_put(const char *s, size_t len)
{
    tty_text(s, len, NULL, 0, stdout);
}

const char *dlq_tty_str(const char *s, char *out, size_t cap)
{
    return tty_text(s, strlen(s), out, cap, NULL);
}

void dlq_print_row(const struct dlq_msg *d, int64_t now)
{
    char cls[4 * sizeof(d->cls)], code[4 * sizeof(d->code)], msg[4 * 61];
    char ref[400], origin[300], age[16], key[17] = "";
    const rd_kafka_message_t *m = d->rkm;

    snprintf(ref, sizeof(ref), "%s:%d:%" PRId64, d->dlq, (int)d->partition, d->offset);
    snprintf(origin, sizeof(origin), "%s[%d]@%" PRId64, d->origin, (int)d->origin_partition,
             d->origin_offset);
    dlq_fmt_age(d->ts, now, age, sizeof(age));
    if (m->key)
        for (size_t i = 0; i < m->key_len && i < sizeof(key) - 1; i++) {
            char ch = ((const char *)m->key)[i];
            key[i] = ch >= 32 && ch < 127 ? ch : '.';
            key[i + 1] = '\0';
        }
    printf("%-34s %5s %-9s %-8s %-34s %-16s %3d %-8s %.60s\n", ref, age, TTY(d->cls, cls),
           TTY(d->code, code), origin, key, d->attempt, dlq_state_name(d->state),
           TTY(d->msg, msg));
}

void dlq_print_full(const struct dlq_msg *d, int raw)
{
    json_t *j = dlq_msg_json(d, 1, raw), *hs, *v;
    char t1[40], t2[40], t3[40], t4[40];
    char b1[4 * 1024 + 1], b2[4 * 1024 + 1], b3[4 * 1024 + 1], b4[4 * 128 + 1];
    const char *name;
    char *s;

    if (!j)
        return;
    dlq_fmt_time(d->ts, t1, sizeof(t1));
    dlq_fmt_time(d->origin_ts, t2, sizeof(t2));
    dlq_fmt_time(d->first_failure, t3, sizeof(t3));
    dlq_fmt_time(d->last_failure, t4, sizeof(t4));
    printf("== %s  (%s)\n", json_string_value(json_object_get(j, "ref")),
           dlq_state_name(d->state));
    printf("dead-lettered  %s\n", t1);
    printf("message id     %s\n", TTY(d->message_id, b1));
    v = json_object_get(j, "key");
    printf("key            %s\n", json_is_string(v) ? tty_text(json_string_value(v),
                                                              json_string_length(v), b2,
                                                              sizeof(b2), NULL)
                                                   : "(none or binary)");
    printf("origin         %s [%d] @%" PRId64 ", written %s\n", d->origin,
           (int)d->origin_partition, d->origin_offset, t2);
    printf("error          %s / %s: %s%s%s%s\n", TTY(d->cls, b1), TTY(d->code, b2),
           TTY(d->msg, b3), d->field[0] ? " (field " : "", TTY(d->field, b4),
           d->field[0] ? ")" : "");
    printf("consumer       group %s, instance %s\n", TTY(d->group, b1), TTY(d->instance, b2));
    printf("attempts       %d, first failure %s, last failure %s\n", d->attempt, t3, t4);
    printf("headers\n");
    hs = json_object_get(j, "headers");
    json_object_foreach(hs, name, v) {
        printf("  %-28s ", TTY(name, b1));
        if (json_is_string(v))
            dlq_tty_put(json_string_value(v), json_string_length(v));
        else
            fputs("(binary)", stdout);
        putchar('\n');
    }
    if (json_is_string(json_object_get(j, "decode_error")))
        printf("value          undecodable: %s\n",
               TTY(json_string_value(json_object_get(j, "decode_error")), b3));
    else if ((s = json_dumps(json_object_get(j, "value"), JSON_INDENT(2)))) {
        /* the payload's strings are the sender's too: JSON escapes C0, not DEL or C1 (CSI) */
        printf("value (%s)\n", json_string_value(json_object_get(j, "schema")));
        for (const char *l = s, *e; *l; l = *e ? e + 1 : e) {
            e = l + strcspn(l, "\n");
            dlq_tty_put(l, (size_t)(e - l));
            putchar('\n');
        }
        free(s);
    }
    if (json_is_string(json_object_get(j, "value_base64")))
        printf("value bytes (base64, %zu bytes)\n%s\n", d->rkm->len,
               json_string_value(json_object_get(j, "value_base64")));
    printf("\n");
    json_decref(j);
}

/* a list of strings; when one is not UTF-8, also name_base64: every one, exact */
static int set_list(json_t *obj, const char *name, char **v, size_t n)
{
    json_t *a = json_array(), *b = json_array();
    int bad = !a || !b, inexact = 0;
    char k[64];

    for (size_t i = 0; i < n && !bad; i++) {
        int exact = 1;
        char *e = b64(v[i], strlen(v[i]));
        bad |= json_array_append_new(a, dlq_text(v[i], strlen(v[i]), &exact)) ||
               !e || json_array_append_new(b, json_string(e));
        inexact |= !exact;
        free(e);
    }
    snprintf(k, sizeof(k), "%s_base64", name);
    bad |= json_object_set_new(obj, name, a);
    if (inexact)
        bad |= json_object_set(obj, k, b);
    json_decref(b);
    return bad ? -1 : 0;
}

/* the filters as given, for the audit: bytes that are not UTF-8 (a key or header value
 * copied from a message) are kept as text with U+FFFD and exactly in <name>_base64, so the
 * record never reads as a wider selection than the one made */
json_t *dlq_filters_json(const struct dlq_opts *o)
{
    json_t *j = json_object();
    int bad = !j;

    if (o->ndlqs)
        bad |= set_list(j, "dlq", o->dlqs, o->ndlqs);
    if (o->nerrors)
        bad |= set_list(j, "error", o->errors, o->nerrors);
    if (o->norigins)
        bad |= set_list(j, "topic", o->origins, o->norigins);
    if (o->since >= 0)
        bad |= json_object_set_new(j, "since", json_integer(o->since));
    if (o->until >= 0)
        bad |= json_object_set_new(j, "until", json_integer(o->until));
    if (o->key)
        bad |= set_str(j, "key", o->key);
    if (o->nhdrs) {
        json_t *nm = named_new();
        bad |= !nm;
        for (size_t i = 0; i < o->nhdrs && !bad; i++)
            bad |= named_add(nm, o->hdrs[i].name, o->hdrs[i].value, strlen(o->hdrs[i].value));
        bad |= named_set(j, "header", nm);
    }
    if (o->nrefs) {
        json_t *a = json_array();
        bad |= !a;
        for (size_t i = 0; i < o->nrefs && !bad; i++) {
            char ref[400];
            snprintf(ref, sizeof(ref), "%s:%d:%" PRId64, o->refs[i].topic,
                     (int)o->refs[i].partition, o->refs[i].offset);
            bad |= json_array_append_new(a, dlq_text(ref, strlen(ref), NULL));
        }
        bad |= json_object_set_new(j, "refs", a);
    }
    if (o->limit >= 0)
        bad |= json_object_set_new(j, "limit", json_integer(o->limit));
    if (o->rate > 0)
        bad |= json_object_set_new(j, "rate", json_real(o->rate));
    if (o->again)
        bad |= json_object_set_new(j, "again", json_true());
    if (o->all)
        bad |= json_object_set_new(j, "all", json_true());
    if (bad) {
        json_decref(j);
        return NULL;
    }
    return j;
}
