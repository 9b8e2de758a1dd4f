/* worker.c - the consumer loop of every Kasir worker. See worker.h for the contract and
 * lib/README.md for tables, headers and the error policy.
 *
 * One batch is one PostgreSQL transaction:
 *   BEGIN; [claim message ids]; handler effects; then, as one query string sent without
 *   waiting: COPY of the outbox rows (outputs, retry and DLQ copies), DELETE of the rows
 *   delivered since the last batch, the fenced offsets update (kasir_offsets_advance,
 *   which raises KS409 when another owner moved a partition), COMMIT.
 * While that runs the loop frees the batch and collects and decodes the next one; then it
 * reads the outcome, hands the outbox rows to the producer and the offsets to Kafka
 * (async, for lag tools). Anything that needs the connection meanwhile (a rebalance)
 * settles the batch in flight first.
 * Positions come only from PostgreSQL: on assignment, after a fence, after an outage the
 * partitions are (re)assigned at the offsets read from kasir_offsets. */
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
#include "worker.h"
#include "crypto.h"
#include "banned.h"

#define MAX_DELAYS 8
#define MAX_TOPICS 32

static const char SQL_OFFSETS_INIT[] =
    "INSERT INTO kasir_offsets (group_id, topic, partition) "
    "SELECT $1, t, p FROM unnest($2::text[], $3::int[]) AS u(t, p) ON CONFLICT DO NOTHING";
/* reading the positions is taking ownership: the epoch moves, which fences the journal
 * writes (ks_batch_journal) of any earlier owner */
static const char SQL_OFFSETS_READ[] =
    "UPDATE kasir_offsets o SET epoch = o.epoch + 1, instance = $4 "
    "FROM unnest($2::text[], $3::int[]) AS u(t, p) "
    "WHERE o.group_id = $1 AND o.topic = u.t AND o.partition = u.p "
    "RETURNING o.topic, o.partition, o.next_offset, o.epoch";
static const char SQL_OWNED[] =
    "SELECT 1 FROM kasir_offsets WHERE group_id = $1 AND topic = $2 AND partition = $3::int "
    "AND epoch = $4::bigint";
static const char SQL_OWNED_LOCK[] =
    "SELECT 1 FROM kasir_offsets WHERE group_id = $1 AND topic = $2 AND partition = $3::int "
    "AND epoch = $4::bigint FOR SHARE";
/* kasir_processed rows older than worker.dedup.retention go, a slice at a time */
static const char SQL_PURGE[] =
    "DELETE FROM kasir_processed WHERE ctid = ANY(ARRAY(SELECT ctid FROM kasir_processed "
    "WHERE consumer = $1 AND processed_at < now() - $2::bigint * interval '1 millisecond' "
    "LIMIT 10000))";
/* takes back the dedup claims of messages the handler failed (unclaim_failed) */
static const char SQL_UNCLAIM[] =
    "DELETE FROM kasir_processed WHERE consumer = $1 AND message_id = ANY($2::text[])";
/* the fence (migration 105): a row moves only from the position this owner read or wrote
 * last, else SQLSTATE KS409 aborts the transaction before the COMMIT that follows it */
#define FENCE_SQLSTATE "KS409"

enum state { ST_LIVE, ST_FAILED, ST_SKIP };

struct part {
    char *topic;
    int32_t partition;
    int retry_topic;       /* 1 for <topic>.retry.<delay> */
    int64_t expected;      /* next_offset as in PostgreSQL; -1: nothing processed yet */
    int64_t epoch;         /* kasir_offsets.epoch when this instance took the partition */
    int64_t batch_next;    /* during a batch: the offset after its last message here */
    rd_kafka_message_t **held; /* retry messages read before their due time, in order */
    size_t nheld, capheld;
    int64_t due_ms;
    int paused;
    struct ks_metric *lag;
};

struct item {
    struct ks_msg m; /* first: a struct ks_msg * is a struct item * */
    rd_kafka_message_t *rkm;
    struct part *p;
    enum state state;
    struct ks_err err;
    const char *err_class;
    char origin_topic[256];
    int32_t origin_partition;
    int64_t origin_offset, origin_ts, first_failure_ms;
    char flags[3];
    int nemit;
    int id_for;      /* nemit the cached id below was derived for; -1: none */
    char id_topic[256];
    char id_next[KS_ID_LEN]; /* ks_batch_next_id's answer, reused by ks_batch_emit */
    int by_handler; /* failed by the handler (decided again when the batch is re-run) */
    int claimed;    /* its message id was claimed in kasir_processed in this transaction */
};

struct ks_batch {
    struct ks_worker *w;
    struct item *items;
    size_t n, cap;
    struct ks_msg **view; /* what the handler sees */
    size_t nview;
};

struct ks_worker {
    const struct ks_worker_spec *spec;
    const struct ks_config *cfg;
    char instance[128];
    const char *group;
    char *topics[MAX_TOPICS];
    size_t ntopics;
    int64_t delays[MAX_DELAYS];
    char delay_names[MAX_DELAYS][16];
    size_t ndelays;
    int max_attempts, jitter_pct, batch_max;
    int64_t batch_wait_ms, sweep_ms, min_age_ms;
    int64_t stmt_ms, lock_ms, idle_tx_ms, backoff_max_ms, dedup_keep_ms;
    int max_failures;

    struct ks_db *db;
    struct ks_db *jdb;   /* the journal's own connection (ks_batch_journal), lazily */
    const char *dsn;
    int pg_up;           /* read by the HTTP thread: a plain int is enough for a hint */
    rd_kafka_t *rk;
    struct ks_outbox *ob;
    struct ks_metrics *metrics;
    struct ks_httpd *httpd;

    struct part *parts;  /* the group's assignment to us */
    size_t nparts;
    int synced;          /* parts are rd_kafka_assign'ed at their PostgreSQL offsets */
    int generation;      /* bumped by every rebalance event */
    volatile sig_atomic_t stop;
    int64_t loop_at_ms;  /* last loop turn, for /healthz */
    int debug;           /* log.level is debug: per-batch timings */
    char out_topic[256]; /* the topic of the last output id derived ("" none yet) */

    struct ks_batch batch;
    int ready;           /* batch was collected and prepared while the last tail ran */
    int tail;            /* a batch's end (outbox, fence, COMMIT) is in flight on db */
    int tail_isolated;
    int isolate_next;    /* the last batch failed at its end: run the next one isolated */
    int isolating;       /* the transaction in progress is the savepoint pass */
    int sweep_all;       /* the next sweep takes rows of any age (after a new producer) */
    int bug;             /* the handler ended the runtime's transaction */
    int journal_fenced;  /* ks_batch_journal found the partition taken: drop the batch */
    int64_t failed_backoff; /* ms before a failed batch is read again */
    int fail_streak;     /* batches failed in a row on a healthy server with fail_msg */
    char fail_msg[256];
    volatile sig_atomic_t fatal; /* the consumer hit a fatal error: stop, exit 3 */
    int64_t tail_t0, tail_sent; /* mono us: batch start, tail sent */
    uint64_t rng;
    int64_t next_sweep, next_lag, next_sync, sync_backoff, next_progress, next_purge;

    struct ks_metric *m_msgs, *m_batches, *m_lat, *m_retries, *m_dlq, *m_relayed,
        *m_relay_failed, *m_fenced, *m_pg_up, *m_skipped, *m_infra, *m_failed_batches,
        *m_kafka_fatal, *m_parked;
    uint64_t last_delivered, last_failed;
};

static void settle(struct ks_worker *w);

/* --- small helpers -------------------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static uint64_t rnd64(struct ks_worker *w)
{
    /* xorshift64*: span ids and jitter need speed, not secrecy */
    uint64_t x = w->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    w->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static void rnd_hex(struct ks_worker *w, char *out, size_t nbytes)
{
    uint8_t b[16];
    for (size_t i = 0; i < nbytes; i += 8) {
        uint64_t r = rnd64(w);
        memcpy(b + i, &r, nbytes - i < 8 ? nbytes - i : 8);
    }
    b[0] |= 1; /* never all zero */
    ks_hex_encode(b, nbytes, out);
}

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

static struct part *find_part(struct ks_worker *w, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < w->nparts; i++)
        if (w->parts[i].partition == partition && strcmp(w->parts[i].topic, topic) == 0)
            return &w->parts[i];
    return NULL;
}

/* Pauses (on) or resumes fetching of one partition and records it. */
static void set_paused(struct ks_worker *w, struct part *p, int on)
{
    if (w->rk) {
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, p->topic, p->partition);
        if (on)
            rd_kafka_pause_partitions(w->rk, l);
        else
            rd_kafka_resume_partitions(w->rk, l);
        rd_kafka_topic_partition_list_destroy(l);
    }
    p->paused = on;
}

static void release_held(struct ks_worker *w, struct part *p)
{
    for (size_t i = 0; i < p->nheld; i++)
        rd_kafka_message_destroy(p->held[i]);
    p->nheld = 0;
    if (p->paused)
        set_paused(w, p, 0);
}

static void clear_parts(struct ks_worker *w)
{
    for (size_t i = 0; i < w->nparts; i++) {
        release_held(w, &w->parts[i]);
        free(w->parts[i].held);
        free(w->parts[i].topic);
        /* a revoked partition's lag is another instance's to report */
        ks_metrics_remove(w->metrics, w->parts[i].lag);
    }
    free(w->parts);
    w->parts = NULL;
    w->nparts = 0;
}

static void batch_clear(struct ks_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        json_decref(b->items[i].m.value);
        if (b->items[i].rkm)
            rd_kafka_message_destroy(b->items[i].rkm);
    }
    b->n = 0;
    b->nview = 0;
}

static int is_retry_topic(const struct ks_worker *w, const char *topic)
{
    const char *r = strstr(topic, ".retry.");
    if (!r)
        return 0;
    for (size_t i = 0; i < w->ndelays; i++)
        if (strcmp(r + 7, w->delay_names[i]) == 0)
            return 1;
    return 0;
}

/* --- PostgreSQL connection and positions ---------------------------------------------- */

