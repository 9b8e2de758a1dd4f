/* worker_part.c - the partitions a worker owns: positions read from kasir_offsets on
 * assignment (taking ownership bumps the epoch), pause and hold of retry partitions not
 * yet due, parking of empty retry partitions, rebalance and fatal consumer errors. See
 * worker_int.h. */
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

static const char SQL_OFFSETS_INIT[] =
    "INSERT INTO kasir_offsets (group_id, topic, partition) "
    "SELECT $1, t, p FROM unnest($2::text[], $3::int[]) AS u(t, p) ON CONFLICT DO NOTHING";
/* reading the positions is taking ownership: the epoch moves, which fences the journal
 * writes (ks_batch_journal) of any earlier owner. A row another session holds (a stopped
 * zombie inside its journal write, until its session times out) is skipped, not waited
 * for: its partition is assigned on a later try and the others go on meanwhile. */
static const char SQL_OFFSETS_READ[] =
    "UPDATE kasir_offsets o SET epoch = o.epoch + 1, instance = $4 "
    "FROM (SELECT k.topic, k.partition FROM kasir_offsets k "
    "      JOIN unnest($2::text[], $3::int[]) AS u(t, p) ON k.topic = u.t AND k.partition = u.p "
    "      WHERE k.group_id = $1 FOR UPDATE OF k SKIP LOCKED) s "
    "WHERE o.group_id = $1 AND o.topic = s.topic AND o.partition = s.partition "
    "RETURNING o.topic, o.partition, o.next_offset, o.epoch";

struct part *wk_find_part(struct ks_worker *w, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < w->nparts; i++)
        if (w->parts[i].partition == partition && strcmp(w->parts[i].topic, topic) == 0)
            return &w->parts[i];
    return NULL;
}

/* Pauses (on) or resumes fetching of one partition and records it. */
void wk_set_paused(struct ks_worker *w, struct part *p, int on)
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
    if (!on)
        p->parked = 0;
}

static void release_held(struct ks_worker *w, struct part *p)
{
    for (size_t i = 0; i < p->nheld; i++)
        rd_kafka_message_destroy(p->held[i]);
    p->nheld = 0;
    p->front = 0;
    if (p->paused)
        wk_set_paused(w, p, 0);
}

void wk_clear_parts(struct ks_worker *w)
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

/* For one of this worker's retry topics (a subscribed topic's ks_retry_topic for one of
 * its delays) the length of the subscribed topic; else 0. Compared whole, never found by
 * searching for ".retry.": a main topic may hold ".retry." in its name (test 140). */
static size_t is_retry_topic(const struct ks_worker *w, const char *topic)
{
    char name[300];

    for (size_t i = 0; i < w->ntopics; i++)
        for (size_t k = 0; k < w->ndelays; k++) {
            ks_retry_topic(name, sizeof(name), w->topics[i], w->delay_names[k]);
            if (strcmp(name, topic) == 0)
                return strlen(w->topics[i]);
        }
    return 0;
}

void wk_pg_down(struct ks_worker *w, const struct ks_err *err)
{
    if (w->pg_up)
        ks_log(KS_LOG_WARN, "worker.pg.down", err ? err->msg : "postgresql unreachable",
               NULL);
    w->pg_up = 0;
    ks_metric_set(w->m_pg_up, 0);
}

/* Connects or reconnects *dbp and gives the session the worker's timeouts (a fresh
 * session, so nothing a handler may have SET survives). 1 when usable. */
int wk_pg_open(struct ks_worker *w, struct ks_db **dbp, struct ks_err *err)
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

int wk_pg_ensure(struct ks_worker *w)
{
    struct ks_err err = {0};

    if (w->db && ks_db_ok(w->db)) {
        return 1;
    }
    if (!wk_pg_open(w, &w->db, &err)) {
        wk_pg_down(w, &err);
        return 0;
    }
    w->pg_up = 1;
    ks_metric_set(w->m_pg_up, 1);
    return 1;
}

static void arrays_of_parts(struct ks_worker *w, struct ks_pgarr *t, struct ks_pgarr *p)
{
    for (size_t i = 0; i < w->nparts; i++) {
        if (w->parts[i].assigned)
            continue;
        ks_pgarr_text(t, w->parts[i].topic);
        ks_pgarr_int(p, w->parts[i].partition);
    }
}

