/* outbox.c - see outbox.h. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "kafka.h"
#include "log.h"
#include "outbox.h"
#include "ids.h"
#include "pgarr.h"
#include "banned.h"

/* The batch's rows go in with one binary COPY (multi-row inserts, no parsing of text or
 * arrays) under ids reserved beforehand: the sequence counts in blocks (800_runtime.sql),
 * one nextval() = the ids v .. v + block - 1 for this process alone. Ids left over stay
 * reserved for the next batch; a rolled-back batch just leaves a gap. */
static const char SQL_BLOCK[] =
    "SELECT seqincrement FROM pg_sequence WHERE seqrelid = 'kasir_outbox_id_seq'::regclass";
static const char SQL_RESERVE[] =
    "SELECT nextval('kasir_outbox_id_seq') FROM generate_series(1, $1::int)";
static const char SQL_COPY[] =
    "COPY kasir_outbox (id, worker, message_id, topic, key, value, headers) "
    "FROM STDIN (FORMAT binary)";
/* a delivered row is deleted: its sent mark. An UPDATE would write a new row version
 * and index entries for each message (it cost more than the INSERT); a DELETE only
 * stamps the old version, and the table stays the size of what is in flight. The ids go
 * as one sorted array against the table's one index, (worker, id) (800_runtime.sql),
 * hence the owner in the statement: one index descent per id (PostgreSQL 15), none of
 * them past the id, or on a table the planner thinks small a scan with the array hashed:
 * linear either way. Not as ranges of consecutive ids joined on "(worker, id) >= (x, lo)
 * AND (worker, id) <= (x, hi)": a row comparison bounds the scan's start only, so each
 * range read on to the owner's last entry, dead ones included: quadratic in the rows in
 * flight, and delivered ids are scattered whenever some partitions' deliveries come back
 * after the others' (the ledger's marks took 127 ms for 1,666 rows in one run at 2,500
 * payments/s; test 151; docs/BENCHMARKS.md, session 33). */
static const char SQL_MARK_HEAD[] = "DELETE FROM kasir_outbox WHERE worker = ";
static const char SQL_MARK_IDS[] = " AND id = ANY('";
static const char SQL_MARK_END[] = "'::bigint[])";
static const char SQL_SWEEP[] =
    "SELECT id, message_id, topic, key, value, headers, "
    "(extract(epoch FROM now() - created_at) * 1000)::bigint FROM kasir_outbox "
    "WHERE worker = $1 AND id > $2::bigint "
    "AND created_at <= now() - $3::bigint * interval '1 millisecond' "
    "ORDER BY id LIMIT $4::int";

/* rows Kafka refused for themselves (not for an outage) move to kasir_outbox_dead, in one
 * statement: a row is in exactly one of the two tables (800_runtime.sql) */
static const char SQL_PARK[] =
    "WITH d AS (DELETE FROM kasir_outbox WHERE worker = $1 AND id = ANY($2::bigint[]) "
    "RETURNING *) "
    "INSERT INTO kasir_outbox_dead (id, worker, message_id, topic, key, value, headers, "
    "created_at, attempts, last_error) "
    "SELECT d.id, d.worker, d.message_id, d.topic, d.key, d.value, d.headers, d.created_at, "
    "u.attempts, u.err FROM d JOIN unnest($2::bigint[], $3::int[], $4::text[]) "
    "AS u(id, attempts, err) ON u.id = d.id";

/* a row's refused deliveries, kept in memory: a restart starts the count again, which
 * only delays parking */
struct fail {
    int64_t id;
    int count;
    char err[120];
};
#define MAX_FAILS 4096

struct entry {
    char *topic;
    void *key;
    size_t key_len;
    void *value;
    size_t value_len;
    rd_kafka_headers_t *hdrs;
    char message_id[KS_ID_LEN];
    long cause;
    int64_t id;  /* after write; 0: not matched, leave it to the sweep */
    int dropped;
};