static void pg_down(struct ks_worker *w, const struct ks_err *err)
{
    if (w->pg_up)
        ks_log(KS_LOG_WARN, "worker.pg.down", err ? err->msg : "postgresql unreachable",
               NULL);
    w->pg_up = 0;
    ks_metric_set(w->m_pg_up, 0);
}

/* Connects or reconnects *dbp and gives the session the worker's timeouts (a fresh
 * session, so nothing a handler may have SET survives). 1 when usable. */
static int pg_open(struct ks_worker *w, struct ks_db **dbp, struct ks_err *err)
{
    if (*dbp && ks_db_ok(*dbp))
        return 1;
    if (!*dbp)
        *dbp = ks_db_connect(w->dsn, err);
    else if (ks_db_reconnect(*dbp, err) != KS_OK)
        return 0;
    if (!*dbp)
        return 0;
    return ks_db_session(*dbp, w->stmt_ms, w->lock_ms, w->idle_tx_ms, err) == KS_OK;
}

static int pg_ensure(struct ks_worker *w)
{
    struct ks_err err = {0};

    if (w->db && ks_db_ok(w->db)) {
        return 1;
    }
    if (!pg_open(w, &w->db, &err)) {
        pg_down(w, &err);
        return 0;
    }
    w->pg_up = 1;
    ks_metric_set(w->m_pg_up, 1);
    return 1;
}

static void arrays_of_parts(struct ks_worker *w, struct ks_pgarr *t, struct ks_pgarr *p)
{
    for (size_t i = 0; i < w->nparts; i++) {
        ks_pgarr_text(t, w->parts[i].topic);
        ks_pgarr_int(p, w->parts[i].partition);
    }
}

/* Reads the positions of every assigned partition from kasir_offsets (creating missing
 * rows) and assigns them there. Returns 0 on success. */
static int sync_assignment(struct ks_worker *w)
{
    struct ks_pgarr t, p;
    const char *params[4];
    PGresult *res = NULL;
    struct ks_err err = {0};
    rd_kafka_topic_partition_list_t *l = NULL;
    int rc = -1;
    PGconn *pg;

    if (w->nparts == 0) {
        w->synced = 1;
        return 0;
    }
    if (!pg_ensure(w))
        return -1;
    pg = ks_db_conn(w->db);
    ks_pgarr_init(&t);
    ks_pgarr_init(&p);
    arrays_of_parts(w, &t, &p);
    params[0] = w->group;
    params[1] = ks_pgarr_str(&t);
    params[2] = ks_pgarr_str(&p);
    params[3] = w->instance;
    if (!params[1] || !params[2])
        goto out;
    res = PQexecParams(pg, SQL_OFFSETS_INIT, 3, NULL, params, NULL, NULL, 0);
    if (ks_db_check(w->db, res, PGRES_COMMAND_OK, "offsets init", &err) != KS_OK)
        goto out;
    PQclear(res);
    res = PQexecParams(pg, SQL_OFFSETS_READ, 4, NULL, params, NULL, NULL, 0);
    if (ks_db_check(w->db, res, PGRES_TUPLES_OK, "offsets read", &err) != KS_OK)
        goto out;
    for (int i = 0; i < PQntuples(res); i++) {
        struct part *pp = find_part(w, PQgetvalue(res, i, 0),
                                    (int32_t)strtol(PQgetvalue(res, i, 1), NULL, 10));
        if (pp) {
            pp->expected = strtoll(PQgetvalue(res, i, 2), NULL, 10);
            pp->epoch = strtoll(PQgetvalue(res, i, 3), NULL, 10);
        }
    }
    l = rd_kafka_topic_partition_list_new((int)w->nparts);
    for (size_t i = 0; i < w->nparts; i++) {
        struct part *pp = &w->parts[i];
        /* resume before assign: a pause issued after an assign can outdate its offset */
        release_held(w, pp);
        rd_kafka_topic_partition_list_add(l, pp->topic, pp->partition)->offset =
            pp->expected >= 0 ? pp->expected : RD_KAFKA_OFFSET_BEGINNING;
    }
    if (rd_kafka_assign(w->rk, l) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        ks_err_set(&err, KS_EKAFKA, 1, NULL, "could not assign partitions");
        goto out;
    }
    w->synced = 1;
    w->pg_up = 1;
    ks_metric_set(w->m_pg_up, 1);
    ks_log(KS_LOG_INFO, "worker.assigned", "partitions assigned at stored offsets",
           "group", w->group, NULL);
    rc = 0;
out:
    if (rc != 0) {
        if (err.retriable || !ks_db_ok(w->db))
            pg_down(w, &err);
        else
            ks_log(KS_LOG_ERROR, "worker.assign_failed", err.msg, NULL);
    }
    PQclear(res);
    if (l)
        rd_kafka_topic_partition_list_destroy(l);
    ks_pgarr_release(&t);
    ks_pgarr_release(&p);
    return rc;
}

/* Stops fetching until positions are read again: after an outage or a lost fence. */
static void unsync(struct ks_worker *w)
{
    for (size_t i = 0; i < w->nparts; i++)
        release_held(w, &w->parts[i]);
    rd_kafka_assign(w->rk, NULL);
    w->synced = 0;
    w->generation++;
}

/* A fatal consumer error (in 2.0.2: another process joined with our group.instance.id):
 * this instance no longer owns anything. Stop at once, commit nothing more, exit 3 so a
 * supervisor sees it; the fence protects what a zombie batch might still try. */
static void consumer_fatal(struct ks_worker *w, const char *why)
{
    char buf[256];
    if (w->fatal)
        return;
    if (w->rk && rd_kafka_fatal_error(w->rk, buf, sizeof(buf)) != RD_KAFKA_RESP_ERR_NO_ERROR)
        why = buf;
    w->fatal = 1;
    w->stop = 1;
    ks_metric_add(w->m_kafka_fatal, 1);
    ks_log(KS_LOG_ERROR, "worker.consumer.fatal", why, "group", w->group, "instance",
           w->instance, NULL);
}

static void on_consumer_error(rd_kafka_t *rk, int e, const char *reason, void *opaque)
{
    (void)rk;
    if (e == RD_KAFKA_RESP_ERR__FATAL)
        consumer_fatal(opaque, reason);
    else
        ks_log(KS_LOG_DEBUG, "worker.consumer.error", reason, NULL);
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                         rd_kafka_topic_partition_list_t *l, void *opaque)
{
    struct ks_worker *w = opaque;

    /* the batch whose tail is in flight commits (or not) before positions move */
    settle(w);
    w->generation++;
    if (e == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        clear_parts(w);
        w->parts = calloc((size_t)l->cnt + 1, sizeof(*w->parts));
        for (int i = 0; w->parts && i < l->cnt; i++) {
            struct part *p = &w->parts[w->nparts];
            if (!(p->topic = strdup(l->elems[i].topic)))
                break;
            p->partition = l->elems[i].partition;
            p->expected = -1;
            p->retry_topic = is_retry_topic(w, p->topic);
            w->nparts++;
        }
        ks_logf(KS_LOG_INFO, "worker.rebalance.assign", "%d partitions assigned", l->cnt);
        w->synced = 0;
        /* PostgreSQL down: nothing is assigned now; the loop assigns once it is back */
        if (sync_assignment(w) != 0)
            w->next_sync = 0;
    } else {
        ks_logf(KS_LOG_INFO, "worker.rebalance.revoke", "%d partitions revoked", l->cnt);
        /* outputs of committed batches reach Kafka before the next owner emits outputs of
         * later inputs: per key, outputs stay in input order across a hand-over */
        ks_outbox_flush(w->ob, 10000);
        for (size_t i = 0; i < w->nparts; i++)
            release_held(w, &w->parts[i]);
        rd_kafka_assign(rk, NULL);
        clear_parts(w);
        w->synced = 0;
    }
}

/* --- the batch ------------------------------------------------------------------------ */

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

const struct ks_config *ks_worker_config(const struct ks_worker *w)
{
    return w->cfg;
}

static void item_fail(struct item *it, const char *cls, const struct ks_err *err)
{
    it->state = ST_FAILED;
    it->err_class = cls;
    it->err = *err;
}

void ks_batch_fail(struct ks_batch *b, struct ks_msg *m, const struct ks_err *err)
{
    struct item *it = (struct item *)m;
    item_fail(it, err->retriable ? "retry" : err->code == KS_EINVAL ? "invalid" : "failed",
              err);
    it->by_handler = 1;
    ks_outbox_drop(b->w->ob, (long)(it - b->items));
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
 * emitted to. It runs while the previous batch commits (see process), so the handler
 * finds its ids ready; a handler that emits elsewhere just derives its own. */
static void derive_ids(struct ks_worker *w)
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
    rnd_hex(b->w, span, 8);
    ks_traceparent_format(m->trace_id, span, it->flags, tp);
    h = rd_kafka_headers_new(4);
    if (!h) {
        free(buf);
        return ks_err_set(err, KS_ENOMEM, 0, NULL, "out of memory");
    }
    rd_kafka_header_add(h, KS_H_MESSAGE_ID, -1, id, -1);
    rd_kafka_header_add(h, KS_H_PRODUCER, -1, b->w->spec->name, -1);
    rd_kafka_header_add(h, KS_H_CAUSE, -1, m->message_id, -1);
    rd_kafka_header_add(h, KS_H_TRACEPARENT, -1, tp, -1);
    return ks_outbox_add(b->w->ob, topic, key, key_len, buf, len, h, id, (long)(it - b->items),
                         err);
}

/* The input's id from its kasir.message_id header into out; 0 when it has none. An id is
 * stored as text and compared whole downstream, so a value longer than an id (cut, two
 * inputs would share one id and a reader's dedup drop an output) or with bytes that are
 * not printable ASCII (PostgreSQL refuses invalid UTF-8: the batch, its dead-letter copy
 * included, could never commit) is replaced by a hash of its bytes: distinct, storable,
 * and the same for every copy of that input. */