/* A stored position the partition's log no longer reaches: the topic was deleted and
 * created again, or the cluster replaced or its log truncated, while PostgreSQL kept
 * kasir_offsets. Beyond the end, the position filter would drop everything the log now
 * holds as processed (test 150); before the start, retention removed messages unread.
 * Either way the position becomes the log's start, in kasir_offsets itself (fenced by
 * the epoch this sync just took, so a later re-sync reads it and nothing in memory can be
 * forgotten), and what is still in the log is read again: inputs are applied once by their
 * message ids or natural keys. Logged as an error and counted. The broker is asked within
 * a bounded time; a partition it does not answer for keeps its position (a fetch out of
 * range then comes back as an error, auto.offset.reset being "error", and the assignment
 * is taken again a second later: wk_collect). */
#define LOG_CHECK_BUDGET_MS 5000

static const char SQL_OFFSETS_TO_LOG[] =
    "UPDATE kasir_offsets SET next_offset = $6, instance = $7, updated_at = now() "
    "WHERE group_id = $1 AND topic = $2 AND partition = $3 AND next_offset = $4 "
    "AND epoch = $5";

static void check_against_log(struct ks_worker *w, PGconn *pg)
{
    int64_t until = ks_clock_mono_us() / 1000 + LOG_CHECK_BUDGET_MS;
    size_t first = w->nparts ? w->log_check_next++ % w->nparts : 0;

    /* from a different partition each time: a few whose leader does not answer within the
     * budget do not keep the others from ever being checked */
    for (size_t k = 0; k < w->nparts; k++) {
        struct part *pp = &w->parts[(first + k) % w->nparts];
        int64_t lo = -1, hi = -1, left = until - ks_clock_mono_us() / 1000;
        char stored[24], start[24], end[24], part[16], epoch[24];
        const char *event, *why;
        PGresult *res;
        int moved;

        if (!pp->check_log || !pp->assigned || pp->expected < 0 || left <= 0)
            continue;
        if (rd_kafka_query_watermark_offsets(w->rk, pp->topic, pp->partition, &lo, &hi,
                                             left > 1000 ? 1000 : (int)left) !=
                RD_KAFKA_RESP_ERR_NO_ERROR ||
            lo < 0 || hi < 0)
            continue;
        if (pp->expected <= hi && pp->expected >= lo)
            continue;
        snprintf(stored, sizeof(stored), "%" PRId64, pp->expected);
        snprintf(start, sizeof(start), "%" PRId64, lo);
        snprintf(end, sizeof(end), "%" PRId64, hi);
        snprintf(part, sizeof(part), "%d", (int)pp->partition);
        snprintf(epoch, sizeof(epoch), "%" PRId64, pp->epoch);
        {
            const char *params[7] = {w->group, pp->topic, part, stored, epoch, start,
                                     w->instance};
            res = PQexecParams(pg, SQL_OFFSETS_TO_LOG, 7, NULL, params, NULL, NULL, 0);
        }
        moved = PQresultStatus(res) == PGRES_COMMAND_OK && strcmp(PQcmdTuples(res), "1") == 0;
        if (!moved) { /* another owner moved it meanwhile, or PostgreSQL failed: as stored */
            event = "worker.position_outside_log.not_moved";
            why = PQresultStatus(res) == PGRES_COMMAND_OK
                      ? "a position outside the log was moved by another owner meanwhile"
                      : PQresultErrorMessage(res);
        } else if (pp->expected > hi) {
            event = "worker.position_beyond_log";
            why = "the stored position is beyond the end of the partition's log (topic "
                  "created again? log truncated?): reading the log from its start";
        } else {
            event = "worker.position_before_log";
            why = "retention removed messages of this partition before they were processed: "
                  "reading from the log's start";
        }
        ks_log(moved ? KS_LOG_ERROR : KS_LOG_WARN, event, why, "group", w->group, "topic",
               pp->topic, "partition", part, "stored", stored, "log_start", start, "log_end",
               end, NULL);
        PQclear(res);
        if (!moved)
            continue;
        ks_metric_add(w->m_outside_log, 1);
        pp->expected = lo;
        pp->taken = 0; /* nothing of it is in hand (check_log) */
    }
}

/* Reads the positions of every assigned partition from kasir_offsets (creating missing
 * rows) and assigns them there. Returns 0 on success. */