struct ks_outbox {
    char *owner;
    rd_kafka_t *rk;
    struct entry *e;
    size_t n, cap;
    int written;
    int64_t *delivered; /* ids reported delivered, not yet marked sent */
    size_t ndel, capdel, marking;
    uint64_t stat_delivered, stat_failed;
    int64_t sweep_cursor;
    int64_t id_block;          /* the sequence's increment; 0 until read */
    int64_t id_next, id_end;   /* reserved ids not used yet: [id_next, id_end) */
    struct ks_buf copy;        /* the COPY data of a batch */
    char *brokers;
    const struct ks_config *cfg;
    volatile int fatal;        /* the producer raised a fatal error: ks_outbox_recreate */
    char fatal_msg[200];
    struct fail *fails;
    size_t nfails;
    int park_after;
    int64_t park_age_ms;
    char *owner_lit; /* owner as an SQL literal (PQescapeLiteral, on the first mark), for
                      * the statements sent as text */
    uint64_t stat_parked, stat_recreated;
};

/* Errors that are about the message itself, which a later try cannot fix: counted
 * towards parking. Outages, timeouts, purges and fatal errors are not the row's fault. */
static int refused_for_itself(rd_kafka_resp_err_t e)
{
    switch (e) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_INVALID_MSG:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
        return 1;
    default:
        return 0;
    }
}

static struct fail *fail_find(struct ks_outbox *ob, int64_t id)
{
    for (size_t i = 0; i < ob->nfails; i++)
        if (ob->fails[i].id == id)
            return &ob->fails[i];
    return NULL;
}

static void fail_note(struct ks_outbox *ob, int64_t id, rd_kafka_resp_err_t e)
{
    struct fail *f;

    if (id <= 0 || !refused_for_itself(e))
        return;
    if (!(f = fail_find(ob, id))) {
        if (ob->nfails == MAX_FAILS)
            return; /* counted later, once others are parked */
        if (!ob->fails && !(ob->fails = calloc(MAX_FAILS, sizeof(*ob->fails))))
            return;
        f = &ob->fails[ob->nfails++];
        f->id = id;
        f->count = 0;
    }
    f->count++;
    snprintf(f->err, sizeof(f->err), "%s: %s", rd_kafka_err2name(e), rd_kafka_err2str(e));
}

static void fail_forget(struct ks_outbox *ob, int64_t id)
{
    struct fail *f = ob->nfails ? fail_find(ob, id) : NULL;
    if (f)
        *f = ob->fails[--ob->nfails];
}

static void entry_release(struct entry *e)
{
    free(e->topic);
    free(e->key);
    free(e->value);
    if (e->hdrs)
        rd_kafka_headers_destroy(e->hdrs);
    memset(e, 0, sizeof(*e));
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct ks_outbox *ob = opaque;
    int64_t id = (int64_t)(intptr_t)m->_private;

    (void)rk;
    if (m->err) {
        /* the row stays unsent; the sweep relays it again, or parks it */
        ob->stat_failed++;
        fail_note(ob, id, m->err);
        ks_log(KS_LOG_WARN, "outbox.delivery_failed", rd_kafka_err2str(m->err), "topic",
               rd_kafka_topic_name(m->rkt), NULL);
        return;
    }
    ob->stat_delivered++;
    if (id <= 0)
        return;
    fail_forget(ob, id);
    if (ob->ndel == ob->capdel) {
        size_t nc = ob->capdel ? ob->capdel * 2 : 4096;
        int64_t *nd = realloc(ob->delivered, nc * sizeof(*nd));
        if (!nd)
            return; /* not marked now: the sweep sends it once more, readers dedup */
        ob->delivered = nd;
        ob->capdel = nc;
    }
    ob->delivered[ob->ndel++] = id;
}

static void on_error(rd_kafka_t *rk, int e, const char *reason, void *opaque)
{
    struct ks_outbox *ob = opaque;

    if (e != RD_KAFKA_RESP_ERR__FATAL) {
        ks_log(KS_LOG_DEBUG, "outbox.producer.error", reason, NULL);
        return;
    }
    rd_kafka_fatal_error(rk, ob->fatal_msg, sizeof(ob->fatal_msg));
    ob->fatal = 1;
    ks_log(KS_LOG_ERROR, "outbox.producer.fatal", ob->fatal_msg, NULL);
}