static int id_of_bytes(const void *val, size_t len, char out[KS_ID_LEN])
{
    const unsigned char *v = val;
    uint8_t sum[KS_SHA256_LEN];
    char hex[2 * KS_SHA256_LEN + 1];
    size_t i;

    for (i = 0; i < len && i < KS_ID_LEN - 1 && v[i] >= 0x20 && v[i] < 0x7f; i++)
        ;
    if (i == len) {
        memcpy(out, v, len);
        out[len] = '\0';
        return 1;
    }
    ks_sha256(v, len, sum);
    ks_hex_encode(sum, sizeof(sum), hex);
    ks_id_derive("msg", "header", out, hex, NULL);
    return 1;
}

static int header_id(const rd_kafka_message_t *r, char out[KS_ID_LEN])
{
    rd_kafka_headers_t *h = NULL;
    const void *val = NULL;
    size_t len = 0;

    if (rd_kafka_message_headers(r, &h) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        rd_kafka_header_get_last(h, KS_H_MESSAGE_ID, &val, &len) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        !val || len == 0)
        return 0;
    return id_of_bytes(val, len, out);
}

/* The runtime's headers on m are its own only on one of this worker's retry topics and
 * naming that retry topic's own main topic as the origin: a header set by anyone else
 * (a producer, a replay of a DLQ copy) must not move a message's attempt, due time or
 * origin. Copies the trusted origin topic into out. */
