/* worker_msg.c - the messages of a batch: collected up to worker.batch.max, decoded,
 * their runtime headers read only where the runtime wrote them, their ids, and the outputs
 * they cause (ks_batch_emit). See worker_int.h. */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "httpd.h"
#include "kafka.h"
#include "log.h"
#include "metrics.h"
#include "outbox.h"
#include "serde.h"
#include "worker_int.h"
#include "crypto.h"
#include "banned.h"


static const char *header(const rd_kafka_message_t *m, const char *name, char *buf, size_t len)
{
    return ks_kafka_header(m, name, buf, len);
}

static int64_t header_int(const rd_kafka_message_t *m, const char *name, int64_t def)
{
    char buf[32], *end;
    long long v;
    if (!header(m, name, buf, sizeof(buf)) || !*buf)
        return def;
    v = strtoll(buf, &end, 10);
    return *end ? def : (int64_t)v;
}

void wk_batch_clear(struct ks_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        json_decref(b->items[i].m.value);
        if (b->items[i].rkm)
            rd_kafka_message_destroy(b->items[i].rkm);
    }
    b->n = 0;
    b->nview = 0;
    b->first_ms = 0;
    b->clears++;
}

size_t ks_batch_count(const struct ks_batch *b)
{
    return b->nview;
}

struct ks_msg *ks_batch_msg(struct ks_batch *b, size_t i)
{
    return i < b->nview ? b->view[i] : NULL;
}

struct ks_worker *ks_batch_worker(struct ks_batch *b)
{
    return b->w;
}

void ks_batch_next_id(struct ks_batch *b, const struct ks_msg *m, const char *topic,
                      char out[KS_ID_LEN])
{
    /* the id is a hash (ks_id_derive): a handler that asks for it before emitting, as
     * the demo does, would otherwise pay for it twice */
    struct item *it = (struct item *)m;
    size_t tl = strlen(topic);
    char idx[16];

    if (it->id_for == it->nemit && strcmp(it->id_topic, topic) == 0) {
        memcpy(out, it->id_next, KS_ID_LEN);
        return;
    }
    snprintf(idx, sizeof(idx), "%d", it->nemit);
    ks_id_derive("msg", b->w->spec->name, out, m->message_id, topic, idx, NULL);
    if (tl < sizeof(it->id_topic)) {
        memcpy(it->id_topic, topic, tl + 1);
        memcpy(it->id_next, out, KS_ID_LEN);
        it->id_for = it->nemit;
        if (it->nemit == 0 && strcmp(b->w->out_topic, topic) != 0)
            memcpy(b->w->out_topic, topic, tl + 1);
    }
}

/* Derives, for every live item, the id of its first output to the topic the last batch
 * emitted to. It runs while the previous batch commits (see wk_process), so the handler
 * finds its ids ready; a handler that emits elsewhere just derives its own. */
void wk_derive_ids(struct ks_worker *w)
{
    struct ks_batch *b = &w->batch;

    if (!w->out_topic[0])
        return;
    for (size_t i = 0; i < b->n; i++) {
        struct item *it = &b->items[i];
        char id[KS_ID_LEN];
        if (it->state == ST_LIVE && it->id_for < 0)
            ks_batch_next_id(b, &it->m, w->out_topic, id);
    }
}

enum ks_code ks_batch_emit(struct ks_batch *b, struct ks_msg *m, const char *topic,
                           const void *key, size_t key_len, const char *schema_name,
                           const json_t *value, struct ks_err *err)
{
    struct item *it = (struct item *)m;
    const struct ks_schema *s = ks_schema_by_name(schema_name);
    void *buf = NULL;
    size_t len = 0;
    char id[KS_ID_LEN], span[17], tp[56];
    rd_kafka_headers_t *h;

    if (!s)
        return ks_err_set(err, KS_ENOTFOUND, 0, NULL, "unknown schema %s", schema_name);
    if (ks_serde_encode(s, value, &buf, &len, err) != KS_OK)
        return err->code;
    ks_batch_next_id(b, m, topic, id);
    it->nemit++;
    wk_rnd_hex(b->w, span, 8);
    ks_trace_format(m->trace_id, span, it->flags, tp);
    if (!(h = ks_headers_output(id, b->w->spec->name, m->message_id, tp))) {
        free(buf);
        return ks_err_set(err, KS_ENOMEM, 0, NULL, "out of memory");
    }
    return ks_outbox_add(b->w->ob, topic, key, key_len, buf, len, h, id, (long)(it - b->items),
                         err);
}