static rd_kafka_t *producer_new(struct ks_outbox *ob, struct ks_err *err)
{
    rd_kafka_conf_t *conf = ks_kafka_conf_new(ob->brokers, "producer", ob->cfg, err);
    if (!conf)
        return NULL;
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_opaque(conf, ob);
    return ks_kafka_producer_new(conf, err);
}

struct ks_outbox *ks_outbox_new(const char *owner, const char *brokers,
                                const struct ks_config *cfg, struct ks_err *err)
{
    struct ks_outbox *ob = calloc(1, sizeof(*ob));

    if (!ob || !(ob->owner = strdup(owner)) || !(ob->brokers = strdup(brokers ? brokers : ""))) {
        if (ob)
            free(ob->owner);
        free(ob);
        ks_err_set(err, KS_ENOMEM, 0, NULL, "out of memory");
        return NULL;
    }
    ob->cfg = cfg;
    ob->park_after = 10;
    ob->park_age_ms = 3600000;
    if (!(ob->rk = producer_new(ob, err)))
        goto fail;
    return ob;
fail:
    ks_outbox_free(ob, 0);
    return NULL;
}

void ks_outbox_set_parking(struct ks_outbox *ob, int after, int64_t age_ms)
{
    ob->park_after = after > 0 ? after : 1;
    ob->park_age_ms = age_ms > 0 ? age_ms : 1;
}

int ks_outbox_fatal(const struct ks_outbox *ob)
{
    return ob->fatal;
}

enum ks_code ks_outbox_recreate(struct ks_outbox *ob, struct ks_err *err)
{
    rd_kafka_t *nrk;

    /* what the dead producer still held is in PostgreSQL: the next sweep sends it again */
    if (ob->rk) {
        rd_kafka_purge(ob->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(ob->rk, 0);
        rd_kafka_destroy(ob->rk);
        ob->rk = NULL;
    }
    if (!(nrk = producer_new(ob, err)))
        return err->code;
    ob->rk = nrk;
    ob->fatal = 0;
    ob->sweep_cursor = 0;
    ob->stat_recreated++;
    return KS_OK;
}

void ks_outbox_test_fatal(struct ks_outbox *ob)
{
    if (ob->rk)
        rd_kafka_test_fatal_error(ob->rk, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                                  "kasir test hook");
}

uint64_t ks_outbox_parked(const struct ks_outbox *ob)
{
    return ob->stat_parked;
}

void ks_outbox_free(struct ks_outbox *ob, int flush_ms)
{
    if (!ob)
        return;
    ks_outbox_discard(ob);
    if (ob->rk)
        ks_kafka_producer_close(ob->rk, flush_ms);
    free(ob->e);
    free(ob->delivered);
    ks_buf_release(&ob->copy);
    free(ob->fails);
    free(ob->brokers);
    free(ob->owner);
    PQfreemem(ob->owner_lit);
    free(ob);
}

enum ks_code ks_outbox_add(struct ks_outbox *ob, const char *topic, const void *key,
                           size_t key_len, void *value, size_t value_len,
                           rd_kafka_headers_t *hdrs, const char *message_id, long cause,
                           struct ks_err *err)
{
    struct entry *e;