static int runtime_headers_trusted(const struct item *it, char *out, size_t len)
{
    const char *topic = rd_kafka_topic_name(it->rkm->rkt);
    const char *r = strstr(topic, ".retry.");
    char buf[256];

    if (!it->p->retry_topic || !r || (size_t)(r - topic) >= len)
        return 0;
    if (!header(it->rkm, KS_H_ORIGIN_TOPIC, buf, sizeof(buf)) ||
        strlen(buf) != (size_t)(r - topic) || memcmp(buf, topic, (size_t)(r - topic)) != 0)
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
        if (it->p->retry_topic)
            *strstr(it->origin_topic, ".retry.") = '\0';
        it->origin_partition = m->partition;
        it->origin_offset = m->offset;
        it->origin_ts = m->timestamp_ms;
    }
    m->origin_topic = it->origin_topic;
    had_id = header_id(r, m->message_id);
    if (!header(r, KS_H_TRACEPARENT, buf, sizeof(buf)) ||
        ks_traceparent_parse(buf, m->trace_id, span, it->flags) != 0) {
        rnd_hex(w, m->trace_id, 16);
        snprintf(it->flags, sizeof(it->flags), "01");
    }
    it->state = ST_LIVE;
    if (!r->payload) {
        ks_err_set(&err, KS_EPOISON, 0, NULL, "message has no value");
        item_fail(it, "poison", &err);
        goto no_id;
    }
    if (ks_serde_decode(r->payload, r->len, &writer, &m->value, &err) != KS_OK) {
        if (err.code != KS_EPOISON)
            err.code = KS_EPOISON;
        item_fail(it, "poison", &err);
        goto no_id;
    }
    m->schema = ks_schema_name(writer);
    if (!had_id) {
        /* every Kasir schema carries its message id in the payload too */
        /* by its whole length: a NUL inside must not cut two ids to one */
        const json_t *jid = json_object_get(m->value, "message_id");
        const char *mid = json_string_value(jid);
        size_t ml = mid ? json_string_length(jid) : 0;
        if (ml)
            had_id = id_of_bytes(mid, ml, m->message_id);
    }
    if (w->spec->validate && w->spec->validate(m, w->spec->ctx, &err) != KS_OK)
        item_fail(it, err.retriable ? "retry" : err.code == KS_EINVAL ? "invalid" : "failed",
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

static void hold(struct ks_worker *w, struct part *p, rd_kafka_message_t *r)
{
    if (p->nheld == p->capheld) {
        size_t nc = p->capheld ? p->capheld * 2 : 64;
        rd_kafka_message_t **nh = realloc(p->held, nc * sizeof(*nh));
        if (!nh) {
            /* cannot hold it: drop it and re-read everything from PostgreSQL */
            rd_kafka_message_destroy(r);
            unsync(w);
            return;
        }
        p->held = nh;
        p->capheld = nc;
    }
    p->held[p->nheld++] = r;
    if (!p->paused) {
        /* stop fetching this partition until the head is due; what is held is kept */
        set_paused(w, p, 1);
        ks_logf(KS_LOG_DEBUG, "worker.retry.hold", "%s [%d] paused until %" PRId64, p->topic,
                (int)p->partition, p->due_ms);
    }
}

static int batch_add(struct ks_batch *b, rd_kafka_message_t *r, struct part *p)
{
    struct item *it;
    if (b->n == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 256;
        struct item *ni = realloc(b->items, nc * sizeof(*ni));
        struct ks_msg **nv = realloc(b->view, nc * sizeof(*nv));
        if (ni)
            b->items = ni;
        if (nv)
            b->view = nv;
        if (!ni || !nv)
            return -1;
        b->cap = nc;
    }
    it = &b->items[b->n++];
    memset(it, 0, sizeof(*it));
    it->rkm = r;
    it->p = p;
    it->id_for = -1;
    return 0;
}

/* Fills the batch: due held messages first, then the consumer, up to batch.max messages
 * or batch.wait after the first. */
static void collect(struct ks_worker *w)
{
    struct ks_batch *b = &w->batch;
    int gen = w->generation;
    int64_t deadline = 0, now = now_ms();

    for (size_t i = 0; i < w->nparts; i++) {
        struct part *p = &w->parts[i];
        if (p->nheld && p->due_ms <= now) {
            size_t k, n = p->nheld;
            for (k = 0; k < n && b->n < (size_t)w->batch_max && batch_add(b, p->held[k], p) == 0;
                 k++)
                ;
            memmove(p->held, p->held + k, (n - k) * sizeof(*p->held));
            p->nheld = n - k;
            if (p->nheld == 0 && p->paused)
                set_paused(w, p, 0);
        }
    }
    if (b->n)
        deadline = mono_us() / 1000 + w->batch_wait_ms;
    while (b->n < (size_t)w->batch_max && !w->stop) {
        int timeout = b->n ? (int)(deadline - mono_us() / 1000) : 100;
        rd_kafka_message_t *r;
        struct part *p;

        if (timeout < 0)
            timeout = 0;
        r = rd_kafka_consumer_poll(w->rk, timeout);
        if (w->generation != gen) {
            /* a rebalance ran inside poll: what we hold may belong to someone else now */
            batch_clear(b);
            gen = w->generation;
        }
        if (!r) {
            if (b->n == 0 || mono_us() / 1000 >= deadline)
                break;
            continue;
        }
        if (r->err == RD_KAFKA_RESP_ERR__FATAL) {
            consumer_fatal(w, rd_kafka_message_errstr(r));
            rd_kafka_message_destroy(r);
            batch_clear(b);
            return;
        }
        if (r->err) {
            if (r->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                ks_log(KS_LOG_WARN, "worker.consumer.error", rd_kafka_message_errstr(r),
                       "topic", r->rkt ? rd_kafka_topic_name(r->rkt) : NULL, NULL);
            rd_kafka_message_destroy(r);
            continue;
        }
        p = w->synced ? find_part(w, rd_kafka_topic_name(r->rkt), r->partition) : NULL;
        if (!p || (p->expected >= 0 && r->offset < p->expected)) {
            rd_kafka_message_destroy(r);
            continue;
        }
        if (p->nheld) {
            hold(w, p, r);
            continue;
        }
        if (batch_add(b, r, p) != 0) {
            rd_kafka_message_destroy(r);
            unsync(w);
            batch_clear(b);
            return;
        }
        if (b->n == 1)
            deadline = mono_us() / 1000 + w->batch_wait_ms;
    }
}

/* Decodes, validates and holds what is not due; the batch keeps items in arrival order
 * with held ones removed. */
static void prepare(struct ks_worker *w)
{
    struct ks_batch *b = &w->batch;
    int64_t now = now_ms();
    int gen = w->generation;
    size_t o = 0;

    for (size_t i = 0; i < b->n; i++) {
        struct item *it = &b->items[i];
        if (it->p->nheld || item_prepare(w, it, now)) {
            json_decref(it->m.value);
            hold(w, it->p, it->rkm);
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
        /* hold() could not keep a message (no memory) and dropped it: the ones after it
         * in its partition must not commit past it; positions are read again anyway */
        batch_clear(b);
        return;
    }
    ks_metric_add(w->m_msgs, (int64_t)o);
}

static void build_view(struct ks_batch *b)
{
    b->nview = 0;
    for (size_t i = 0; i < b->n; i++)
        if (b->items[i].state == ST_LIVE)
            b->view[b->nview++] = &b->items[i].m;
}

static enum ks_code failure_to_outbox(struct ks_worker *w, struct item *it, int64_t now,
                                      struct ks_err *err)
{
    struct ks_failure f = {0};
    char topic[300], tp[56], span[17];
    int retry = it->err.retriable && w->ndelays > 0 && it->m.attempt < w->max_attempts;
    rd_kafka_headers_t *src = NULL, *h;
    void *val = NULL;
    size_t len = it->rkm->len;

    rnd_hex(w, span, 8);
    ks_traceparent_format(it->m.trace_id, span, it->flags, tp);
    f.message_id = it->m.message_id;
    f.traceparent = tp;
    f.origin_topic = it->origin_topic;
    f.origin_partition = it->origin_partition;
    f.origin_offset = it->origin_offset;
    f.origin_timestamp_ms = it->origin_ts;
    f.group = w->group;
    f.instance = w->instance;
    f.err = &it->err;
    f.attempt = it->m.attempt;
    f.first_failure_ms = it->first_failure_ms > 0 ? it->first_failure_ms : now;
    f.now_ms = now;
    f.not_before_ms = -1;
    if (retry) {
        size_t idx;
        int64_t d = ks_retry_backoff(w->delays, w->ndelays, it->m.attempt, w->jitter_pct,
                                     (uint32_t)rnd64(w), &idx);
        f.error_class = "retry";
        f.attempt = it->m.attempt + 1; /* the attempt the copy will be */
        f.not_before_ms = now + d;
        snprintf(topic, sizeof(topic), "%s.retry.%s", it->origin_topic, w->delay_names[idx]);
        ks_metric_add(w->m_retries, 1);
    } else {
        f.error_class = it->err.retriable ? "exhausted" : it->err_class;
        snprintf(topic, sizeof(topic), "%s.dlq", it->origin_topic);
        ks_metric_add(w->m_dlq, 1);
    }
    ks_log(retry ? KS_LOG_INFO : KS_LOG_WARN, retry ? "worker.message.retry" : "worker.message.dlq",
           it->err.msg, "topic", it->m.topic, "to", topic, "class", f.error_class, "code",
           ks_code_name(it->err.code), "message_id", it->m.message_id, "trace_id",
           it->m.trace_id, NULL);
    rd_kafka_message_headers(it->rkm, &src);
    if (!(h = ks_failure_headers(src, &f)))
        return ks_err_set(err, KS_ENOMEM, 0, NULL, "out of memory");
    if (it->rkm->payload) {
        if (!(val = malloc(len ? len : 1))) {
            rd_kafka_headers_destroy(h);
            return ks_err_set(err, KS_ENOMEM, 0, NULL, "out of memory");
        }
        memcpy(val, it->rkm->payload, len);
    }
    return ks_outbox_add(w->ob, topic, it->rkm->key, it->rkm->key_len, val, val ? len : 0, h,
                         it->m.message_id, -1, err);
}

/* Claims were taken for some messages the handler was given (dedup, retry copies). One
 * the handler then failed was not processed: its claim goes, or its retry copy (same
 * message id) would be skipped as a duplicate and the input never applied (a replay from
 * the DLQ likewise). */
static enum ks_code unclaim_failed(struct ks_worker *w, struct ks_err *err)
{
    struct ks_batch *b = &w->batch;
    struct ks_pgarr ids;
    const char *params[2];
    PGresult *res = NULL;
    enum ks_code rc = KS_OK;

    ks_pgarr_init(&ids);
    for (size_t i = 0; i < b->n; i++)
        if (b->items[i].state == ST_FAILED && b->items[i].by_handler && b->items[i].claimed)
            ks_pgarr_text(&ids, b->items[i].m.message_id);
    if (ids.n == 0)
        goto out;
    params[0] = w->group;
    if (!(params[1] = ks_pgarr_str(&ids))) {
        rc = ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
        goto out;
    }
    res = PQexecParams(ks_db_conn(w->db), SQL_UNCLAIM, 2, NULL, params, NULL, NULL, 0);
    rc = ks_db_check(w->db, res, PGRES_COMMAND_OK, "dedup unclaim", err);
out:
    PQclear(res);
    ks_pgarr_release(&ids);
    return rc;
}

/* Claims the message ids of the view's inputs that need it: all with spec.dedup, else
 * those read from a retry topic (the relay may have written a retry copy twice). Inputs
 * claimed before are skipped. */
static enum ks_code claim_inputs(struct ks_worker *w, struct ks_err *err)
{
    struct ks_batch *b = &w->batch;
    const char **ids = NULL;
    struct item **its = NULL;
    unsigned char *fresh = NULL;
    size_t n = 0;
    enum ks_code rc = KS_OK;

    for (size_t i = 0; i < b->nview; i++)
        n += w->spec->dedup || ((struct item *)b->view[i])->p->retry_topic;
    if (n == 0)
        return KS_OK;
    ids = malloc(n * sizeof(*ids));
    its = malloc(n * sizeof(*its));
    fresh = malloc(n);
    if (!ids || !its || !fresh) {
        rc = ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
        goto out;
    }
    n = 0;
    for (size_t i = 0; i < b->nview; i++) {
        struct item *it = (struct item *)b->view[i];
        if (w->spec->dedup || it->p->retry_topic) {
            its[n] = it;
            ids[n++] = it->m.message_id;
        }
    }
    if ((rc = ks_dedup_claim(ks_db_conn(w->db), w->group, ids, n, fresh, err)) != KS_OK)
        goto out;
    for (size_t i = 0; i < n; i++) {
        its[i]->claimed = fresh[i];
        if (!fresh[i]) {
            its[i]->state = ST_SKIP;
            ks_metric_add(w->m_skipped, 1);
        }
    }
    build_view(b);
out:
    free(ids);
    free(its);
    free(fresh);
    return rc;
}

/* exec a parameterless statement on the worker's connection */
static enum ks_code pg_exec(struct ks_worker *w, const char *sql, struct ks_err *err)
{
    return ks_db_exec(w->db, sql, err);
}

/* A handler ended the runtime's transaction (COMMIT or ROLLBACK in it): its effects may
 * have committed without the positions. Loud, and never retried quietly. */
static enum ks_code handler_bug(struct ks_worker *w, struct ks_err *err)
{
    w->bug = 1;
    ks_log(KS_LOG_ERROR, "worker.handler.bug",
           "the handler ended the runtime's transaction (COMMIT or ROLLBACK inside a "
           "handler): effects and offsets may have split; fix the handler",
           "group", w->group, NULL);
    return ks_err_set(err, KS_EDB, 0, NULL, "handler ended the transaction");
}

enum ks_code ks_batch_run_msg(struct ks_batch *b, struct ks_msg *m, PGconn *pg, ks_msg_fn fn,
                              void *ctx, struct ks_err *err)
{
    struct ks_worker *w = b->w;
    struct ks_err e1 = {0};
    enum ks_code rc;
    PGTransactionStatusType ts;

    if ((rc = pg_exec(w, "SAVEPOINT ks_msg", err)) != KS_OK)
        return rc;
    rc = fn(b, m, pg, ctx, &e1);
    ts = PQtransactionStatus(pg);
    if (!ks_db_ok(w->db) || ts == PQTRANS_UNKNOWN) {
        if (rc == KS_OK)
            ks_err_set(&e1, KS_EDB, 1, NULL, "postgresql connection lost");
        *err = e1;
        err->retriable = 1;
        return KS_EDB;
    }
    if (ts == PQTRANS_IDLE)
        return handler_bug(w, err);
    if (rc == KS_OK && ts == PQTRANS_INTRANS) {
        /* isolating: a deferred check (a balance rule) fires now, as this message's */
        if (ks_db_exec(w->db, w->isolating ? "SET CONSTRAINTS ALL IMMEDIATE; "
                                             "RELEASE SAVEPOINT ks_msg"
                                           : "RELEASE SAVEPOINT ks_msg",
                       &e1) == KS_OK)
            return KS_OK;
        if (!ks_db_ok(w->db)) {
            *err = e1;
            return e1.code;
        }
        rc = e1.code;
    }
    if (rc == KS_OK)
        ks_err_set(&e1, KS_EDB, 0, NULL, "handler left the transaction failed");
    if ((rc = pg_exec(w, "ROLLBACK TO SAVEPOINT ks_msg; RELEASE SAVEPOINT ks_msg", err)) != KS_OK)
        return rc;
    ks_batch_fail(b, m, &e1);
    return KS_OK;
}

/* Runs the handler over the current view. */
static enum ks_code run_handler(struct ks_worker *w, struct ks_err *err)
{
    struct ks_batch *b = &w->batch;
    PGconn *pg = ks_db_conn(w->db);
    enum ks_code rc;

    if (b->nview == 0)
        return KS_OK;
    if (w->spec->handle_batch)
        return w->spec->handle_batch(b, pg, w->spec->ctx, err);
    for (size_t i = 0; i < b->nview; i++)
        if ((rc = ks_batch_run_msg(b, b->view[i], pg, w->spec->handle_msg, w->spec->ctx,
                                   err)) != KS_OK)
            return rc;
    return KS_OK;
}

/* the batch handler over a view of one message, as a ks_msg_fn */
static enum ks_code batch_of_one(struct ks_batch *b, struct ks_msg *m, PGconn *pg, void *ctx,
                                 struct ks_err *err)
{
    (void)m;
    (void)ctx;
    return b->w->spec->handle_batch(b, pg, b->w->spec->ctx, err);
}

/* The isolated pass: one savepoint per message, so the culprit fails alone (its own error
 * and retriable flag) and the others commit. */
static enum ks_code run_isolated(struct ks_worker *w, struct ks_err *err)
{
    struct ks_batch *b = &w->batch;
    struct ks_msg **all = NULL;
    size_t n = b->nview;
    enum ks_code rc = KS_OK;

    if (n == 0)
        return KS_OK;
    if (!(all = malloc(n * sizeof(*all))))
        return ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
    memcpy(all, b->view, n * sizeof(*all));
    for (size_t i = 0; i < n && rc == KS_OK; i++) {
        struct item *it = (struct item *)all[i];
        if (it->state != ST_LIVE)
            continue;
        b->view[0] = all[i];
        b->nview = 1;
        rc = ks_batch_run_msg(b, all[i], ks_db_conn(w->db),
                              w->spec->handle_batch ? batch_of_one : w->spec->handle_msg,
                              w->spec->ctx, err);
    }
    memcpy(b->view, all, n * sizeof(*all));
    b->nview = n;
    free(all);
    return rc;
}

/* Computes per-partition ends of the batch and the statements that end its transaction:
 * the fenced offsets update and COMMIT, as text (they follow the outbox COPY in one query
 * string, which takes no parameters; every value is a quoted literal or a number).
 * NULL on no memory. */
static char *tail_sql(struct ks_worker *w)
{
    struct ks_batch *b = &w->batch;
    PGconn *pg = ks_db_conn(w->db);
    struct ks_pgarr t, p, n, e;
    char *q = NULL, *lit[6] = {NULL};
    size_t len, nparts = 0;
    int ok = 0;

    for (size_t i = 0; i < w->nparts; i++)
        w->parts[i].batch_next = -1;
    for (size_t i = 0; i < b->n; i++) {
        struct part *pp = b->items[i].p;
        if (b->items[i].m.offset + 1 > pp->batch_next)
            pp->batch_next = b->items[i].m.offset + 1;
    }
    ks_pgarr_init(&t);
    ks_pgarr_init(&p);
    ks_pgarr_init(&n);
    ks_pgarr_init(&e);
    for (size_t i = 0; i < w->nparts; i++) {
        struct part *pp = &w->parts[i];
        if (pp->batch_next < 0)
            continue;
        ks_pgarr_text(&t, pp->topic);
        ks_pgarr_int(&p, pp->partition);
        ks_pgarr_int(&n, pp->batch_next);
        ks_pgarr_int(&e, pp->expected);
        nparts++;
    }
    if (!ks_pgarr_str(&t) || !ks_pgarr_str(&p) || !ks_pgarr_str(&n) || !ks_pgarr_str(&e))
        goto out;
    if (nparts == 0) {
        ok = (q = strdup("COMMIT")) != NULL;
        goto out;
    }
    lit[0] = PQescapeLiteral(pg, w->group, strlen(w->group));
    lit[1] = PQescapeLiteral(pg, t.buf, strlen(t.buf));
    lit[2] = PQescapeLiteral(pg, p.buf, strlen(p.buf));
    lit[3] = PQescapeLiteral(pg, n.buf, strlen(n.buf));
    lit[4] = PQescapeLiteral(pg, e.buf, strlen(e.buf));
    lit[5] = PQescapeLiteral(pg, w->instance, strlen(w->instance));
    len = 128;
    for (int i = 0; i < 6; i++) {
        if (!lit[i])
            goto out;
        len += strlen(lit[i]);
    }
    if (!(q = malloc(len)))
        goto out;
    snprintf(q, len,
             "SELECT kasir_offsets_advance(%s, %s::text[], %s::int[], %s::bigint[], "
             "%s::bigint[], %s); COMMIT",
             lit[0], lit[1], lit[2], lit[3], lit[4], lit[5]);
    ok = 1;
out:
    ks_pgarr_release(&t);
    ks_pgarr_release(&p);
    ks_pgarr_release(&n);
    ks_pgarr_release(&e);
    for (int i = 0; i < 6; i++)
        PQfreemem(lit[i]);
    if (!ok) {
        free(q);
        return NULL;
    }
    return q;
}

static void kafka_commit(struct ks_worker *w)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)w->nparts);
    for (size_t i = 0; i < w->nparts; i++)
        if (w->parts[i].batch_next >= 0)
            rd_kafka_topic_partition_list_add(l, w->parts[i].topic, w->parts[i].partition)
                ->offset = w->parts[i].batch_next;
    if (l->cnt)
        rd_kafka_commit(w->rk, l, 1); /* async; only for lag tools, PostgreSQL is the truth */
    rd_kafka_topic_partition_list_destroy(l);
}