/* The input's id from its kasir.message_id header into out; 0 when it has none. An id is
 * stored as text and compared whole downstream, so a value longer than an id (cut, two
 * inputs would share one id and a reader's dedup drop an output) or with bytes that are
 * not printable ASCII (PostgreSQL refuses invalid UTF-8: the batch, its dead-letter copy
 * included, could never commit) is replaced by a hash of its bytes: distinct, storable,
 * and the same for every copy of that input. */
static int header_id(const rd_kafka_message_t *r, char out[KS_ID_LEN])
{
    rd_kafka_headers_t *h = NULL;
    const void *val = NULL;
    size_t len = 0;

    if (rd_kafka_message_headers(r, &h) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        rd_kafka_header_get_last(h, KS_H_MESSAGE_ID, &val, &len) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        !val || len == 0)
        return 0;
    ks_id_from_bytes(val, len, out);
    return 1;
}

/* 1 when a string anywhere in v holds a NUL. Every field of every message passes here:
 * no path is built (an snprintf per field was ~6 % of a worker's CPU) */
static int has_nul(const json_t *v)
{
    size_t i;
    const char *k;
    json_t *x;

    if (json_is_string(v))
        return memchr(json_string_value(v), '\0', json_string_length(v)) != NULL;
    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, k, x)
            if (has_nul(x))
                return 1;
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, x)
            if (has_nul(x))
                return 1;
    }
    return 0;
}

/* The same, for a message that has one: its field path (a.b[2].c) into path. */
static int nul_field(const json_t *v, char *path, size_t len)
{
    size_t pl = strlen(path), i;
    const char *k;
    json_t *x;

    if (json_is_string(v))
        return strlen(json_string_value(v)) != json_string_length(v);
    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, k, x) {
            snprintf(path + pl, len - pl, "%s%s", pl ? "." : "", k);
            if (nul_field(x, path, len))
                return 1;
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, x) {
            snprintf(path + pl, len - pl, "[%zu]", i);
            if (nul_field(x, path, len))
                return 1;
        }
    }
    path[pl] = '\0';
    return 0;
}

/* The runtime's headers on m are its own only on one of this worker's retry topics and
 * naming that retry topic's own main topic as the origin: a header set by anyone else
 * (a producer, a replay of a DLQ copy) must not move a message's attempt, due time or
 * origin. Copies the trusted origin topic into out. */
static int runtime_headers_trusted(const struct item *it, char *out, size_t len)
{
    const char *topic = rd_kafka_topic_name(it->rkm->rkt);
    size_t ml = it->p->retry_topic; /* the main topic's length */
    char buf[256];

    if (!ml || ml >= len)
        return 0;
    if (!header(it->rkm, KS_H_ORIGIN_TOPIC, buf, sizeof(buf)) || strlen(buf) != ml ||
        memcmp(buf, topic, ml) != 0)
        return 0;
    memcpy(out, buf, strlen(buf) + 1);
    return 1;
}

/* Reads headers, decodes, checks due time and validity. Returns 1 when the item is to be
 * held (a retry not yet due), else 0 with it->state set. */