    if (ob->n == ob->cap) {
        size_t nc = ob->cap ? ob->cap * 2 : 1024;
        struct entry *ne = realloc(ob->e, nc * sizeof(*ne));
        if (!ne)
            goto oom;
        ob->e = ne;
        ob->cap = nc;
    }
    e = &ob->e[ob->n];
    memset(e, 0, sizeof(*e));
    e->value = value;
    e->value_len = value_len;
    e->hdrs = hdrs;
    e->cause = cause;
    snprintf(e->message_id, sizeof(e->message_id), "%s", message_id);
    if (!(e->topic = strdup(topic)))
        goto oom_entry;
    if (key) {
        if (!(e->key = malloc(key_len ? key_len : 1)))
            goto oom_entry;
        memcpy(e->key, key, key_len);
        e->key_len = key_len;
    }
    ob->n++;
    return KS_OK;
oom_entry:
    entry_release(e);
    return ks_err_set(err, KS_ENOMEM, 0, NULL, "out of memory");
oom:
    free(value);
    if (hdrs)
        rd_kafka_headers_destroy(hdrs);
    return ks_err_set(err, KS_ENOMEM, 0, NULL, "out of memory");
}

void ks_outbox_drop(struct ks_outbox *ob, long cause)
{
    for (size_t i = 0; i < ob->n; i++)
        if (ob->e[i].cause == cause)
            ob->e[i].dropped = 1;
}

void *ks_outbox_headers_encode(const rd_kafka_headers_t *hdrs, size_t *len)
{
    size_t total = 0, idx, o = 0;
    const char *name;
    const void *val;
    size_t vlen;
    unsigned char *buf;

    *len = 0;
    if (!hdrs || rd_kafka_header_cnt(hdrs) == 0)
        return NULL;
    for (idx = 0; rd_kafka_header_get_all(hdrs, idx, &name, &val, &vlen) == 0; idx++)
        total += 2 + strlen(name) + 4 + (val ? vlen : 0);
    if (!(buf = malloc(total)))
        return NULL;
    for (idx = 0; rd_kafka_header_get_all(hdrs, idx, &name, &val, &vlen) == 0; idx++) {
        size_t nl = strlen(name);
        uint32_t vl = val ? (uint32_t)vlen : 0xffffffffu;
        if (nl > 0xffff)
            nl = 0xffff;
        buf[o++] = (unsigned char)(nl >> 8);
        buf[o++] = (unsigned char)nl;
        memcpy(buf + o, name, nl);
        o += nl;
        for (int s = 24; s >= 0; s -= 8)
            buf[o++] = (unsigned char)(vl >> s);
        if (val) {
            memcpy(buf + o, val, vlen);
            o += vlen;
        }
    }
    *len = o;
    return buf;
}

rd_kafka_headers_t *ks_outbox_headers_decode(const void *p, size_t len)
{
    const unsigned char *b = p;
    size_t o = 0;
    rd_kafka_headers_t *h = rd_kafka_headers_new(8);

    while (h && o < len) {
        size_t nl;
        uint32_t vl;
        if (len - o < 2)
            goto bad;
        nl = ((size_t)b[o] << 8) | b[o + 1];
        o += 2;
        if (len - o < nl + 4)
            goto bad;
        const unsigned char *name = b + o;
        o += nl;
        vl = ((uint32_t)b[o] << 24) | ((uint32_t)b[o + 1] << 16) | ((uint32_t)b[o + 2] << 8) |
             b[o + 3];
        o += 4;
        if (vl == 0xffffffffu) {
            rd_kafka_header_add(h, (const char *)name, (ssize_t)nl, NULL, 0);
            continue;
        }
        if (len - o < vl)
            goto bad;
        rd_kafka_header_add(h, (const char *)name, (ssize_t)nl, b + o, (ssize_t)vl);
        o += vl;
    }
    return h;
bad:
    rd_kafka_headers_destroy(h);
    return NULL;
}

static enum ks_code pg_fail(PGconn *pg, PGresult *res, const char *what, struct ks_err *err)
{
    char msg[200];
    size_t n;