enum outcome { OUT_DONE, OUT_INFRA, OUT_FENCED, OUT_RETRY_ISOLATED, OUT_PENDING, OUT_FAILED };

/* A batch failed while PostgreSQL answers: log, count the streak of identical failures
 * (/healthz turns red at worker.health.max_failures) and return the backoff before the
 * batch is read again: 100 ms doubling per failure in a row, capped. */
static int64_t batch_failed(struct ks_worker *w, const struct ks_err *err)
{
    int64_t backoff = 100;

    if (w->fail_streak > 0 && strncmp(w->fail_msg, err->msg, sizeof(w->fail_msg) - 1) == 0)
        w->fail_streak++;
    else {
        w->fail_streak = 1;
        snprintf(w->fail_msg, sizeof(w->fail_msg), "%s", err->msg);
    }
    for (int i = 1; i < w->fail_streak && backoff < w->backoff_max_ms; i++)
        backoff *= 2;
    if (backoff > w->backoff_max_ms)
        backoff = w->backoff_max_ms;
    ks_metric_add(w->m_failed_batches, 1);
    ks_logf(KS_LOG_ERROR, "worker.batch.failed", "batch failed %d time(s) in a row, next try in %"
            PRId64 " ms: %s", w->fail_streak, backoff, err->msg);
    return backoff;
}

/* What a failed transaction means, decided once: fenced, infrastructure (the connection
 * is gone), contention on a healthy server (a transient SQLSTATE: re-run the batch later),
 * or something a message did (isolate it). */
static enum outcome classify(struct ks_worker *w, const struct ks_err *err, const char *state,
                             int isolated)
{
    if ((state && strcmp(state, FENCE_SQLSTATE) == 0) || w->journal_fenced) {
        ks_metric_add(w->m_fenced, 1);
        ks_log(KS_LOG_WARN, "worker.fenced", err->msg, "group", w->group, NULL);
        return OUT_FENCED;
    }
    if (!ks_db_ok(w->db)) {
        ks_metric_add(w->m_infra, 1);
        pg_down(w, err);
        return OUT_INFRA;
    }
    if (ks_db_transient(state) || w->bug || isolated)
        return OUT_FAILED;
    return OUT_RETRY_ISOLATED;
}

/* One transaction for the batch; isolated = 1 for the savepoint pass. */
static enum outcome transact(struct ks_worker *w, int isolated)
{
    struct ks_batch *b = &w->batch;
    struct ks_err err = {0};
    enum ks_code rc;
    enum outcome oc;
    char state[6] = "";
    int64_t now;

    int64_t t_begin = mono_us(), t_handler, t_outbox;
    char *sql;

    w->isolating = isolated;
    w->bug = 0;
    w->journal_fenced = 0;
    for (size_t i = 0; i < b->n; i++) {
        b->items[i].nemit = 0; /* the cached id stays valid: it depends on nemit */
        b->items[i].claimed = 0;
    }
    if ((rc = pg_exec(w, "BEGIN", &err)) != KS_OK)
        goto rollback;
    if ((rc = claim_inputs(w, &err)) != KS_OK)
        goto rollback;
    t_handler = mono_us();
    rc = isolated ? run_isolated(w, &err) : run_handler(w, &err);
    if (rc == KS_OK && ks_db_ok(w->db) &&
        PQtransactionStatus(ks_db_conn(w->db)) == PQTRANS_IDLE)
        rc = handler_bug(w, &err);
    if (rc != KS_OK || PQtransactionStatus(ks_db_conn(w->db)) != PQTRANS_INTRANS) {
        if (rc == KS_OK)
            ks_err_set(&err, KS_EDB, 0, NULL, "handler left the transaction failed");
        goto rollback;
    }
    if ((rc = unclaim_failed(w, &err)) != KS_OK)
        goto rollback;
    now = now_ms();
    for (size_t i = 0; i < b->n; i++)
        if (b->items[i].state == ST_FAILED) {
            ks_outbox_drop(w->ob, (long)i);
            if ((rc = failure_to_outbox(w, &b->items[i], now, &err)) != KS_OK)
                goto rollback;
        }
    t_outbox = mono_us();
    /* the end of the batch goes as one query string (COPY, delete of delivered rows,
     * fence, COMMIT) and its results are read by settle(), after the next batch has been
     * collected and decoded: the client's work overlaps the server's */
    if (!(sql = tail_sql(w))) {
        rc = ks_err_set(&err, KS_ENOMEM, 1, NULL, "out of memory");
        goto rollback;
    }
    rc = ks_outbox_commit_send(w->ob, ks_db_conn(w->db), sql, &err);
    free(sql);
    if (rc != KS_OK) {
        PGresult *res;
        while ((res = PQgetResult(ks_db_conn(w->db))) != NULL)
            PQclear(res);
        goto rollback;
    }
    w->tail = 1;
    w->tail_isolated = isolated;
    w->tail_sent = mono_us();
    if (w->debug) {
        char f[200];
        snprintf(f, sizeof(f),
                 "n=%zu begin=%" PRId64 " handler=%" PRId64 " tail_send=%" PRId64 " us", b->n,
                 t_handler - t_begin, t_outbox - t_handler, w->tail_sent - t_outbox);
        ks_log(KS_LOG_DEBUG, "worker.batch.sent", f, NULL);
    }
    return OUT_PENDING;

rollback:
    if (ks_db_ok(w->db) && PQtransactionStatus(ks_db_conn(w->db)) != PQTRANS_IDLE) {
        struct ks_err e2 = {0};
        if (pg_exec(w, "ROLLBACK", &e2) != KS_OK)
            ks_log(KS_LOG_WARN, "worker.rollback_failed", e2.msg, NULL);
    }
    ks_outbox_discard(w->ob);
    ks_outbox_mark_done(w->ob, 0);
    oc = classify(w, &err, ks_db_err_sqlstate(&err, state), isolated);
    if (oc == OUT_RETRY_ISOLATED) {
        ks_log(KS_LOG_WARN, "worker.batch.isolate", err.msg, NULL);
        for (size_t i = 0; i < b->n; i++)
            if (b->items[i].state == ST_FAILED && b->items[i].by_handler) {
                b->items[i].state = ST_LIVE; /* decided by the handler: it decides again */
                b->items[i].by_handler = 0;
            }
        build_view(b);
    } else if (oc == OUT_FAILED) {
        w->failed_backoff = batch_failed(w, &err);
    }
    return oc;
}

/* Reads the results of the batch's tail: committed, fenced or failed. */
static enum outcome tail_finish(struct ks_worker *w)
{
    PGconn *pg = ks_db_conn(w->db);
    PGresult *res;
    struct ks_err err = {0};
    char state[6] = "";
    int failed = 0;
    enum outcome oc;