int wk_sync_assignment(struct ks_worker *w)
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
        w->npending = 0;
        return 0;
    }
    if (!wk_pg_ensure(w))
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
    /* checked against the log: the partitions this sync assigns, not those kept assigned
     * (a re-sync while another session holds a row): nothing of theirs is in hand, while
     * a kept partition may have a batch in hand whose fence would pass a moved position */
    for (size_t i = 0; i < w->nparts; i++)
        w->parts[i].check_log = !w->parts[i].assigned;
    for (int i = 0; i < PQntuples(res); i++) {
        struct part *pp = wk_find_part(w, PQgetvalue(res, i, 0),
                                    (int32_t)strtol(PQgetvalue(res, i, 1), NULL, 10));
        if (pp) {
            pp->expected = strtoll(PQgetvalue(res, i, 2), NULL, 10);
            pp->epoch = strtoll(PQgetvalue(res, i, 3), NULL, 10);
            pp->assigned = 1;
        }
    }
    check_against_log(w, pg);
    l = rd_kafka_topic_partition_list_new((int)w->nparts);
    w->npending = 0;
    for (size_t i = 0; i < w->nparts; i++) {
        struct part *pp = &w->parts[i];
        if (!pp->assigned) {
            w->npending++;
            continue;
        }
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
    if (w->npending)
        ks_logf(KS_LOG_WARN, "worker.assign_pending",
                "%zu partition(s) held by another session's lock on kasir_offsets; the rest "
                "assigned, those retried", w->npending);
    else
        ks_log(KS_LOG_INFO, "worker.assigned", "partitions assigned at stored offsets",
               "group", w->group, NULL);
    rc = 0;
out:
    if (rc != 0) {
        /* PostgreSQL is down only when the connection is gone */
        if (!ks_db_ok(w->db))
            wk_pg_down(w, &err);
        else
            ks_log(KS_LOG_WARN, "worker.assign_failed", err.msg, NULL);
    }
    PQclear(res);
    if (l)
        rd_kafka_topic_partition_list_destroy(l);
    ks_pgarr_release(&t);
    ks_pgarr_release(&p);
    return rc;
}

/* Stops fetching until positions are read again: after an outage or a lost fence. */
void wk_unsync(struct ks_worker *w)
{
    for (size_t i = 0; i < w->nparts; i++) {
        release_held(w, &w->parts[i]);
        w->parts[i].assigned = 0;
        w->parts[i].taken = 0; /* nothing in hand: everything is read again */
    }
    rd_kafka_assign(w->rk, NULL);
    w->synced = 0;
    w->npending = 0;
    w->generation++;
}

/* A fatal consumer error (in 2.0.2: another process joined with our group.instance.id):
 * this instance no longer owns anything. Stop at once, commit nothing more, exit 3 so a
 * supervisor sees it; the fence protects what a zombie batch might still try. */
void wk_consumer_fatal(struct ks_worker *w, const char *why)
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

void wk_on_consumer_error(rd_kafka_t *rk, int e, const char *reason, void *opaque)
{
    (void)rk;
    if (e == RD_KAFKA_RESP_ERR__FATAL)
        wk_consumer_fatal(opaque, reason);
    else
        ks_log(KS_LOG_DEBUG, "worker.consumer.error", reason, NULL);
}

void wk_on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                         rd_kafka_topic_partition_list_t *l, void *opaque)
{
    struct ks_worker *w = opaque;

    /* the batch whose tail is in flight commits (or not) before positions move */
    wk_settle(w);
    w->generation++;
    if (e == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        wk_clear_parts(w);
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
        w->fence_until = 0;
        if (!w->halted && wk_sync_assignment(w) != 0)
            w->next_sync = 0;
    } else {
        ks_logf(KS_LOG_INFO, "worker.rebalance.revoke", "%d partitions revoked", l->cnt);
        /* outputs of committed batches reach Kafka before the next owner emits outputs of
         * later inputs: per key, outputs stay in input order across a hand-over */
        ks_outbox_flush(w->ob, 10000);
        for (size_t i = 0; i < w->nparts; i++)
            release_held(w, &w->parts[i]);
        rd_kafka_assign(rk, NULL);
        wk_clear_parts(w);
        w->synced = 0;
    }
}

/* Holds r behind p's held copies, or (front) before those left after a batch took the
 * first ones: a copy taken from held and put back is older than every one still there. */