    snprintf(msg, sizeof(msg), "%s", res ? PQresultErrorMessage(res) : PQerrorMessage(pg));
    n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    return ks_err_set(err, KS_EDB,
                      PQstatus(pg) != CONNECTION_OK ||
                          ks_db_transient(res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL),
                      NULL, "%s failed: %s", what, msg);
}

static int cmp_id(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* --- the COPY data: PGCOPY header, per row a field count and length-prefixed fields --- */

static int copy_room(struct ks_outbox *ob, size_t more)
{
    return ks_buf_room(&ob->copy, more) ? 0 : -1;
}

static void copy_u16(struct ks_outbox *ob, uint16_t v)
{
    ob->copy.p[ob->copy.len++] = (unsigned char)(v >> 8);
    ob->copy.p[ob->copy.len++] = (unsigned char)v;
}

static void copy_u32(struct ks_outbox *ob, uint32_t v)
{
    for (int sh = 24; sh >= 0; sh -= 8)
        ob->copy.p[ob->copy.len++] = (unsigned char)(v >> sh);
}

/* one field: NULL p is SQL NULL */
static int copy_field(struct ks_outbox *ob, const void *p, size_t len)
{
    if (copy_room(ob, 4 + (p ? len : 0)) != 0)
        return -1;
    if (!p) {
        copy_u32(ob, 0xffffffffu);
        return 0;
    }
    copy_u32(ob, (uint32_t)len);
    if (len)
        memcpy(ob->copy.p + ob->copy.len, p, len);
    ob->copy.len += len;
    return 0;
}

static int copy_row(struct ks_outbox *ob, const struct entry *e)
{
    unsigned char id[8];
    size_t hl = 0;
    void *hb = ks_outbox_headers_encode(e->hdrs, &hl);
    int rc;

    for (int i = 0; i < 8; i++)
        id[i] = (unsigned char)((uint64_t)e->id >> (56 - 8 * i));
    if (copy_room(ob, 2) != 0) {
        free(hb);
        return -1;
    }
    copy_u16(ob, 7);
    rc = copy_field(ob, id, 8) | copy_field(ob, ob->owner, strlen(ob->owner)) |
         copy_field(ob, e->message_id, strlen(e->message_id)) |
         copy_field(ob, e->topic, strlen(e->topic)) | copy_field(ob, e->key, e->key_len) |
         copy_field(ob, e->value, e->value_len) | /* NULL stays NULL (a tombstone) */
         copy_field(ob, hb, hl);
    free(hb);
    return rc;
}

/* Makes sure n ids are reserved: [id_next, id_next + n) afterwards. */
static enum ks_code reserve_ids(struct ks_outbox *ob, PGconn *pg, size_t n, struct ks_err *err)
{
    char count[24];
    const char *params[1] = {count};
    PGresult *res;
    int64_t blocks;

    if ((size_t)(ob->id_end - ob->id_next) >= n)
        return KS_OK;
    if (ob->id_block == 0) {
        res = PQexecParams(pg, SQL_BLOCK, 0, NULL, NULL, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            enum ks_code rc = pg_fail(pg, res, "outbox id block", err);
            PQclear(res);
            return rc;
        }
        /* no row or a step below 1: one id per nextval is always safe */
        ob->id_block = PQntuples(res) == 1 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 1;
        if (ob->id_block < 1)
            ob->id_block = 1;
        PQclear(res);
    }
    /* the leftover of the last block is dropped: blocks need not be adjacent. A few
     * batches' worth at once: the reservation is a round trip in the batch's path */
    blocks = ((int64_t)n + ob->id_block - 1) / ob->id_block;
    if (ob->id_block >= 256 && blocks * ob->id_block < 8192)
        blocks = (8192 + ob->id_block - 1) / ob->id_block;
    snprintf(count, sizeof(count), "%" PRId64, blocks);
    res = PQexecParams(pg, SQL_RESERVE, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != blocks) {
        enum ks_code rc = pg_fail(pg, res, "outbox id reserve", err);
        PQclear(res);
        return rc;
    }
    /* consecutive blocks from one call may interleave with other callers' blocks, so only
     * a run of adjacent blocks is used as one range; the rest waits for the next call */
    ob->id_next = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    ob->id_end = ob->id_next + ob->id_block;
    for (int i = 1; i < PQntuples(res); i++) {
        int64_t v = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        if (v != ob->id_end)
            break;
        ob->id_end = v + ob->id_block;
    }
    PQclear(res);
    if ((size_t)(ob->id_end - ob->id_next) < n)
        return reserve_ids(ob, pg, n, err); /* another session took a block in between */
    return KS_OK;
}

/* The DELETE of the delivered rows: head, owner, the sorted ids (digits only), end. */
static char *mark_text(struct ks_outbox *ob, PGconn *pg)
{
    struct ks_pgarr ids;
    char *q = NULL;
    size_t n;

    /* escaped by libpq for this connection (every lib session is UTF8, lib/db.c) */
    if (!ob->owner_lit && !(ob->owner_lit = PQescapeLiteral(pg, ob->owner, strlen(ob->owner))))
        return NULL;
    qsort(ob->delivered, ob->ndel, sizeof(*ob->delivered), cmp_id);
    ks_pgarr_init(&ids);
    for (size_t k = 0; k < ob->ndel; k++)
        if (k == 0 || ob->delivered[k] != ob->delivered[k - 1]) /* a delivery reported twice */
            ks_pgarr_int(&ids, ob->delivered[k]);
    if (ks_pgarr_str(&ids)) {
        n = sizeof(SQL_MARK_HEAD) + strlen(ob->owner_lit) + sizeof(SQL_MARK_IDS) +
            strlen(ks_pgarr_str(&ids)) + sizeof(SQL_MARK_END);
        if ((q = malloc(n)))
            snprintf(q, n, "%s%s%s%s%s", SQL_MARK_HEAD, ob->owner_lit, SQL_MARK_IDS,
                     ks_pgarr_str(&ids), SQL_MARK_END);
    }
    ks_pgarr_release(&ids);
    return q;
}

/* Builds the COPY data of the live rows under fresh ids; 0 rows: copy_len = 0. */
static enum ks_code copy_build(struct ks_outbox *ob, PGconn *pg, struct ks_err *err)
{
    static const unsigned char sig[11] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xff, '\r', '\n', 0};
    size_t live = 0;
    enum ks_code rc;

    ks_buf_reset(&ob->copy);
    for (size_t k = 0; k < ob->n; k++)
        live += !ob->e[k].dropped;
    if (live == 0)
        return KS_OK;
    if ((rc = reserve_ids(ob, pg, live, err)) != KS_OK)
        return rc;
    if (copy_room(ob, 19) != 0)
        goto oom;
    memcpy(ob->copy.p, sig, sizeof(sig));
    ob->copy.len = sizeof(sig);
    copy_u32(ob, 0); /* flags */
    copy_u32(ob, 0); /* header extension */
    for (size_t k = 0; k < ob->n; k++) {
        struct entry *e = &ob->e[k];
        if (e->dropped)
            continue;
        e->id = ob->id_next++;
        if (copy_row(ob, e) != 0)
            goto oom;
    }
    if (copy_room(ob, 2) != 0)
        goto oom;
    copy_u16(ob, 0xffff); /* end of data */
    return KS_OK;
oom:
    ks_buf_reset(&ob->copy);
    for (size_t k = 0; k < ob->n; k++)
        ob->e[k].id = 0;
    return ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
}

enum ks_code ks_outbox_commit_send(struct ks_outbox *ob, PGconn *pg, const char *rest,
                                   struct ks_err *err)
{
    PGresult *res = NULL;
    enum ks_code rc;
    char *mark = NULL, *q = NULL;
    size_t qlen;