static int item_prepare(struct ks_worker *w, struct item *it, int64_t now)
{
    rd_kafka_message_t *r = it->rkm;
    struct ks_msg *m = &it->m;
    char buf[256], span[17];
    struct ks_err err = {0};
    const struct ks_schema *writer = NULL;
    rd_kafka_timestamp_type_t tstype;
    int had_id;

    m->topic = rd_kafka_topic_name(r->rkt);
    m->partition = r->partition;
    m->offset = r->offset;
    m->timestamp_ms = rd_kafka_message_timestamp(r, &tstype);
    m->key = r->key;
    m->key_len = r->key_len;
    m->raw = r;
    m->attempt = 1;
    it->first_failure_ms = -1;
    if (runtime_headers_trusted(it, it->origin_topic, sizeof(it->origin_topic))) {
        int64_t due = header_int(r, KS_H_NOT_BEFORE, 0);
        /* a copy is never due later than the longest delay plus its jitter after it was
         * written: a due time beyond that (a clock far off, a forged header) would hold the
         * partition, and every genuine retry behind it, for as long as it says */
        int64_t dmax = w->ndelays ? w->delays[w->ndelays - 1] : 0;
        int64_t bound = (m->timestamp_ms > 0 ? m->timestamp_ms : now) + dmax +
                        dmax * w->jitter_pct / 100 + 1000;
        if (due > bound)
            due = bound;
        /* the timestamp is the writer's too: a copy stamped more than a minute ahead of
         * this clock (a relay whose clock runs fast, a forgery) would pass the cap with it
         * and hold the partition as long; it is run now instead (test 145) */
        if (m->timestamp_ms > now + 60000)
            due = now;
        if (due > now) {
            it->p->due_ms = due;
            return 1;
        }
        m->attempt = (int)header_int(r, KS_H_ATTEMPT, 1);
        if (m->attempt < 1)
            m->attempt = 1;
        it->origin_partition = (int32_t)header_int(r, KS_H_ORIGIN_PARTITION, -1);
        it->origin_offset = header_int(r, KS_H_ORIGIN_OFFSET, -1);
        it->origin_ts = header_int(r, KS_H_ORIGIN_TIMESTAMP, -1);
        it->first_failure_ms = header_int(r, KS_H_FIRST_FAILURE, -1);
    } else {
        /* the message's own position; on a retry topic written by someone else than the
         * runtime, the main topic it belongs to */
        snprintf(it->origin_topic, sizeof(it->origin_topic), "%s", m->topic);
        if (it->p->retry_topic && it->p->retry_topic < sizeof(it->origin_topic))
            it->origin_topic[it->p->retry_topic] = '\0';
        it->origin_partition = m->partition;
        it->origin_offset = m->offset;
        it->origin_ts = m->timestamp_ms;
    }
    m->origin_topic = it->origin_topic;
    had_id = header_id(r, m->message_id);
    if (!header(r, KS_H_TRACEPARENT, buf, sizeof(buf)) ||
        ks_trace_parse(buf, m->trace_id, span, it->flags) != 0) {
        wk_rnd_hex(w, m->trace_id, 16);
        snprintf(it->flags, sizeof(it->flags), "01");
    }
    it->state = ST_LIVE;
    if (!r->payload) {
        ks_err_set(&err, KS_EPOISON, 0, NULL, "message has no value");
        wk_item_fail(it, "poison", &err);
        goto no_id;
    }
    if (ks_serde_decode(r->payload, r->len, &writer, &m->value, &err) != KS_OK) {
        if (err.code != KS_EPOISON)
            err.code = KS_EPOISON;
        wk_item_fail(it, "poison", &err);
        goto no_id;
    }
    m->schema = ks_schema_name(writer);
    buf[0] = '\0';
    if (has_nul(m->value) && nul_field(m->value, buf, sizeof(buf))) {
        /* PostgreSQL text cannot hold U+0000, and C strings end there: "E\0x" would be
         * taken as "E" (a duplicate) and "victim\0x" as "victim" (somebody else's
         * account). Such a message can never be stored faithfully: invalid. */
        ks_err_set(&err, KS_EINVAL, 0, buf, "%s contains a NUL character", buf);
        wk_item_fail(it, "invalid", &err);
        goto no_id;
    }
    if (!had_id) {
        /* every Kasir schema carries its message id in the payload too */
        /* by its whole length: a NUL inside must not cut two ids to one */
        const json_t *jid = json_object_get(m->value, "message_id");
        const char *mid = json_string_value(jid);
        size_t ml = mid ? json_string_length(jid) : 0;
        if (ml) {
            ks_id_from_bytes(mid, ml, m->message_id);
            had_id = 1;
        }
    }
    if (w->spec->validate && w->spec->validate(m, w->spec->ctx, &err) != KS_OK)
        wk_item_fail(it, err.retriable ? "retry" : err.code == KS_EINVAL ? "invalid" : "failed",
                  &err);
no_id:
    if (!had_id) {
        /* no id on the message: one from its position (a hash, so only when needed) */
        char ps[16], os[24];
        snprintf(ps, sizeof(ps), "%d", (int)it->origin_partition);
        snprintf(os, sizeof(os), "%" PRId64, it->origin_offset);
        ks_id_derive("msg", "kafka", m->message_id, it->origin_topic, ps, os, NULL);
    }
    return 0;
}

