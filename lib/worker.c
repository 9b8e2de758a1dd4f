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
#include "jsonmem.h"
#include "metrics.h"
#include "outbox.h"
#include "serde.h"
#include "worker_int.h"
#include "crypto.h"
#include "banned.h"

/* kasir_processed rows older than worker.dedup.retention go, a slice at a time */
static const char SQL_PURGE[] =
    "DELETE FROM kasir_processed WHERE ctid = ANY(ARRAY(SELECT ctid FROM kasir_processed "
    "WHERE consumer = $1 AND processed_at < now() - $2::bigint * interval '1 millisecond' "
    "LIMIT 50000))";



uint64_t wk_rnd64(struct ks_worker *w)
{
    /* xorshift64*: span ids and jitter need speed, not secrecy */
    uint64_t x = w->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    w->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

void wk_rnd_hex(struct ks_worker *w, char *out, size_t nbytes)
{
    uint8_t b[16];
    for (size_t i = 0; i < nbytes; i += 8) {
        uint64_t r = wk_rnd64(w);
        memcpy(b + i, &r, nbytes - i < 8 ? nbytes - i : 8);
    }
    b[0] |= 1; /* never all zero */
    ks_hex_encode(b, nbytes, out);
}

struct ks_metrics *ks_worker_metrics(struct ks_worker *w)
{
    return w->metrics;
}

const struct ks_config *ks_worker_config(const struct ks_worker *w)
{
    return w->cfg;
}

static void housekeeping(struct ks_worker *w, int idle)
{
    int64_t now = ks_clock_wall_ms();
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
    if (!w->pg_up && !wk_pg_ensure(w))
        return;
    if (now >= w->next_sweep && !w->sweep_all)
        /* what this producer has in flight is reported, and marked below, before the sweep
         * looks: a row whose batch ran longer than min_age is not sent twice */
        ks_outbox_flush(w->ob, 2000);
    if ((idle || now >= w->next_sweep) && ks_outbox_delivered(w->ob) > 0) {
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
        ks_metric_set(w->m_parked, (int64_t)ks_outbox_parked(w->ob)); /* the sweep parks */
        w->next_sweep = now + w->sweep_ms;
    }
    if (now >= w->next_purge) {
        /* kept worker.dedup.retention: long enough for a DLQ replay weeks later to be
         * recognised as a duplicate */
        char keep[24];
        const char *params[2] = {w->group, keep};
        PGresult *res;
        snprintf(keep, sizeof(keep), "%" PRId64, w->dedup_keep_ms);
        res = PQexecParams(ks_db_conn(w->db), SQL_PURGE, 2, NULL, params, NULL, NULL, 0);
        if (ks_db_check(w->db, res, PGRES_COMMAND_OK, "dedup purge", &err) != KS_OK)
            ks_log(KS_LOG_WARN, "worker.dedup.purge_failed", err.msg, NULL);
        /* busy or idle; a full slice: more to do in a second, else in an hour */
        w->next_purge = now + (strcmp(PQcmdTuples(res), "50000") == 0 ? 1000 : 3600000);
        PQclear(res);
    }
    if (now >= w->next_park)
        w->next_park = now + wk_retry_park(w);
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

void ks_worker_settings(const char *group_default, const char *topics_default,
                        struct ks_config_def *out)
{
    const struct ks_config_def defs[KS_WORKER_SETTINGS_COUNT] = {
        {"worker.group", KS_CFG_STRING, group_default, 1,
         "Kafka consumer group (1-200 printable ASCII characters: it names the worker's rows in PostgreSQL)"},
        {"worker.topics", KS_CFG_STRING, topics_default, 1, "input topics, comma separated"},
        {"worker.batch.max", KS_CFG_INT, "2000", 0, "most messages in one batch"},
        {"worker.batch.wait", KS_CFG_DURATION_MS, "50ms", 0,
         "longest wait to fill a batch after its first message"},
        {"worker.batch.gap", KS_CFG_DURATION_MS, "2ms", 0,
         "a batch closes when no message came for this long, before batch.wait (a fetch's "
         "messages come together, so a batch is what Kafka had); 0: only batch.max and "
         "batch.wait close it"},
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
    int alive = ks_clock_wall_ms() - w->loop_at_ms < 60000 && !w->fatal;
    int failing = w->fail_streak >= w->max_failures || w->halted;
    int ok = ready ? alive && w->pg_up && !failing : alive && !failing;
    snprintf(body, len,
             "{\"status\":\"%s\",\"postgresql\":\"%s\",\"partitions\":%zu,"
             "\"failed_batches_in_a_row\":%d,\"kafka\":\"%s\",\"handler\":\"%s\"}",
             ok ? "ok" : "unavailable", w->pg_up ? "up" : "down", w->nparts, w->fail_streak,
             w->fatal ? "fatal" : "ok", w->halted ? "halted: it ended the transaction" : "ok");
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
    w->m_journals = ks_metrics_counter(m, "kasir_worker_journal_commits_total",
                                       "fenced journal commits (ks_batch_journal): effects "
                                       "committed before an external call", NULL);
    w->m_infra = ks_metrics_counter(m, "kasir_worker_infra_failures_total",
                                    "batches rolled back for an unreachable database", NULL);
    w->m_skipped = ks_metrics_counter(m, "kasir_worker_duplicates_total",
                                      "inputs skipped as already processed", NULL);
    w->m_refetched = ks_metrics_counter(m, "kasir_worker_refetched_total",
                                        "messages the consumer brought again while they were "
                                        "in hand (a re-assignment), dropped", NULL);
    w->m_outside_log = ks_metrics_counter(m, "kasir_worker_positions_outside_log_total",
                                          "stored positions found beyond the end of their "
                                          "partition's log (read from its start) or before "
                                          "its start (removed by retention unread)", NULL);
    w->m_pg_up = ks_metrics_gauge(m, "kasir_worker_postgresql_up", "1 when PostgreSQL answers",
                                  NULL);
    w->m_retry_parked = ks_metrics_gauge(m, "kasir_worker_retry_partitions_parked",
                                         "retry partitions not fetched: nothing to read", NULL);
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

/* A handle on each subscribed topic, taken while the group is still being joined, makes
 * librdkafka look up the topic's partitions and leaders now. Without it the topic first
 * becomes known at the assignment, its partitions have no leader yet when their fetch
 * starts, and librdkafka retries the offset lookup on a fixed 500 ms timer: half a second
 * before the first message at every start (test 131). */
static void topics_hold(struct ks_worker *w, const rd_kafka_topic_partition_list_t *sub)
{
    for (int i = 0; i < sub->cnt && w->nrkts < sizeof(w->rkts) / sizeof(w->rkts[0]); i++) {
        rd_kafka_topic_t *t = rd_kafka_topic_new(w->rk, sub->elems[i].topic, NULL);
        if (t)
            w->rkts[w->nrkts++] = t;
    }
}

/* before the consumer is destroyed: a handle left would keep it alive */
static void topics_release(struct ks_worker *w)
{
    for (size_t i = 0; i < w->nrkts; i++)
        rd_kafka_topic_destroy(w->rkts[i]);
    w->nrkts = 0;
}

/* The group names the worker's rows in PostgreSQL (positions, and the outbox owner
 * "<worker>/<group>" in the text of the sent mark): a name PostgreSQL cannot store, or one
 * cut short in a buffer, was accepted at start and then no batch ever committed (test
 * 141). Refused at start instead, as a config problem. */
#define MAX_GROUP 200
static int group_usable(const char *g)
{
    size_t n = g ? strlen(g) : 0;

    if (n == 0 || n > MAX_GROUP)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)g[i] < 0x20 || (unsigned char)g[i] > 0x7e)
            return 0;
    return 1;
}

struct ks_worker *ks_worker_new(const struct ks_worker_spec *spec, const struct ks_config *cfg,
                                struct ks_err *err)
{
    struct ks_worker *w = calloc(1, sizeof(*w));
    rd_kafka_conf_t *conf = NULL;
    rd_kafka_topic_partition_list_t *sub = NULL;
    struct ks_err e1 = {0};
    const char *inst;
    char host[64] = "host", owner[300], errbuf[256];
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
    w->batch_gap_ms = ks_config_ms(cfg, "worker.batch.gap");
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
    w->loop_at_ms = ks_clock_wall_ms();
    if (w->batch_max < 1)
        w->batch_max = 1;
    inst = ks_config_str(cfg, "instance.id");
    gethostname(host, sizeof(host) - 1);
    if (inst && *inst)
        snprintf(w->instance, sizeof(w->instance), "%s", inst);
    else
        snprintf(w->instance, sizeof(w->instance), "%s-%s-%d", spec->name, host, (int)getpid());
    if (ks_random_bytes(&w->rng, sizeof(w->rng), &e1) != KS_OK || w->rng == 0)
        w->rng = (uint64_t)ks_clock_mono_us() * 0x9E3779B97F4A7C15ULL | 1;
    n = ks_retry_parse(ks_config_str(cfg, "worker.retry.delays"), w->delays, w->delay_names,
                       MAX_DELAYS);
    if (n < 0) {
        ks_err_set(err, KS_ECONFIG, 0, "worker.retry.delays",
                   "cannot parse retry delays: want e.g. 5s,1m,10m, shortest first");
        goto fail;
    }
    w->ndelays = (size_t)n;
    /* a parked retry partition is looked at a few times per shortest delay, at most once a
     * second: a retry copy waits at least that delay anyway */
    w->park_ms = n > 0 ? w->delays[0] / 5 : 1000;
    w->park_ms = w->park_ms < 50 ? 50 : w->park_ms > 1000 ? 1000 : w->park_ms;
    if (!group_usable(w->group)) {
        ks_err_set(err, KS_ECONFIG, 0, "worker.group",
                   "worker.group must be 1 to %d printable ASCII characters", MAX_GROUP);
        goto fail;
    }
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
    if (!wk_pg_open(w, &w->db, &e1))
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
    /* the runtime assigns every partition at an explicit offset (its stored position, the
     * log's start for a new one, wk_sync_assignment); a fetch the broker answers "out of
     * range" (a log truncated after the check, by an unclean leader election) must come
     * back as an error to re-check, never as a silent jump that the position filter would
     * turn into skipped messages. Not a setting a deployment may change. */
    if (rd_kafka_conf_set(conf, "auto.offset.reset", "error", errbuf, sizeof(errbuf)) !=
        RD_KAFKA_CONF_OK) {
        ks_err_set(err, KS_ECONFIG, 0, NULL, "kafka auto.offset.reset: %s", errbuf);
        rd_kafka_conf_destroy(conf);
        goto fail;
    }
    rd_kafka_conf_set_rebalance_cb(conf, wk_on_rebalance);
    rd_kafka_conf_set_error_cb(conf, wk_on_consumer_error);
    rd_kafka_conf_set_opaque(conf, w);
    w->rk = ks_kafka_consumer_new(conf, w->group, inst && *inst ? inst : NULL, err);
    if (!w->rk)
        goto fail;
    sub = rd_kafka_topic_partition_list_new((int)(w->ntopics * (1 + w->ndelays)));
    for (size_t i = 0; i < w->ntopics; i++) {
        rd_kafka_topic_partition_list_add(sub, w->topics[i], RD_KAFKA_PARTITION_UA);
        for (size_t k = 0; k < w->ndelays; k++) {
            char t[300];
            ks_retry_topic(t, sizeof(t), w->topics[i], w->delay_names[k]);
            rd_kafka_topic_partition_list_add(sub, t, RD_KAFKA_PARTITION_UA);
        }
    }
    if (rd_kafka_subscribe(w->rk, sub) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        ks_err_set(err, KS_EKAFKA, 0, "worker.topics", "could not subscribe");
        goto fail;
    }
    topics_hold(w, sub);
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
    int64_t progress_at = ks_clock_wall_ms();
    int64_t last_msgs = 0;
    struct ks_err err = {0};
    int n = 0;

    /* before the first batch every unsent row of this group is a leftover of a crash */
    if (w->pg_up && ks_outbox_sweep(w->ob, ks_db_conn(w->db), 0, 100000, &n, &err) == KS_OK) {
        w->next_sweep = ks_clock_wall_ms() + w->sweep_ms;
        if (n)
            ks_logf(KS_LOG_INFO, "worker.outbox.swept", "%d unsent outbox rows relayed", n);
    }

    while (!w->stop) {
        int64_t now = ks_clock_wall_ms();
        w->loop_at_ms = now;
        if (w->fence_until && (w->generation != w->fence_gen || now >= w->fence_until))
            w->fence_until = 0;
        if ((!w->synced || w->npending) && w->nparts > 0 && !w->halted && !w->fence_until) {
            /* outage or lost fence: stay in the group, retry positions with backoff */
            if (now >= w->next_sync) {
                int was_pending = w->npending > 0;
                if (wk_sync_assignment(w) == 0) {
                    if (!was_pending)
                        ks_log(KS_LOG_INFO, "worker.pg.up", "positions read again, resuming",
                               NULL);
                    w->sync_backoff = 100;
                    if (w->npending)
                        w->next_sync = now + 1000; /* locked rows: look again in a second */
                } else {
                    w->sync_backoff = w->sync_backoff ? w->sync_backoff * 2 : 100;
                    if (w->sync_backoff > 5000)
                        w->sync_backoff = 5000;
                    w->next_sync = now + w->sync_backoff;
                }
            }
        }
        int64_t t0 = ks_clock_mono_us(), t1, t2;
        int ran;
        if (!w->ready) {
            wk_collect(w, 1);
            wk_prepare(w, 0);
        }
        w->ready = 0;
        t1 = ks_clock_mono_us();
        ran = w->batch.n > 0;
        if (ran)
            wk_process(w);
        t2 = ks_clock_mono_us();
        housekeeping(w, !ran);
        if (w->debug && ran)
            ks_logf(KS_LOG_DEBUG, "worker.loop", "collect=%" PRId64 " process=%" PRId64
                    " housekeeping=%" PRId64 " us", t1 - t0, t2 - t1, ks_clock_mono_us() - t2);
        if (now - progress_at >= 10000) {
            int64_t m = ks_metric_value(w->m_msgs);
            ks_logf(KS_LOG_INFO, "worker.progress", "%" PRId64 " messages in %" PRId64 " ms",
                    m - last_msgs, now - progress_at);
            last_msgs = m;
            progress_at = now;
        }
    }
    wk_settle(w);
    wk_batch_clear(&w->batch); /* read while the last tail ran: the next owner reads it again */
    ks_log(KS_LOG_INFO, "worker.stopping", "finishing: flushing outbox, leaving group", NULL);
    ks_outbox_flush(w->ob, 10000);
    if (w->pg_up || wk_pg_ensure(w)) {
        if (ks_outbox_mark_write(w->ob, ks_db_conn(w->db), &err) == KS_OK)
            ks_outbox_mark_done(w->ob, 1);
    }
    if (w->fatal) {
        /* a fenced consumer must not leave the group in the name of the instance that
         * fenced it: destroy without closing */
        /* every message and topic handle goes back first: a held retry copy left out
         * made the destroy wait forever instead of exiting 3 (test 142) */
        wk_clear_parts(w);
        topics_release(w);
        rd_kafka_destroy_flags(w->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
        w->rk = NULL;
        ks_log(KS_LOG_ERROR, "worker.stopped", "stopped on a fatal consumer error", NULL);
        return 3;
    }
    topics_release(w);
    ks_kafka_consumer_close(w->rk);
    w->rk = NULL;
    ks_log(KS_LOG_INFO, "worker.stopped", "clean shutdown", NULL);
    return 0;
}

void ks_worker_free(struct ks_worker *w)
{
    if (!w)
        return;
    wk_batch_clear(&w->batch);
    free(w->batch.items);
    free(w->batch.view);
    topics_release(w);
    if (w->rk) {
        ks_kafka_consumer_close(w->rk);
        w->rk = NULL;
    }
    wk_clear_parts(w);
    ks_outbox_free(w->ob, 5000);
    ks_httpd_stop(w->httpd);
    ks_metrics_free(w->metrics);
    ks_db_free(w->db);
    ks_db_free(w->jdb);
    for (size_t i = 0; i < w->ntopics; i++)
        free(w->topics[i]);
    free(w);
}

static struct ks_worker *g_worker;

static void on_signal(int sig)
{
    (void)sig;
    if (g_worker)
        ks_worker_stop(g_worker);
}

struct ks_config_def *ks_worker_table(const struct ks_worker_spec *spec,
                                      const struct ks_config_def *defs, size_t ndefs,
                                      size_t *total)
{
    size_t ncommon = ks_common_settings_count;
    struct ks_config_def *all;

    *total = ncommon + KS_WORKER_SETTINGS_COUNT + ndefs;
    if (!(all = calloc(*total, sizeof(*all))))
        return NULL;
    memcpy(all, ks_common_settings, ncommon * sizeof(*all));
    for (size_t i = 0; i < ncommon; i++)
        if (spec->http_port && strcmp(all[i].name, "http.port") == 0)
            all[i].def = spec->http_port;
    ks_worker_settings(spec->group ? spec->group : spec->name, spec->topics, all + ncommon);
    if (ndefs)
        memcpy(all + ncommon + KS_WORKER_SETTINGS_COUNT, defs, ndefs * sizeof(*all));
    return all;
}

int ks_worker_main(const struct ks_worker_spec *spec, const struct ks_config_def *defs,
                   size_t ndefs, int argc, char **argv)
{
    size_t total;
    struct ks_config_def *all;
    struct ks_config *cfg = NULL;
    struct ks_worker *w = NULL;
    struct ks_err err = {0};
    const char *path = NULL;
    struct sigaction sa;
    int rc = 1;

    int doc = argc == 2 && strcmp(argv[1], "config-doc") == 0;

    for (int i = 1; i < argc && !doc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
            path = argv[++i];
        else {
            fprintf(stderr, "usage: kasir-%s [-c config-file] | config-doc\n", spec->name);
            return 2;
        }
    }
    if (doc) {
        /* make docs appends every daemon's own table to docs/CONFIG.md */
        char title[128];
        snprintf(title, sizeof(title), "kasir-%s (besides the common and runtime settings)",
                 spec->name);
        if (ndefs)
            ks_config_markdown(stdout, title, defs, ndefs);
        return fflush(stdout) == 0 ? 0 : 1;
    }
    if (!(all = ks_worker_table(spec, defs, ndefs, &total)))
        return 1;
    /* every bad setting as one JSON line (config.invalid), then exit 2 (docs/CONFIG.md) */
    if (!(cfg = ks_config_load_main(spec->name, all, total, path))) {
        rc = 2;
        goto out;
    }
    /* each batch's decoded trees are freed together and the next batch's allocated
     * alike: a per-thread cache of jansson's small blocks (jsonmem.h) */
    ks_jsonmem_install();
    if (ks_serde_init(&err) != KS_OK) {
        ks_log(KS_LOG_ERROR, "worker.serde_failed", err.msg, NULL);
        goto out;
    }
    if (!(w = ks_worker_new(spec, cfg, &err))) {
        /* a setting the table accepted but the runtime cannot use is a config problem too */
        ks_log(KS_LOG_ERROR, err.code == KS_ECONFIG ? "config.invalid" : "worker.start_failed",
               err.msg, "setting", err.field[0] ? err.field : NULL, NULL);
        rc = err.code == KS_ECONFIG ? 2 : 1;
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
    if (spec->stopped)
        spec->stopped(spec->ctx);
    ks_config_free(cfg);
    ks_serde_shutdown();
    free(all);
    return rc;
}