    ob->written = 1;
    ob->marking = 0;
    if ((rc = copy_build(ob, pg, err)) != KS_OK)
        return rc;
    if (ob->ndel && !(mark = mark_text(ob, pg))) {
        rc = ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
        goto out;
    }
    qlen = sizeof(SQL_COPY) + (mark ? strlen(mark) : 0) + (rest ? strlen(rest) : 0) + 4;
    if (!(q = malloc(qlen))) {
        rc = ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
        goto out;
    }
    snprintf(q, qlen, "%s%s%s%s%s", ob->copy.len ? SQL_COPY : "", ob->copy.len ? ";" : "",
             mark ? mark : "", mark ? ";" : "", rest ? rest : "");
    if (!*q)
        goto out;
    if (!PQsendQuery(pg, q)) {
        rc = pg_fail(pg, NULL, "outbox send", err);
        goto out;
    }
    if (ob->copy.len) {
        /* the statements after the COPY run once its data is in; their results are the
         * caller's to read */
        res = PQgetResult(pg);
        if (PQresultStatus(res) != PGRES_COPY_IN) {
            rc = pg_fail(pg, res, "outbox copy", err);
            goto out;
        }
        if (PQputCopyData(pg, (const char *)ob->copy.p, (int)ob->copy.len) != 1 ||
            PQputCopyEnd(pg, NULL) != 1) {
            rc = pg_fail(pg, NULL, "outbox copy", err);
            goto out;
        }
    }
    ob->marking = mark ? ob->ndel : 0;
out:
    PQclear(res);
    free(q);
    free(mark);
    if (rc != KS_OK)
        for (size_t k = 0; k < ob->n; k++)
            ob->e[k].id = 0;
    return rc;
}

static int produce(struct ks_outbox *ob, const char *topic, const void *key, size_t klen,
                   void *value, size_t vlen, rd_kafka_headers_t *hdrs, int64_t id)
{
    rd_kafka_resp_err_t e;

    for (;;) {
        e = rd_kafka_producev(ob->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, klen),
                              RD_KAFKA_V_VALUE(value, vlen),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
                              RD_KAFKA_V_HEADERS(hdrs),
                              RD_KAFKA_V_OPAQUE((void *)(intptr_t)id), RD_KAFKA_V_END);
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            break;
        rd_kafka_poll(ob->rk, 10); /* the queue drains as deliveries are reported */
    }
    if (e) {
        ob->stat_failed++;
        fail_note(ob, id, e);
        ks_log(KS_LOG_WARN, "outbox.produce_failed", rd_kafka_err2str(e), "topic", topic,
               NULL);
        free(value);
        if (hdrs)
            rd_kafka_headers_destroy(hdrs);
        return -1;
    }
    return 0;
}

