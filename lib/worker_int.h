/* worker_int.h - the worker runtime's private header: the structs every part of the
 * runtime shares and the functions they call across files (prefix wk_). Only lib/worker*.c
 * include it; daemons see lib/worker.h alone.
 *
 * The runtime, by concern:
 *   worker.c       the loop and life cycle: settings, health, metrics, housekeeping, main;
 *   worker_part.c  partitions: positions in kasir_offsets, assignment, pause/hold, rebalance;
 *   worker_msg.c   messages: collect, decode, header trust, ids, outputs (ks_batch_emit);
 *   worker_fail.c  failure routing: retry and DLQ copies, what a failed batch means;
 *   worker_tx.c    the batch's transaction and its tail, savepoints, the journal. */
#ifndef KS_WORKER_INT_H
#define KS_WORKER_INT_H

#include <signal.h>
#include <stdint.h>

#include "clock.h"
#include "db.h"
#include "headers.h"
#include "httpd.h"
#include "metrics.h"
#include "outbox.h"
#include "pgarr.h"
#include "retry.h"
#include "trace.h"
#include "worker.h"

#define MAX_DELAYS 8
#define MAX_TOPICS 32

enum state { ST_LIVE, ST_FAILED, ST_SKIP };

struct part {
    char *topic;
    int32_t partition;
    size_t retry_topic;    /* for <topic>.retry.<delay> of ours: strlen(<topic>); else 0 */
    int64_t expected;      /* next_offset as in PostgreSQL; -1: nothing processed yet */
    int64_t epoch;         /* kasir_offsets.epoch when this instance took the partition */
    int check_log;         /* assigned by the sync in progress (check_against_log) */
    int assigned;          /* positions read and rd_kafka_assign'ed (see wk_sync_assignment) */
    int64_t batch_next;    /* during a batch: the offset after its last message here */
    int64_t taken;         /* the offset after the last message here in the batch in hand
                            * or the tail in flight: a copy below it that the consumer
                            * brings (a re-assignment fetches again) is one we have */
    size_t front;          /* copies a wk_prepare() put back at the head of held */
    rd_kafka_message_t **held; /* retry messages read before their due time, in order */
    size_t nheld, capheld;
    int64_t due_ms;
    int paused;
    int parked;            /* a retry partition paused because it had nothing to read ... */
    int64_t park_end;      /* ... up to this end offset (see wk_retry_park) */
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
    int claimed;    /* claim_id was claimed in kasir_processed in this transaction */
    int from_held;  /* taken from its partition's held copies (older than those left) */
    char claim_id[KS_ID_LEN]; /* what is claimed: the message id (spec.dedup), or for a
                               * retry copy its origin and attempt */
};

struct ks_batch {
    struct ks_worker *w;
    struct item *items;
    size_t n, cap;
    struct ks_msg **view; /* what the handler sees */
    size_t nview;
    int64_t first_ms; /* monotonic ms when its first item came: batch.wait counts from it */
    unsigned clears;  /* wk_batch_clear calls: items before a clear are gone */
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
    int64_t batch_wait_ms, batch_gap_ms, sweep_ms, min_age_ms;
    int64_t stmt_ms, lock_ms, idle_tx_ms, backoff_max_ms, dedup_keep_ms;
    int max_failures;

    struct ks_db *db;
    struct ks_db *jdb;   /* the journal's own connection (ks_batch_journal), lazily */
    struct ks_pg_stmt q_owned, q_owned_lock; /* the ownership checks, prepared on jdb */
    const char *dsn;
    int pg_up;           /* read by the HTTP thread: a plain int is enough for a hint */
    rd_kafka_t *rk;
    /* a handle per subscribed topic, held from the start: see topics_hold (worker.c) */
    rd_kafka_topic_t *rkts[MAX_TOPICS * (1 + MAX_DELAYS)];
    size_t nrkts;
    struct ks_outbox *ob;
    struct ks_metrics *metrics;
    struct ks_httpd *httpd;