void wk_hold(struct ks_worker *w, struct part *p, rd_kafka_message_t *r, int front)
{
    if (p->nheld == p->capheld) {
        size_t nc = p->capheld ? p->capheld * 2 : 64;
        rd_kafka_message_t **nh = realloc(p->held, nc * sizeof(*nh));
        if (!nh) {
            /* cannot hold it: drop it and re-read everything from PostgreSQL */
            rd_kafka_message_destroy(r);
            wk_unsync(w);
            return;
        }
        p->held = nh;
        p->capheld = nc;
    }
    if (front) {
        if (p->front > p->nheld)
            p->front = p->nheld; /* released meanwhile (out of memory: wk_unsync) */
        memmove(p->held + p->front + 1, p->held + p->front,
                (p->nheld - p->front) * sizeof(*p->held));
        p->held[p->front++] = r;
        p->nheld++;
    } else {
        p->held[p->nheld++] = r;
    }
    if (r->offset < p->taken)
        p->taken = r->offset; /* not in hand: a re-assignment's copy of it is wanted */
    if (!p->paused) {
        /* stop fetching this partition until the head is due; what is held is kept */
        wk_set_paused(w, p, 1);
        ks_logf(KS_LOG_DEBUG, "worker.retry.hold", "%s [%d] paused until %" PRId64, p->topic,
                (int)p->partition, p->due_ms);
    }
}

/* A failed look-up of the end offsets waits on the loop thread (up to 500 ms) and unparks
 * everything: parking again at once would repeat that wait every few seconds while a broker
 * does not answer, so the retry partitions stay fetched this long */
#define PARK_FAILED_BACKOFF_MS 30000

/* Resumes the parked partitions of l whose end moved past where they were parked (all of
 * them if the end offsets cannot be read: -1, else 0). */
static int unpark(struct ks_worker *w, rd_kafka_topic_partition_list_t *l)
{
    if (rd_kafka_offsets_for_times(w->rk, l, 500) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (size_t i = 0; i < w->nparts; i++)
            if (w->parts[i].parked)
                wk_set_paused(w, &w->parts[i], 0);
        ks_log(KS_LOG_DEBUG, "worker.retry.unpark", "end offsets unreadable: every retry "
               "partition fetched again", NULL);
        return -1;
    } else {
        for (int i = 0; i < l->cnt; i++) {
            const rd_kafka_topic_partition_t *e = &l->elems[i];
            struct part *p = wk_find_part(w, e->topic, e->partition);
            if (p && p->parked && (e->err || e->offset < 0 || e->offset > p->park_end))
                wk_set_paused(w, p, 0);
        }
    }
    return 0;
}

/* Parks the retry partitions that have nothing to read and unparks those that got some.
 * Every fetch names every partition the consumer fetches, and the broker's work per fetch
 * grows with them; the retry topics are most of a worker's partitions and nearly always
 * empty. A partition is parked (paused) once everything up to its end is processed (its
 * PostgreSQL position at least its last known end offset), and resumed when one request
 * for the end offsets of all parked partitions (ListOffsets, latest) finds one beyond where
 * it was parked. Pausing keeps the fetch position, so nothing is skipped; a retry copy
 * waits at most w->park_ms more on top of its delay. If the end offsets cannot be read,
 * every parked partition is resumed: fetching is the safe default. */
int64_t wk_retry_park(struct ks_worker *w)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    int64_t parked = 0, next = w->park_ms;

    if (!w->rk || !w->synced)
        return next;
    for (size_t i = 0; i < w->nparts; i++) {
        struct part *p = &w->parts[i];
        int64_t lo = -1, hi = -1;

        if (!p->retry_topic || !p->assigned || p->nheld)
            continue;
        if (p->parked) {
            if (!l)
                l = rd_kafka_topic_partition_list_new(8);
            /* the offsets_for_times "timestamp" -1 asks for the latest offset: the end */
            rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset = -1;
            continue;
        }
        if (p->paused ||
            rd_kafka_get_watermark_offsets(w->rk, p->topic, p->partition, &lo, &hi) != 0 ||
            hi < 0)
            continue;
        /* nothing processed yet: empty only if nothing was ever there to read */
        if (p->expected >= 0 ? p->expected >= hi : lo == hi) {
            wk_set_paused(w, p, 1);
            p->parked = 1;
            p->park_end = p->expected > hi ? p->expected : hi;
        }
    }
    if (l) {
        if (unpark(w, l) != 0)
            next = PARK_FAILED_BACKOFF_MS;
        rd_kafka_topic_partition_list_destroy(l);
    }
    for (size_t i = 0; i < w->nparts; i++)
        parked += w->parts[i].parked;
    ks_metric_set(w->m_retry_parked, parked);
    return next;
}