void ks_outbox_relay(struct ks_outbox *ob)
{
    for (size_t k = 0; k < ob->n; k++) {
        struct entry *e = &ob->e[k];
        if (!e->dropped && e->id > 0) {
            produce(ob, e->topic, e->key, e->key_len, e->value, e->value_len, e->hdrs, e->id);
            e->value = NULL; /* taken by produce */
            e->hdrs = NULL;
        }
        entry_release(e);
    }
    ob->n = 0;
    ob->written = 0;
    /* no rd_kafka_poll here: the caller serves delivery reports with ks_outbox_poll when
     * it has time (the worker does while its next batch commits) */
}

void ks_outbox_discard(struct ks_outbox *ob)
{
    for (size_t k = 0; k < ob->n; k++)
        entry_release(&ob->e[k]);
    ob->n = 0;
    ob->written = 0;
}

enum ks_code ks_outbox_mark_write(struct ks_outbox *ob, PGconn *pg, struct ks_err *err)
{
    PGresult *res;
    enum ks_code rc = KS_OK;
    char *q;

    ob->marking = 0;
    if (ob->ndel == 0)
        return KS_OK;
    if (!(q = mark_text(ob, pg)))
        return ks_err_set(err, KS_ENOMEM, 0, NULL, "out of memory");
    res = PQexec(pg, q);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        rc = pg_fail(pg, res, "outbox mark sent", err);
    else
        ob->marking = ob->ndel;
    PQclear(res);
    free(q);
    return rc;
}

void ks_outbox_mark_done(struct ks_outbox *ob, int committed)
{
    if (committed && ob->marking) {
        memmove(ob->delivered, ob->delivered + ob->marking,
                (ob->ndel - ob->marking) * sizeof(*ob->delivered));
        ob->ndel -= ob->marking;
    }
    ob->marking = 0;
}

size_t ks_outbox_delivered(const struct ks_outbox *ob)
{
    return ob->ndel;
}

void ks_outbox_poll(struct ks_outbox *ob, int timeout_ms)
{
    rd_kafka_poll(ob->rk, timeout_ms);
}

void ks_outbox_flush(struct ks_outbox *ob, int timeout_ms)
{
    rd_kafka_flush(ob->rk, timeout_ms);
    rd_kafka_poll(ob->rk, 0);
}

static int64_t be64(const char *p)
{
    const unsigned char *b = (const unsigned char *)p;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | b[i];
    return (int64_t)v;
}

/* Moves the rows of ids (with their refusal counts and errors) to kasir_outbox_dead. */
static enum ks_code park(struct ks_outbox *ob, PGconn *pg, struct ks_pgarr *ids,
                         struct ks_pgarr *counts, struct ks_pgarr *errs, struct ks_err *err)
{
    const char *params[4] = {ob->owner, ks_pgarr_str(ids), ks_pgarr_str(counts),
                             ks_pgarr_str(errs)};
    PGresult *res;
    enum ks_code rc = KS_OK;