    struct part *parts;  /* the group's assignment to us */
    size_t nparts;
    int synced;          /* parts are rd_kafka_assign'ed at their PostgreSQL offsets */
    size_t npending;     /* of them, partitions whose kasir_offsets row was locked */
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
    int halted;          /* after a handler bug: nothing more is consumed, /healthz red */
    int fence_gen;       /* fenced: positions are read again only after a rebalance ... */
    int64_t fence_until; /* ... or after this time (wall ms; 0: not waiting) */
    int env_fail;        /* a statement failed for a reason no message is to blame for */
    int journal_fenced;  /* ks_batch_journal found the partition taken: drop the batch */
    int64_t failed_backoff; /* ms before a failed batch is read again */
    int fail_streak;     /* batches failed in a row on a healthy server with fail_msg */
    char fail_msg[256];
    volatile sig_atomic_t fatal; /* the consumer hit a fatal error: stop, exit 3 */
    int64_t tail_t0, tail_sent; /* mono us: batch start, tail sent */
    uint64_t rng;
    int64_t next_sweep, next_lag, next_sync, sync_backoff, next_progress, next_purge;
    size_t log_check_next; /* where check_against_log starts next (worker_part.c) */
    int64_t park_ms, next_park; /* how often parked retry partitions are looked at */

    struct ks_metric *m_msgs, *m_batches, *m_lat, *m_retries, *m_dlq, *m_relayed,
        *m_relay_failed, *m_fenced, *m_journals, *m_pg_up, *m_skipped, *m_refetched,
        *m_outside_log, *m_infra, *m_failed_batches, *m_kafka_fatal, *m_parked, *m_retry_parked;
    uint64_t last_delivered, last_failed;
};

enum outcome {
    OUT_DONE,
    OUT_INFRA,
    OUT_FENCED,
    OUT_RETRY_ISOLATED,
    OUT_PENDING,
    OUT_FAILED,
    OUT_HALTED
};

/* loop and life cycle (worker.c) */
uint64_t wk_rnd64(struct ks_worker *w);
void wk_rnd_hex(struct ks_worker *w, char *out, size_t nbytes);

/* partitions, positions, pause/hold, rebalance (worker_part.c) */
struct part *wk_find_part(struct ks_worker *w, const char *topic, int32_t partition);
void wk_set_paused(struct ks_worker *w, struct part *p, int on);
void wk_clear_parts(struct ks_worker *w);
void wk_pg_down(struct ks_worker *w, const struct ks_err *err);
int wk_pg_open(struct ks_worker *w, struct ks_db **dbp, struct ks_err *err);
int wk_pg_ensure(struct ks_worker *w);
int wk_sync_assignment(struct ks_worker *w);
/* After a batch that did not commit (or a position the log no longer reaches): positions
 * come back from PostgreSQL and what was read is read again, after delay_ms. */
void wk_drop_and_resync(struct ks_worker *w, int64_t delay_ms);
void wk_unsync(struct ks_worker *w);
void wk_consumer_fatal(struct ks_worker *w, const char *why);
void wk_on_consumer_error(rd_kafka_t *rk, int e, const char *reason, void *opaque);
void wk_on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                     rd_kafka_topic_partition_list_t *l, void *opaque);
void wk_hold(struct ks_worker *w, struct part *p, rd_kafka_message_t *r, int front);
/* parks and unparks retry partitions; returns the ms until it should look again */
int64_t wk_retry_park(struct ks_worker *w);

/* message preparation, headers, ids, outputs (worker_msg.c) */
void wk_batch_clear(struct ks_batch *b);
void wk_derive_ids(struct ks_worker *w);
void wk_collect(struct ks_worker *w, int wait);
void wk_prepare(struct ks_worker *w, size_t from);
void wk_build_view(struct ks_batch *b);

/* failure routing (worker_fail.c) */
void wk_item_fail(struct item *it, const char *cls, const struct ks_err *err);
enum ks_code wk_failure_to_outbox(struct ks_worker *w, struct item *it, int64_t now,
                                  struct ks_err *err);
int64_t wk_batch_failed(struct ks_worker *w, const struct ks_err *err);
enum outcome wk_classify(struct ks_worker *w, const struct ks_err *err, const char *state,
                         int isolated);

/* the transaction and its tail (worker_tx.c) */
void wk_settle(struct ks_worker *w);
void wk_process(struct ks_worker *w);

#endif