static int batch_add(struct ks_batch *b, rd_kafka_message_t *r, struct part *p)
{
    struct item *it;
    if (b->n == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 256;
        struct item *ni = realloc(b->items, nc * sizeof(*ni));
        struct ks_msg **nv = realloc(b->view, nc * sizeof(*nv));
        if (ni) {
            b->items = ni;
            /* prepared items point into themselves (origin_topic): the move broke that */
            for (size_t i = 0; i < b->n; i++)
                if (b->items[i].m.origin_topic)
                    b->items[i].m.origin_topic = b->items[i].origin_topic;
        }
        if (nv)
            b->view = nv;
        if (!ni || !nv)
            return -1;
        b->cap = nc;
    }
    if (b->n == 0)
        b->first_ms = ks_clock_mono_us() / 1000;
    it = &b->items[b->n++];
    memset(it, 0, sizeof(*it));
    it->rkm = r;
    it->p = p;
    it->id_for = -1;
    if (r->offset + 1 > p->taken)
        p->taken = r->offset + 1;
    return 0;
}

/* Fills the batch: due held messages first, then the consumer, up to batch.max messages
 * or batch.wait after the first (the batch's first, when it is called again on a batch it
 * began), or - batch.gap set - as soon as no message came for batch.gap. wait = 0: only
 * what librdkafka has queued already, no wait at all. */