    w->tail = 0;
    while ((res = PQgetResult(pg)) != NULL) {
        ExecStatusType st = PQresultStatus(res);
        if (!failed && st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
            const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
            failed = 1;
            snprintf(state, sizeof(state), "%s", code ? code : "");
            if (ks_db_check(w->db, res, PGRES_COMMAND_OK, "batch commit", &err) == KS_OK)
                ks_err_set(&err, KS_EDB, 0, NULL, "batch commit failed");
        }
        PQclear(res);
    }
    if (!failed && PQtransactionStatus(pg) == PQTRANS_IDLE) {
        int64_t t_done = mono_us();
        ks_outbox_mark_done(w->ob, 1);
        ks_outbox_relay(w->ob);
        if (w->debug)
            ks_logf(KS_LOG_DEBUG, "worker.batch.committed", "tail=%" PRId64 " relay=%" PRId64
                    " us", t_done - w->tail_sent, mono_us() - t_done);
        for (size_t i = 0; i < w->nparts; i++)
            if (w->parts[i].batch_next >= 0)
                w->parts[i].expected = w->parts[i].batch_next;
        kafka_commit(w);
        w->fail_streak = 0;
        ks_metric_add(w->m_batches, 1);
        ks_metric_observe(w->m_lat, mono_us() - w->tail_t0);
        return OUT_DONE;
    }
    if (!failed) /* connection lost without a result: the outcome is unknown */
        ks_err_set(&err, KS_EDB, 1, NULL, "connection lost during commit");
    if (ks_db_ok(w->db) && PQtransactionStatus(pg) != PQTRANS_IDLE) {
        struct ks_err e2 = {0};
        if (pg_exec(w, "ROLLBACK", &e2) != KS_OK)
            ks_log(KS_LOG_WARN, "worker.rollback_failed", e2.msg, NULL);
    }
    ks_outbox_discard(w->ob);
    ks_outbox_mark_done(w->ob, 0);
    /* the handler's work went through and the end failed on a healthy server: a deferred
     * constraint at COMMIT, most likely one message's. The batch is read again and run
     * one message at a time (SET CONSTRAINTS ALL IMMEDIATE per message). */
    w->bug = 0;
    oc = classify(w, &err, state, w->tail_isolated);
    if (oc == OUT_RETRY_ISOLATED) {
        ks_log(KS_LOG_WARN, "worker.batch.isolate", err.msg, NULL);
        w->isolate_next = 1;
    } else if (oc == OUT_FAILED) {
        w->failed_backoff = batch_failed(w, &err);
    }
    return oc;
}

/* After a batch that did not commit: positions come back from PostgreSQL and the batch
 * (and whatever was read after it) will be read again, after delay_ms. */
static void drop_and_resync(struct ks_worker *w, int64_t delay_ms)
{
    unsync(w);
    batch_clear(&w->batch);
    w->ready = 0;
    w->next_sync = delay_ms > 0 ? now_ms() + delay_ms : 0;
    w->sync_backoff = 100;
}

static void after_failure(struct ks_worker *w, enum outcome oc)
{
    drop_and_resync(w, oc == OUT_FAILED ? w->failed_backoff : 0);
}

/* Waits for the tail in flight, if any, and applies its outcome. */
static void settle(struct ks_worker *w)
{
    enum outcome oc;
    if (w->tail && (oc = tail_finish(w)) != OUT_DONE)
        after_failure(w, oc);
}

/* Runs the collected batch: decode, transaction, and - while its tail runs on the
 * server - clears it and collects and decodes the next one. */
static void process(struct ks_worker *w)
{
    struct ks_batch *b = &w->batch;
    enum outcome oc;
    int isolate = w->isolate_next;

    w->isolate_next = 0;
    w->tail_t0 = mono_us();
    build_view(b);
    oc = transact(w, isolate);
    if (oc == OUT_RETRY_ISOLATED)
        oc = transact(w, 1);
    batch_clear(b);
    if (oc != OUT_PENDING) {
        after_failure(w, oc);
        return;
    }
    if (!w->stop) {
        int64_t t0 = mono_us(), t1, t2;
        collect(w);
        t1 = mono_us();
        prepare(w);
        derive_ids(w);
        ks_outbox_poll(w->ob, 0); /* delivery reports of earlier batches */
        t2 = mono_us();
        w->ready = 1;
        settle(w);
        if (w->debug)
            ks_logf(KS_LOG_DEBUG, "worker.overlap",
                    "clear=%" PRId64 " collect=%" PRId64 " prepare=%" PRId64
                    " tail_wait=%" PRId64 " us",
                    t0 - w->tail_sent, t1 - t0, t2 - t1, mono_us() - t2);
        return;
    }
    settle(w);
}

/* --- effects before an external call ---------------------------------------------------- */

static enum ks_code owned_check(struct ks_worker *w, const struct ks_msg *m, const char *sql,
                                struct ks_err *err)
{
    const struct item *it = (const struct item *)m;
    char part[16], epoch[24];
    const char *params[4] = {w->group, it->p->topic, part, epoch};
    PGresult *res;
    enum ks_code rc;

    snprintf(part, sizeof(part), "%d", (int)it->p->partition);
    snprintf(epoch, sizeof(epoch), "%" PRId64, it->p->epoch);
    res = PQexecParams(ks_db_conn(w->jdb), sql, 4, NULL, params, NULL, NULL, 0);
    rc = ks_db_check(w->jdb, res, PGRES_TUPLES_OK, "ownership check", err);
    if (rc == KS_OK && PQntuples(res) != 1) {
        /* the batch in hand is a zombie's: the runtime drops it like a fenced commit */
        w->journal_fenced = 1;
        rc = ks_err_set(err, KS_ECONFLICT, 0, NULL,
                        "fenced: %s [%d] is owned by another instance now", it->p->topic,
                        (int)it->p->partition);
    }
    PQclear(res);
    return rc;
}

enum ks_code ks_batch_owned(struct ks_batch *b, const struct ks_msg *m, struct ks_err *err)
{
    struct ks_worker *w = b->w;
    if (!pg_open(w, &w->jdb, err))
        return ks_err_set(err, KS_EDB, 1, NULL, "could not reach postgresql: %s", err->msg);
    return owned_check(w, m, SQL_OWNED, err);
}