    if (!params[1] || !params[2] || !params[3])
        return ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
    res = PQexecParams(pg, SQL_PARK, 4, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        rc = pg_fail(pg, res, "outbox park", err);
    else {
        int parked = (int)strtol(PQcmdTuples(res), NULL, 10);
        ob->stat_parked += (uint64_t)parked;
        ks_logf(KS_LOG_ERROR, "outbox.parked",
                "%d outbox row(s) Kafka refused repeatedly moved to kasir_outbox_dead", parked);
    }
    PQclear(res);
    return rc;
}

enum ks_code ks_outbox_sweep(struct ks_outbox *ob, PGconn *pg, int64_t min_age_ms, int limit,
                             int *n, struct ks_err *err)
{
    char cursor[24], age[24], lim[16];
    const char *params[4] = {ob->owner, cursor, age, lim};
    PGresult *res;
    int i, rows;
    int64_t maxid = ob->sweep_cursor;
    struct ks_pgarr ids, counts, errs;
    enum ks_code rc = KS_OK;

    *n = 0;
    snprintf(cursor, sizeof(cursor), "%" PRId64, ob->sweep_cursor);
    snprintf(age, sizeof(age), "%" PRId64, min_age_ms < 0 ? 0 : min_age_ms);
    snprintf(lim, sizeof(lim), "%d", limit);
    /* binary results: bytea and ids as they are, no unescaping */
    res = PQexecParams(pg, SQL_SWEEP, 4, NULL, params, NULL, NULL, 1);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = pg_fail(pg, res, "outbox sweep", err);
        PQclear(res);
        return rc;
    }
    ks_pgarr_init(&ids);
    ks_pgarr_init(&counts);
    ks_pgarr_init(&errs);
    rows = PQntuples(res);
    for (i = 0; i < rows; i++) {
        int64_t id = be64(PQgetvalue(res, i, 0)), row_age = be64(PQgetvalue(res, i, 6));
        struct fail *f = ob->nfails ? fail_find(ob, id) : NULL;
        char topic[256];
        void *val = NULL;
        size_t vlen = (size_t)PQgetlength(res, i, 4);
        rd_kafka_headers_t *h = NULL;

        if (id > maxid)
            maxid = id;
        if (f && (f->count >= ob->park_after || row_age >= ob->park_age_ms)) {
            ks_pgarr_int(&ids, id);
            ks_pgarr_int(&counts, f->count);
            ks_pgarr_text(&errs, f->err);
            f->count = ob->park_after; /* forgotten once parked */
            continue;
        }
        snprintf(topic, sizeof(topic), "%.*s", PQgetlength(res, i, 2), PQgetvalue(res, i, 2));
        if (!PQgetisnull(res, i, 5))
            h = ks_outbox_headers_decode(PQgetvalue(res, i, 5),
                                         (size_t)PQgetlength(res, i, 5));
        if (!PQgetisnull(res, i, 4)) {
            if (!(val = malloc(vlen ? vlen : 1))) {
                if (h)
                    rd_kafka_headers_destroy(h);
                break;
            }
            memcpy(val, PQgetvalue(res, i, 4), vlen);
        }
        if (produce(ob, topic, PQgetisnull(res, i, 3) ? NULL : PQgetvalue(res, i, 3),
                    (size_t)PQgetlength(res, i, 3), val, vlen, h, id) == 0)
            (*n)++;
    }
    /* rows relayed by this sweep are not selected again until a sweep finds nothing new;
     * then the cursor starts over and picks up any whose delivery failed */
    ob->sweep_cursor = rows ? maxid : 0;
    PQclear(res);
    if (ids.n) {
        rc = park(ob, pg, &ids, &counts, &errs, err);
        for (size_t k = 0; rc == KS_OK && k < ob->nfails;)
            if (ob->fails[k].count >= ob->park_after)
                ob->fails[k] = ob->fails[--ob->nfails]; /* parked (or gone) */
            else
                k++;
    }
    ks_pgarr_release(&ids);
    ks_pgarr_release(&counts);
    ks_pgarr_release(&errs);
    rd_kafka_poll(ob->rk, 0);
    return rc;
}

void ks_outbox_stats(const struct ks_outbox *ob, uint64_t *delivered, uint64_t *failed)
{
    *delivered = ob->stat_delivered;
    *failed = ob->stat_failed;
}
