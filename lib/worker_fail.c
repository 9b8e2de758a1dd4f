/* worker_fail.c - where failures go: retry and DLQ copies of failed messages, and what a
 * failed batch means (fenced, infrastructure, contention, one message's doing). See
 * worker_int.h and the failure policy in worker.h. */
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

/* the fence (kasir_offsets_advance): a row moves only from the position this owner read or wrote
 * last, else SQLSTATE KS409 aborts the transaction before the COMMIT that follows it */
#define FENCE_SQLSTATE "KS409"

void wk_item_fail(struct item *it, const char *cls, const struct ks_err *err)
{
    it->state = ST_FAILED;
    it->err_class = cls;
    it->err = *err;
}

void ks_batch_fail(struct ks_batch *b, struct ks_msg *m, const struct ks_err *err)
{
    struct item *it = (struct item *)m;
    wk_item_fail(it, err->retriable ? "retry" : err->code == KS_EINVAL ? "invalid" : "failed",
              err);
    it->by_handler = 1;
    ks_outbox_drop(b->w->ob, (long)(it - b->items));
}

enum ks_code wk_failure_to_outbox(struct ks_worker *w, struct item *it, int64_t now,
                                      struct ks_err *err)
{
    struct ks_failure f = {0};
    char topic[300], tp[56], span[17];
    int retry = it->err.retriable && w->ndelays > 0 && it->m.attempt < w->max_attempts;
    rd_kafka_headers_t *src = NULL, *h;
    void *val = NULL;
    size_t len = it->rkm->len;

    wk_rnd_hex(w, span, 8);
    ks_trace_format(it->m.trace_id, span, it->flags, tp);
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
                                     (uint32_t)wk_rnd64(w), &idx);
        f.error_class = "retry";
        f.attempt = it->m.attempt + 1; /* the attempt the copy will be */
        f.not_before_ms = now + d;
        ks_retry_topic(topic, sizeof(topic), it->origin_topic, w->delay_names[idx]);
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
    if (!(h = ks_headers_failure(src, &f)))
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

/* A batch failed while PostgreSQL answers: log, count the streak of identical failures
 * (/healthz turns red at worker.health.max_failures) and return the backoff before the
 * batch is read again: 100 ms doubling per failure in a row, capped. */
int64_t wk_batch_failed(struct ks_worker *w, const struct ks_err *err)
{
    int64_t backoff = 100;

    /* "identical" by what failed and its SQLSTATE: the text after it names pids and xids
     * (a deadlock report) that differ on every try */
    char key[sizeof(w->fail_msg)];
    const char *st = strstr(err->msg, " sqlstate ");
    size_t kl = st && strlen(st) >= 15 ? (size_t)(st - err->msg) + 15 : strlen(err->msg);

    if (kl >= sizeof(key))
        kl = sizeof(key) - 1;
    memcpy(key, err->msg, kl);
    key[kl] = '\0';
    if (w->fail_streak > 0 && strcmp(w->fail_msg, key) == 0)
        w->fail_streak++;
    else {
        w->fail_streak = 1;
        memcpy(w->fail_msg, key, kl + 1);
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

/* What a failed transaction means, decided once: fenced (another owner), infrastructure
 * (the connection is gone: pause and re-run), a handler bug (halt), a broken database or
 * schema, or the isolated pass itself failing (re-run later with backoff), else something
 * a message did, transient or not (isolate it: each message gets its own outcome). */
enum outcome wk_classify(struct ks_worker *w, const struct ks_err *err, const char *state,
                             int isolated)
{
    if ((state && strcmp(state, FENCE_SQLSTATE) == 0) || w->journal_fenced) {
        ks_metric_add(w->m_fenced, 1);
        ks_log(KS_LOG_WARN, "worker.fenced", err->msg, "group", w->group, NULL);
        return OUT_FENCED;
    }
    if (!ks_db_ok(w->db)) {
        ks_metric_add(w->m_infra, 1);
        wk_pg_down(w, err);
        return OUT_INFRA;
    }
    if (w->bug)
        return OUT_HALTED;
    if (ks_db_environmental(state) || w->env_fail || isolated)
        return OUT_FAILED;
    return OUT_RETRY_ISOLATED;
}