enum ks_code ks_batch_journal(struct ks_batch *b, const struct ks_msg *m, const char *sql,
                              int nparams, const char *const *params, struct ks_err *err)
{
    struct ks_worker *w = b->w;
    PGresult *res = NULL;
    enum ks_code rc;

    if (!pg_open(w, &w->jdb, err))
        return ks_err_set(err, KS_EDB, 1, NULL, "could not reach postgresql: %s", err->msg);
    if ((rc = ks_db_exec(w->jdb, "BEGIN", err)) != KS_OK)
        return rc;
    if ((rc = owned_check(w, m, SQL_OWNED_LOCK, err)) != KS_OK)
        goto out;
    res = PQexecParams(ks_db_conn(w->jdb), sql, nparams, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        rc = ks_db_check(w->jdb, res, PGRES_COMMAND_OK, "journal", err);
    PQclear(res);
    if (rc == KS_OK)
        rc = ks_db_exec(w->jdb, "COMMIT", err);
out:
    if (rc != KS_OK && ks_db_ok(w->jdb) &&
        PQtransactionStatus(ks_db_conn(w->jdb)) != PQTRANS_IDLE) {
        struct ks_err e2 = {0};
        if (ks_db_exec(w->jdb, "ROLLBACK", &e2) != KS_OK)
            ks_log(KS_LOG_WARN, "worker.rollback_failed", e2.msg, NULL);
    }
    return rc;
}

/* --- housekeeping: sweep, purge, lag, marks --------------------------------------------- */

static void housekeeping(struct ks_worker *w, int idle)
{
    int64_t now = now_ms();
    struct ks_err err = {0};
    uint64_t d, f;

    ks_outbox_poll(w->ob, 0);
    ks_outbox_stats(w->ob, &d, &f);
    ks_metric_add(w->m_relayed, (int64_t)(d - w->last_delivered));
    ks_metric_add(w->m_relay_failed, (int64_t)(f - w->last_failed));
    w->last_delivered = d;
    w->last_failed = f;
    ks_metric_set(w->m_parked, (int64_t)ks_outbox_parked(w->ob));
    if (ks_outbox_fatal(w->ob)) {
        /* the rows are in PostgreSQL and their ids are stable: a new producer and a sweep
         * of everything unsent deliver them (readers dedup what the old one had sent) */
        ks_metric_add(w->m_kafka_fatal, 1);
        if (ks_outbox_recreate(w->ob, &err) != KS_OK)
            ks_log(KS_LOG_ERROR, "worker.producer.recreate_failed", err.msg, NULL);
        else {
            ks_log(KS_LOG_WARN, "worker.producer.recreated",
                   "producer replaced after a fatal error; unsent outbox rows relayed again",
                   NULL);
            w->next_sweep = 0;
            w->sweep_all = 1;
        }
    }
    if (!w->pg_up && !pg_ensure(w))
        return;
    if (idle && ks_outbox_delivered(w->ob) > 0) {
        if (ks_outbox_mark_write(w->ob, ks_db_conn(w->db), &err) == KS_OK)
            ks_outbox_mark_done(w->ob, 1);
        else
            ks_outbox_mark_done(w->ob, 0);
    }
    if (now >= w->next_sweep) {
        int n = 0;
        /* rows younger than min_age may still be in flight from this process */
        if (ks_outbox_sweep(w->ob, ks_db_conn(w->db), w->sweep_all ? 0 : w->min_age_ms, 10000,
                            &n, &err) == KS_OK) {
            if (n)
                ks_logf(KS_LOG_INFO, "worker.outbox.swept", "%d unsent outbox rows relayed", n);
            w->sweep_all = 0;
        }
        w->next_sweep = now + w->sweep_ms;
    }
    if (now >= w->next_purge && idle) {
        /* kept worker.dedup.retention: long enough for a DLQ replay weeks later to be
         * recognised as a duplicate */
        char keep[24];
        const char *params[2] = {w->group, keep};
        PGresult *res;
        snprintf(keep, sizeof(keep), "%" PRId64, w->dedup_keep_ms);
        res = PQexecParams(ks_db_conn(w->db), SQL_PURGE, 2, NULL, params, NULL, NULL, 0);
        if (ks_db_check(w->db, res, PGRES_COMMAND_OK, "dedup purge", &err) != KS_OK)
            ks_log(KS_LOG_WARN, "worker.dedup.purge_failed", err.msg, NULL);
        /* a full slice: more to do soon; else an hour */
        w->next_purge = now + (strcmp(PQcmdTuples(res), "10000") == 0 ? 1000 : 3600000);
        PQclear(res);
    }
    if (now >= w->next_lag) {
        for (size_t i = 0; i < w->nparts; i++) {
            struct part *p = &w->parts[i];
            int64_t lo = 0, hi = 0;
            if (!p->lag) {
                char labels[400];
                snprintf(labels, sizeof(labels), "topic=\"%s\",partition=\"%d\"", p->topic,
                         (int)p->partition);
                p->lag = ks_metrics_gauge(w->metrics, "kasir_worker_consumer_lag",
                                          "messages behind the partition's end", labels);
            }
            if (rd_kafka_get_watermark_offsets(w->rk, p->topic, p->partition, &lo, &hi) == 0 &&
                hi >= 0)
                ks_metric_set(p->lag, hi - (p->expected > lo ? p->expected : lo));
        }
        w->next_lag = now + 1000;
    }
}

/* --- life cycle ----------------------------------------------------------------------- */

void ks_worker_settings(const char *group_default, const char *topics_default,
                        struct ks_config_def *out)
{
    const struct ks_config_def defs[KS_WORKER_SETTINGS_COUNT] = {
        {"worker.group", KS_CFG_STRING, group_default, 1, "Kafka consumer group"},
        {"worker.topics", KS_CFG_STRING, topics_default, 1, "input topics, comma separated"},
        {"worker.batch.max", KS_CFG_INT, "2000", 0, "most messages in one batch"},
        {"worker.batch.wait", KS_CFG_DURATION_MS, "50ms", 0,
         "longest wait to fill a batch after its first message"},
        {"worker.retry.delays", KS_CFG_STRING, "5s,1m,10m", 0,
         "retry topics <topic>.retry.<delay>, comma separated, shortest first"},
        {"worker.retry.max_attempts", KS_CFG_INT, "4", 0,
         "attempts (the first included) before a retriable failure is dead-lettered"},
        {"worker.retry.jitter_pct", KS_CFG_INT, "20", 0, "+/- jitter of retry delays, percent"},
        {"worker.outbox.sweep", KS_CFG_DURATION_MS, "5s", 0,
         "how often unsent outbox rows are looked for"},
        {"worker.outbox.min_age", KS_CFG_DURATION_MS, "30s", 0,
         "age after which an unsent outbox row is presumed lost in flight and relayed again"},
        {"worker.outbox.park_after", KS_CFG_INT, "10", 0,
         "refusals by Kafka of one outbox row (too large, bad topic) before it is parked in "
         "kasir_outbox_dead"},
        {"worker.outbox.park_age", KS_CFG_DURATION_MS, "1h", 0,
         "age after which an outbox row Kafka refused at least once is parked"},
        {"worker.pg.statement_timeout", KS_CFG_DURATION_MS, "60s", 0,
         "statement_timeout of the worker's sessions (a timeout is transient: re-run later)"},
        {"worker.pg.lock_timeout", KS_CFG_DURATION_MS, "20s", 0,
         "lock_timeout of the worker's sessions (transient)"},
        {"worker.pg.idle_in_transaction_timeout", KS_CFG_DURATION_MS, "120s", 0,
         "idle_in_transaction_session_timeout: a stopped worker's open batch frees its locks"},
        {"worker.failure.backoff_max", KS_CFG_DURATION_MS, "30s", 0,
         "longest wait before a batch that failed on a healthy database is read again"},
        {"worker.health.max_failures", KS_CFG_INT, "5", 0,
         "identical batch failures in a row after which /healthz reports unavailable"},
        {"worker.dedup.retention", KS_CFG_DURATION_MS, "90d", 0,
         "how long processed message ids are kept for dedup (longer than any DLQ replay)"},
    };
    memcpy(out, defs, sizeof(defs));
}

static int health(void *ctx, int ready, char *body, size_t len)
{
    struct ks_worker *w = ctx;
    int alive = now_ms() - w->loop_at_ms < 60000 && !w->fatal;
    int failing = w->fail_streak >= w->max_failures;
    int ok = ready ? alive && w->pg_up && !failing : alive && !failing;
    snprintf(body, len,
             "{\"status\":\"%s\",\"postgresql\":\"%s\",\"partitions\":%zu,"
             "\"failed_batches_in_a_row\":%d,\"kafka\":\"%s\"}",
             ok ? "ok" : "unavailable", w->pg_up ? "up" : "down", w->nparts, w->fail_streak,
             w->fatal ? "fatal" : "ok");
    return ok;
}

static void make_metrics(struct ks_worker *w)
{
    static const int64_t bounds[] = {1000,   2500,   5000,    10000,   25000,  50000,
                                     100000, 250000, 500000,  1000000, 2500000, 10000000};
    struct ks_metrics *m = w->metrics;
    w->m_msgs = ks_metrics_counter(m, "kasir_worker_messages_total", "messages consumed", NULL);
    w->m_batches = ks_metrics_counter(m, "kasir_worker_batches_total", "batches committed", NULL);
    w->m_lat = ks_metrics_histogram(m, "kasir_worker_batch_seconds",
                                    "batch latency, decode to commit", NULL, bounds,
                                    sizeof(bounds) / sizeof(bounds[0]));
    w->m_retries = ks_metrics_counter(m, "kasir_worker_retries_total",
                                      "messages sent to a retry topic", NULL);
    w->m_dlq = ks_metrics_counter(m, "kasir_worker_dlq_total", "messages dead-lettered", NULL);
    w->m_relayed = ks_metrics_counter(m, "kasir_worker_outbox_relayed_total",
                                      "outbox messages delivered to Kafka", NULL);
    w->m_relay_failed = ks_metrics_counter(m, "kasir_worker_outbox_failed_total",
                                           "outbox deliveries failed (relayed again later)", NULL);
    w->m_fenced = ks_metrics_counter(m, "kasir_worker_fenced_total",
                                     "batches dropped because another owner moved the offsets",
                                     NULL);
    w->m_infra = ks_metrics_counter(m, "kasir_worker_infra_failures_total",
                                    "batches rolled back for an unreachable database", NULL);
    w->m_skipped = ks_metrics_counter(m, "kasir_worker_duplicates_total",
                                      "inputs skipped as already processed", NULL);
    w->m_pg_up = ks_metrics_gauge(m, "kasir_worker_postgresql_up", "1 when PostgreSQL answers",
                                  NULL);
    w->m_failed_batches = ks_metrics_counter(m, "kasir_worker_failed_batches_total",
                                             "batches that failed on a healthy database", NULL);
    w->m_kafka_fatal = ks_metrics_counter(m, "kasir_worker_kafka_fatal_total",
                                          "fatal Kafka client errors (producer replaced, or "
                                          "consumer exit)", NULL);
    w->m_parked = ks_metrics_gauge(m, "kasir_worker_outbox_parked_total",
                                   "outbox rows parked in kasir_outbox_dead since start", NULL);
}

static int split_topics(struct ks_worker *w, const char *list)
{
    const char *p = list;
    while (*p) {
        size_t len = strcspn(p, ", ");
        if (len) {
            if (w->ntopics == MAX_TOPICS || !(w->topics[w->ntopics] = strndup(p, len)))
                return -1;
            w->ntopics++;
        }
        p += len;
        while (*p == ',' || *p == ' ')
            p++;
    }
    return w->ntopics ? 0 : -1;
}

struct ks_worker *ks_worker_new(const struct ks_worker_spec *spec, const struct ks_config *cfg,
                                struct ks_err *err)
{
    struct ks_worker *w = calloc(1, sizeof(*w));
    rd_kafka_conf_t *conf = NULL;
    rd_kafka_topic_partition_list_t *sub = NULL;
    struct ks_err e1 = {0};
    const char *inst;
    char host[64] = "host", owner[300];
    int port, n;

    if (!w) {
        ks_err_set(err, KS_ENOMEM, 0, NULL, "out of memory");
        return NULL;
    }
    w->spec = spec;
    w->cfg = cfg;
    w->group = ks_config_str(cfg, "worker.group");
    w->dsn = ks_config_str(cfg, "pg.dsn");
    w->batch_max = (int)ks_config_int(cfg, "worker.batch.max");
    w->batch_wait_ms = ks_config_ms(cfg, "worker.batch.wait");
    w->max_attempts = (int)ks_config_int(cfg, "worker.retry.max_attempts");
    w->jitter_pct = (int)ks_config_int(cfg, "worker.retry.jitter_pct");
    w->sweep_ms = ks_config_ms(cfg, "worker.outbox.sweep");
    w->min_age_ms = ks_config_ms(cfg, "worker.outbox.min_age");
    w->stmt_ms = ks_config_ms(cfg, "worker.pg.statement_timeout");
    w->lock_ms = ks_config_ms(cfg, "worker.pg.lock_timeout");
    w->idle_tx_ms = ks_config_ms(cfg, "worker.pg.idle_in_transaction_timeout");
    w->backoff_max_ms = ks_config_ms(cfg, "worker.failure.backoff_max");
    w->max_failures = (int)ks_config_int(cfg, "worker.health.max_failures");
    w->dedup_keep_ms = ks_config_ms(cfg, "worker.dedup.retention");
    if (w->backoff_max_ms < 100)
        w->backoff_max_ms = 100;
    if (w->max_failures < 1)
        w->max_failures = 1;
    w->batch.w = w;
    w->debug = ks_log_level_parse(ks_config_str(cfg, "log.level")) == KS_LOG_DEBUG;
    w->loop_at_ms = now_ms();
    if (w->batch_max < 1)
        w->batch_max = 1;
    inst = ks_config_str(cfg, "instance.id");
    gethostname(host, sizeof(host) - 1);
    if (inst && *inst)
        snprintf(w->instance, sizeof(w->instance), "%s", inst);
    else
        snprintf(w->instance, sizeof(w->instance), "%s-%s-%d", spec->name, host, (int)getpid());
    if (ks_random_bytes(&w->rng, sizeof(w->rng), &e1) != KS_OK || w->rng == 0)
        w->rng = (uint64_t)mono_us() * 0x9E3779B97F4A7C15ULL | 1;
    n = ks_retry_parse(ks_config_str(cfg, "worker.retry.delays"), w->delays, w->delay_names,
                       MAX_DELAYS);
    if (n < 0) {
        ks_err_set(err, KS_ECONFIG, 0, "worker.retry.delays",
                   "cannot parse retry delays: want e.g. 5s,1m,10m, shortest first");
        goto fail;
    }
    w->ndelays = (size_t)n;
    if (split_topics(w, ks_config_str(cfg, "worker.topics")) != 0) {
        ks_err_set(err, KS_ECONFIG, 0, "worker.topics", "cannot parse input topics");
        goto fail;
    }
    if (!(w->metrics = ks_metrics_new())) {
        ks_err_set(err, KS_ENOMEM, 0, NULL, "out of memory");
        goto fail;
    }
    make_metrics(w);
    port = (int)ks_config_int(cfg, "http.port");
    if (port > 0 && !(w->httpd = ks_httpd_start(port, w->metrics, health, w, err)))
        goto fail;
    /* PostgreSQL may be down at start: the loop keeps trying, the daemon stays up */
    if (!pg_open(w, &w->db, &e1))
        ks_log(KS_LOG_WARN, "worker.pg.down", e1.msg, NULL);
    else {
        w->pg_up = 1;
        ks_metric_set(w->m_pg_up, 1);
    }
    /* outbox rows belong to the group: its instances relay each other's leftovers */
    snprintf(owner, sizeof(owner), "%s/%s", spec->name, w->group);
    if (!(w->ob = ks_outbox_new(owner, ks_config_str(cfg, "kafka.brokers"), cfg, err)))
        goto fail;
    ks_outbox_set_parking(w->ob, (int)ks_config_int(cfg, "worker.outbox.park_after"),
                          ks_config_ms(cfg, "worker.outbox.park_age"));
    if (!(conf = ks_kafka_conf_new(ks_config_str(cfg, "kafka.brokers"), "consumer", cfg, err)))
        goto fail;
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_error_cb(conf, on_consumer_error);
    rd_kafka_conf_set_opaque(conf, w);
    w->rk = ks_kafka_consumer_new(conf, w->group, inst && *inst ? inst : NULL, err);
    if (!w->rk)
        goto fail;
    sub = rd_kafka_topic_partition_list_new((int)(w->ntopics * (1 + w->ndelays)));
    for (size_t i = 0; i < w->ntopics; i++) {
        rd_kafka_topic_partition_list_add(sub, w->topics[i], RD_KAFKA_PARTITION_UA);
        for (size_t k = 0; k < w->ndelays; k++) {
            char t[300];
            snprintf(t, sizeof(t), "%s.retry.%s", w->topics[i], w->delay_names[k]);
            rd_kafka_topic_partition_list_add(sub, t, RD_KAFKA_PARTITION_UA);
        }
    }
    if (rd_kafka_subscribe(w->rk, sub) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        ks_err_set(err, KS_EKAFKA, 0, "worker.topics", "could not subscribe");
        goto fail;
    }
    rd_kafka_topic_partition_list_destroy(sub);
    ks_log(KS_LOG_INFO, "worker.started", "worker started", "group", w->group, "topics",
           ks_config_str(cfg, "worker.topics"), "instance", w->instance, NULL);
    return w;
fail:
    if (sub)
        rd_kafka_topic_partition_list_destroy(sub);
    ks_worker_free(w);
    return NULL;
}

void ks_worker_stop(struct ks_worker *w)
{
    w->stop = 1;
}

void ks_worker_test_fatal(struct ks_worker *w)
{
    ks_outbox_test_fatal(w->ob);
}

int ks_worker_run(struct ks_worker *w)
{
    int64_t progress_at = now_ms();
    int64_t last_msgs = 0;
    struct ks_err err = {0};
    int n = 0;

    /* before the first batch every unsent row of this group is a leftover of a crash */
    if (w->pg_up && ks_outbox_sweep(w->ob, ks_db_conn(w->db), 0, 100000, &n, &err) == KS_OK) {
        w->next_sweep = now_ms() + w->sweep_ms;
        if (n)
            ks_logf(KS_LOG_INFO, "worker.outbox.swept", "%d unsent outbox rows relayed", n);
    }

    while (!w->stop) {
        int64_t now = now_ms();
        w->loop_at_ms = now;
        if (!w->synced && w->nparts > 0) {
            /* outage or lost fence: stay in the group, retry positions with backoff */
            if (now >= w->next_sync) {
                if (sync_assignment(w) == 0) {
                    ks_log(KS_LOG_INFO, "worker.pg.up", "positions read again, resuming", NULL);
                    w->sync_backoff = 100;
                } else {
                    w->sync_backoff = w->sync_backoff ? w->sync_backoff * 2 : 100;
                    if (w->sync_backoff > 5000)
                        w->sync_backoff = 5000;
                    w->next_sync = now + w->sync_backoff;
                }
            }
        }
        int64_t t0 = mono_us(), t1, t2;
        int ran;
        if (!w->ready) {
            collect(w);
            prepare(w);
        }
        w->ready = 0;
        t1 = mono_us();
        ran = w->batch.n > 0;
        if (ran)
            process(w);
        t2 = mono_us();
        housekeeping(w, !ran);
        if (w->debug && ran)
            ks_logf(KS_LOG_DEBUG, "worker.loop", "collect=%" PRId64 " process=%" PRId64
                    " housekeeping=%" PRId64 " us", t1 - t0, t2 - t1, mono_us() - t2);
        if (now - progress_at >= 10000) {
            int64_t m = ks_metric_value(w->m_msgs);
            ks_logf(KS_LOG_INFO, "worker.progress", "%" PRId64 " messages in %" PRId64 " ms",
                    m - last_msgs, now - progress_at);
            last_msgs = m;
            progress_at = now;
        }
    }
    settle(w);
    batch_clear(&w->batch); /* read while the last tail ran: the next owner reads it again */
    ks_log(KS_LOG_INFO, "worker.stopping", "finishing: flushing outbox, leaving group", NULL);
    ks_outbox_flush(w->ob, 10000);
    if (w->pg_up || pg_ensure(w)) {
        if (ks_outbox_mark_write(w->ob, ks_db_conn(w->db), &err) == KS_OK)
            ks_outbox_mark_done(w->ob, 1);
    }
    if (w->fatal) {
        /* a fenced consumer must not leave the group in the name of the instance that
         * fenced it: destroy without closing */
        rd_kafka_destroy_flags(w->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
        w->rk = NULL;
        ks_log(KS_LOG_ERROR, "worker.stopped", "stopped on a fatal consumer error", NULL);
        return 3;
    }
    ks_kafka_consumer_close(w->rk);
    w->rk = NULL;
    ks_log(KS_LOG_INFO, "worker.stopped", "clean shutdown", NULL);
    return 0;
}

void ks_worker_free(struct ks_worker *w)
{
    if (!w)
        return;
    batch_clear(&w->batch);
    free(w->batch.items);
    free(w->batch.view);
    if (w->rk) {
        ks_kafka_consumer_close(w->rk);
        w->rk = NULL;
    }
    clear_parts(w);
    ks_outbox_free(w->ob, 5000);
    ks_httpd_stop(w->httpd);
    ks_metrics_free(w->metrics);
    ks_db_free(w->db);
    ks_db_free(w->jdb);
    for (size_t i = 0; i < w->ntopics; i++)
        free(w->topics[i]);
    free(w);
}

/* --- main ----------------------------------------------------------------------------- */

static struct ks_worker *g_worker;

static void on_signal(int sig)
{
    (void)sig;
    if (g_worker)
        ks_worker_stop(g_worker);
}

int ks_worker_main(const struct ks_worker_spec *spec, const struct ks_config_def *defs,
                   size_t ndefs, int argc, char **argv)
{
    size_t ncommon = ks_common_settings_count, total;
    struct ks_config_def *all;
    struct ks_config *cfg = NULL;
    struct ks_worker *w = NULL;
    struct ks_err err = {0};
    char *problems = NULL;
    const char *path = NULL;
    struct sigaction sa;
    int lvl, rc = 1;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
            path = argv[++i];
        else {
            fprintf(stderr, "usage: kasir-%s [-c config-file]\n", spec->name);
            return 2;
        }
    }
    total = ncommon + KS_WORKER_SETTINGS_COUNT + ndefs;
    if (!(all = calloc(total, sizeof(*all))))
        return 1;
    memcpy(all, ks_common_settings, ncommon * sizeof(*all));
    for (size_t i = 0; i < ncommon; i++)
        if (spec->http_port && strcmp(all[i].name, "http.port") == 0)
            all[i].def = spec->http_port;
    ks_worker_settings(spec->group ? spec->group : spec->name, spec->topics, all + ncommon);
    if (ndefs)
        memcpy(all + ncommon + KS_WORKER_SETTINGS_COUNT, defs, ndefs * sizeof(*all));
    ks_log_init(spec->name, KS_LOG_INFO);
    cfg = ks_config_load(all, total, path, &problems, &err);
    if (!cfg) {
        fprintf(stderr, "kasir-%s: bad configuration:\n%s", spec->name,
                problems ? problems : err.msg);
        goto out;
    }
    lvl = ks_log_level_parse(ks_config_str(cfg, "log.level"));
    ks_log_init(spec->name, lvl < 0 ? KS_LOG_INFO : (enum ks_log_level)lvl);
    if (ks_serde_init(&err) != KS_OK) {
        ks_log(KS_LOG_ERROR, "worker.serde_failed", err.msg, NULL);
        goto out;
    }
    if (!(w = ks_worker_new(spec, cfg, &err))) {
        ks_log(KS_LOG_ERROR, "worker.start_failed", err.msg, "field", err.field[0] ? err.field : NULL,
               NULL);
        goto out;
    }
    g_worker = w;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    rc = ks_worker_run(w);
out:
    g_worker = NULL;
    ks_worker_free(w);
    ks_config_free(cfg);
    ks_serde_shutdown();
    free(problems);
    free(all);
    return rc;
}