void wk_collect(struct ks_worker *w, int wait)
{
    struct ks_batch *b = &w->batch;
    int gen = w->generation;
    int64_t deadline = 0, now = ks_clock_wall_ms();

    for (size_t i = 0; i < w->nparts; i++) {
        struct part *p = &w->parts[i];
        if (p->nheld && p->due_ms <= now) {
            size_t k, n = p->nheld;
            for (k = 0; k < n && b->n < (size_t)w->batch_max && batch_add(b, p->held[k], p) == 0;
                 k++)
                b->items[b->n - 1].from_held = 1;
            memmove(p->held, p->held + k, (n - k) * sizeof(*p->held));
            p->nheld = n - k;
            if (p->nheld == 0 && p->paused)
                wk_set_paused(w, p, 0);
        }
    }
    if (b->n)
        deadline = b->first_ms + w->batch_wait_ms;
    while (b->n < (size_t)w->batch_max && !w->stop) {
        int timeout = !wait ? 0 : b->n ? (int)(deadline - ks_clock_mono_us() / 1000) : 100;
        rd_kafka_message_t *r;
        struct part *p;

        if (timeout < 0)
            timeout = 0;
        if (wait && b->n && w->batch_gap_ms > 0 && timeout > w->batch_gap_ms)
            timeout = (int)w->batch_gap_ms;
        r = rd_kafka_consumer_poll(w->rk, timeout);
        if (w->generation != gen) {
            /* a rebalance ran inside poll: what we hold may belong to someone else now */
            wk_batch_clear(b);
            gen = w->generation;
        }
        if (!r) {
            if (!wait || b->n == 0 || w->batch_gap_ms > 0 ||
                ks_clock_mono_us() / 1000 >= deadline)
                break;
            continue;
        }
        if (r->err == RD_KAFKA_RESP_ERR__FATAL) {
            wk_consumer_fatal(w, rd_kafka_message_errstr(r));
            rd_kafka_message_destroy(r);
            wk_batch_clear(b);
            return;
        }
        if (r->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET) {
            /* a position the log no longer reaches (auto.offset.reset is "error"): the
             * assignment is taken again in a second, which checks every position against
             * its log (a broker that could not answer that check is asked again then) */
            char part[16];
            snprintf(part, sizeof(part), "%d", (int)r->partition);
            ks_log(KS_LOG_ERROR, "worker.position_outside_log", rd_kafka_message_errstr(r),
                   "topic", r->rkt ? rd_kafka_topic_name(r->rkt) : "", "partition", part,
                   NULL);
            rd_kafka_message_destroy(r);
            wk_drop_and_resync(w, 1000);
            return;
        }
        if (r->err) {
            if (r->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                ks_log(KS_LOG_WARN, "worker.consumer.error", rd_kafka_message_errstr(r),
                       "topic", r->rkt ? rd_kafka_topic_name(r->rkt) : NULL, NULL);
            rd_kafka_message_destroy(r);
            continue;
        }
        p = w->synced ? wk_find_part(w, rd_kafka_topic_name(r->rkt), r->partition) : NULL;
        /* below the stored position, or one we have in hand (a re-assignment of the
         * partitions we kept, while another's row is locked, fetches them again: test 148) */
        if (!p || (p->expected >= 0 && r->offset < p->expected) || r->offset < p->taken) {
            if (p && r->offset >= p->expected && r->offset < p->taken)
                ks_metric_add(w->m_refetched, 1);
            rd_kafka_message_destroy(r);
            continue;
        }
        if (p->nheld) {
            wk_hold(w, p, r, 0);
            continue;
        }
        if (batch_add(b, r, p) != 0) {
            rd_kafka_message_destroy(r);
            wk_unsync(w);
            wk_batch_clear(b);
            return;
        }
        if (b->n == 1)
            deadline = b->first_ms + w->batch_wait_ms;
    }
}

/* Decodes, validates and holds what is not due, from item `from` on (those before it were
 * prepared by an earlier call on the same batch); the batch keeps items in arrival order
 * with held ones removed. */
void wk_prepare(struct ks_worker *w, size_t from)
{
    struct ks_batch *b = &w->batch;
    int64_t now = ks_clock_wall_ms();
    int gen = w->generation;
    size_t o;

    if (from > b->n)
        from = b->n;
    o = from;
    for (size_t i = 0; i < w->nparts; i++)
        w->parts[i].front = 0;
    for (size_t i = from; i < b->n; i++) {
        struct item *it = &b->items[i];
        /* held behind what its partition holds: a copy taken from held waits only for
         * the ones of this batch put back before it (those left are younger: test 149) */
        if ((it->from_held ? it->p->front > 0 : it->p->nheld > 0) || item_prepare(w, it, now)) {
            json_decref(it->m.value);
            wk_hold(w, it->p, it->rkm, it->from_held);
            continue;
        }
        if (o != i) {
            b->items[o] = *it;
            b->items[o].m.origin_topic = b->items[o].origin_topic; /* points into the item */
        }
        o++;
    }
    b->n = o;
    if (w->generation != gen) {
        /* wk_hold() could not keep a message (no memory) and dropped it: the ones after it
         * in its partition must not commit past it; positions are read again anyway */
        wk_batch_clear(b);
        return;
    }
    ks_metric_add(w->m_msgs, (int64_t)(o - from));
}

void wk_build_view(struct ks_batch *b)
{
    b->nview = 0;
    for (size_t i = 0; i < b->n; i++)
        if (b->items[i].state == ST_LIVE)
            b->view[b->nview++] = &b->items[i].m;
}
