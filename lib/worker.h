/* worker.h - the consumer runtime: everything a Kasir worker daemon is built from.
 *
 * A daemon gives a struct ks_worker_spec (name, validate hook, batch or per-message
 * handler) and its config table; the runtime does the rest:
 *   - consumer-group loop over batches (worker.batch.max messages or worker.batch.wait ms);
 *   - offsets in PostgreSQL (kasir_offsets), written in the batch's transaction, read on
 *     assignment, fenced (kasir_offsets_advance: a row moves only from <expected>, else
 *     the transaction aborts: drop the batch, re-read positions from PostgreSQL); async
 *     Kafka commit afterwards so lag tools stay honest;
 *   - outputs through the outbox (kasir_outbox) in the same transaction, relayed by the
 *     idempotent producer after COMMIT, deleted on delivery, swept after a crash; a row
 *     Kafka refuses for itself (too large, bad topic) is parked in kasir_outbox_dead;
 *   - the failure policy below; SIGTERM/SIGINT: finish the batch, commit, leave the group,
 *     flush, exit 0; a fatal consumer error: exit 3; a fatal producer error: a new producer;
 *   - /metrics, /healthz, /readyz on http.port; W3C traceparent carried input -> outputs.
 *
 * Failures, one meaning each:
 *   - infrastructure: the PostgreSQL connection is lost (or the server shuts down). The
 *     batch is rolled back, fetching stops, the worker stays in the group, reconnects with
 *     backoff and re-runs the batch from the stored positions. Nothing is dead-lettered.
 *     /readyz reports PostgreSQL down only then.
 *   - anything else that fails a batch while PostgreSQL answers (a handler error, a
 *     statement error, a deferred constraint failing at COMMIT): the batch is re-run one
 *     message at a time, each under a savepoint with SET CONSTRAINTS ALL IMMEDIATE before
 *     its release, so the culprit fails alone and the rest commits. There a message's
 *     error with retriable = 1 (a PSP 503, a lock timeout) sends it to its retry topic
 *     (<topic>.retry.<delay>, exponential backoff with jitter, DLQ after
 *     worker.retry.max_attempts); retriable = 0 sends it to <topic>.dlq at once.
 *   - poison (undecodable) and invalid (validate hook) messages: <topic>.dlq at once.
 *   - a failure no message is to blame for (ks_db_environmental: an undefined function or
 *     column, a revoked privilege, a full disk), or a batch that fails even one message at
 *     a time: rolled back and re-run after an exponential backoff (worker.failure.
 *     backoff_max), nothing dead-lettered; after worker.health.max_failures failures in a
 *     row with the same SQLSTATE (or text) /healthz turns red so an orchestrator pages.
 *   - a message with a NUL inside any string: invalid (PostgreSQL text cannot hold it and
 *     a C string would be cut there).
 *
 * The transaction is the runtime's: a handler runs statements on the connection it is
 * given and never COMMIT, ROLLBACK, or a session-level SET (use SET LOCAL). A handler
 * that ends the transaction is a bug: its effects may have committed without the
 * positions, so the runtime logs it (worker.handler.bug), stops consuming and turns
 * /healthz red instead of running those inputs again. Handlers check statements with
 * ks_pg_check (lib/db.h), so that the SQLSTATE travels in the error. Worker sessions run with
 * statement_timeout, lock_timeout and idle_in_transaction_session_timeout (settings).
 *
 * Runtime headers (kasir.attempt, kasir.retry.*, kasir.origin.*, kasir.error.*) are read
 * only on this worker's own retry topics and only when the origin they name is the topic
 * the retry topic belongs to; on any other topic a message's origin is its own topic,
 * partition and offset and its attempt is 1, whatever headers it carries.
 *
 * Single-threaded: the handler runs on the thread that called ks_worker_run. */
#ifndef KS_WORKER_H
#define KS_WORKER_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#include "config.h"
#include "err.h"
#include "ids.h"
#include "metrics.h"

/* Settings. ks_worker_main loads one table made of ks_common_settings (pg.dsn,
 * kafka.brokers, log.level, http.port, instance.id), the runtime's own (below; group and
 * topics default to the spec's), then the daemon's table. Env KASIR_WORKER_GROUP etc.
 * override. instance.id set: static group membership (a restart after kill -9 gets its
 * partitions back at once); unset: dynamic membership, instance named <hostname>-<pid>. */
#define KS_WORKER_SETTINGS_COUNT 18
/* Fills out[0..KS_WORKER_SETTINGS_COUNT-1] with the runtime's settings. */
void ks_worker_settings(const char *group_default, const char *topics_default,
                        struct ks_config_def *out);

/* One input message, decoded. Owned by the runtime; valid while the batch is handled. */
struct ks_msg {
    const char *topic;        /* topic it was read from (a retry topic for a retry) */
    const char *origin_topic; /* the business topic: topic, or where a retry came from */
    int32_t partition;
    int64_t offset;
    int64_t timestamp_ms;     /* Kafka message timestamp, -1 if none */
    const void *key;          /* may be NULL */
    size_t key_len;
    const char *schema;       /* writer schema full name */
    json_t *value;            /* decoded payload; borrowed */
    char message_id[KS_ID_LEN]; /* header kasir.message_id, else derived from position */
    char trace_id[33];        /* W3C trace id (32 hex), from traceparent or new */
    int attempt;              /* 1 on first delivery, 2 on the first retry, ... */
    const rd_kafka_message_t *raw; /* headers etc.; borrowed */
};

struct ks_batch; /* opaque: the messages of one transaction and what they emit */
struct ks_worker; /* opaque */

/* Number of messages the handler is to process (decoded, valid, due). */
size_t ks_batch_count(const struct ks_batch *b);
/* The i-th of them, 0 <= i < ks_batch_count(b). */
struct ks_msg *ks_batch_msg(struct ks_batch *b, size_t i);

/* Fails one message; the rest of the batch goes on. err->retriable = 1: retry topic
 * (DLQ after the last attempt); else DLQ now. Outputs m emitted are dropped, its SQL
 * effects are NOT: call it only for decisions taken before any statement touched m (a
 * validation, a rule). After SQL that touched m, either run m's work through
 * ks_batch_run_msg (its effects are rolled back with it), or return the error from the
 * batch handler and the runtime re-runs the batch one message at a time. */
void ks_batch_fail(struct ks_batch *b, struct ks_msg *m, const struct ks_err *err);

/* Runs fn(b, m, pg, ctx, err) under a savepoint. When fn fails (or leaves the transaction
 * failed) its effects are rolled back to the savepoint and m is failed with its error
 * (ks_batch_fail); KS_OK is returned and the batch goes on. Returns an error only when
 * the transaction itself cannot go on (connection lost, savepoint refused): the batch
 * handler returns it. Per-message handlers (spec.handle_msg) always run this way. */
typedef enum ks_code (*ks_msg_fn)(struct ks_batch *b, struct ks_msg *m, PGconn *pg,
                                  void *ctx, struct ks_err *err);
enum ks_code ks_batch_run_msg(struct ks_batch *b, struct ks_msg *m, PGconn *pg, ks_msg_fn fn,
                              void *ctx, struct ks_err *err) __attribute__((warn_unused_result));

/* --- effects before an external call (the executor's journal) -------------------------
 * Commits one statement now, on a connection of its own, only while this instance owns
 * the partitions of msgs[0..n) (each counted once; n > 0, else KS_EINVAL): every
 * assignment bumps a partition's epoch in kasir_offsets, and the statement runs in a
 * transaction that first locks their rows at the epochs this instance read (FOR SHARE: a
 * new owner's assignment skips a locked row and tries again a second later). KS_ECONFLICT,
 * naming a partition, when another instance took any of them: nothing is committed and
 * the caller must not make the external calls. One call for all that a batch journals: a
 * commit (and a WAL flush) per input partition was most of the executor's batch time.
 * stmt is prepared on the journal's connection (ks_pg_exec), as is the ownership check.
 * The batch's own transaction is not affected (a journal row outlives a rolled-back
 * batch: make it idempotent, e.g. INSERT ... ON CONFLICT DO NOTHING on the attempt's
 * key). */
struct ks_pg_stmt; /* lib/db.h */
enum ks_code ks_batch_journal(struct ks_batch *b, const struct ks_msg *const *msgs, size_t n,
                              struct ks_pg_stmt *stmt, const char *const *params,
                              struct ks_err *err) __attribute__((warn_unused_result));
/* KS_OK while this instance owns m's partition (epoch unchanged), KS_ECONFLICT when not;
 * KS_EDB retriable when PostgreSQL cannot tell. For a check right before a side effect. */
enum ks_code ks_batch_owned(struct ks_batch *b, const struct ks_msg *m, struct ks_err *err)
    __attribute__((warn_unused_result));

/* Emits an output caused by m: Avro single-object encoding of value with schema_name,
 * written to the outbox in this batch's transaction. Its kasir.message_id is derived from
 * the worker name, m's message id, topic and the index of the output for m, so a re-run
 * emits the same ids. Headers: kasir.message_id, kasir.producer, kasir.cause (m's id),
 * traceparent (m's trace, new span). value is not stolen. KS_EINVAL when it does not fit
 * the schema, KS_ENOTFOUND for an unknown schema: bugs, returned so they can be logged. */
enum ks_code ks_batch_emit(struct ks_batch *b, struct ks_msg *m, const char *topic,
                           const void *key, size_t key_len, const char *schema_name,
                           const json_t *value, struct ks_err *err)
    __attribute__((warn_unused_result));
/* The message id ks_batch_emit will give the next output of m to topic. */
void ks_batch_next_id(struct ks_batch *b, const struct ks_msg *m, const char *topic,
                      char out[KS_ID_LEN]);

/* Handlers. Both run inside BEGIN ... COMMIT on pg (see "Failures" above for what a
 * returned error leads to). handle_msg runs once per message under ks_batch_run_msg. */
typedef enum ks_code (*ks_batch_fn)(struct ks_batch *b, PGconn *pg, void *ctx,
                                    struct ks_err *err);
/* Pure check of one decoded message before any SQL: KS_EINVAL (never retriable) sends it
 * to the DLQ with error class "invalid". */
typedef enum ks_code (*ks_validate_fn)(const struct ks_msg *m, void *ctx,
                                       struct ks_err *err);

struct ks_worker_spec {
    const char *name;           /* "demo": log svc, outbox owner, ids namespace */
    const char *group;          /* default of worker.group */
    const char *topics;         /* default of worker.topics ("a,b") */
    const char *http_port;      /* default of http.port ("8101"), or NULL */
    ks_validate_fn validate;    /* may be NULL */
    ks_batch_fn handle_batch;   /* one of handle_batch, handle_msg */
    ks_msg_fn handle_msg;
    int dedup;                  /* 1: skip inputs whose message id this group processed
                                 * (kasir_processed), for effects with no natural key.
                                 * Inputs read from a retry topic are always deduped: the
                                 * relay is at least once, so a retry copy can be there
                                 * twice. Main-topic inputs need a natural key (or dedup). */
    void *ctx;                  /* passed to the hooks */
    /* optional: called by ks_worker_main once the worker has stopped, before the Avro
     * catalogue is released, to stop the daemon's own threads that encode (the ledger's
     * publisher: it encoded with a freed catalogue at SIGTERM) */
    void (*stopped)(void *ctx);
};

/* Creates the worker from spec and cfg (loaded from the table ks_worker_main builds):
 * connects to PostgreSQL (retrying while it is unreachable), creates the consumer and the
 * producer, starts the HTTP server. NULL + err on a bad setting. */
struct ks_worker *ks_worker_new(const struct ks_worker_spec *spec, const struct ks_config *cfg,
                                struct ks_err *err);
/* Runs until ks_worker_stop; returns 0 after a clean shutdown. */
int ks_worker_run(struct ks_worker *w);
/* Test hook: makes the outbox producer raise a fatal error (rd_kafka_test_fatal_error),
 * as a fenced idempotent producer would. The runtime replaces the producer. */
void ks_worker_test_fatal(struct ks_worker *w);
/* Asks the loop to finish its batch and stop; async-signal-safe. */
void ks_worker_stop(struct ks_worker *w);
void ks_worker_free(struct ks_worker *w); /* NULL ok */

/* The whole main() of a daemon: "-c file" option, config load (all problems printed),
 * logging, serde, SIGTERM/SIGINT handlers, new, run, free. Returns the exit code. */
int ks_worker_main(const struct ks_worker_spec *spec, const struct ks_config_def *defs,
                   size_t ndefs, int argc, char **argv);
/* The whole settings table ks_worker_main loads for spec: ks_common_settings (http.port
 * defaulting to the spec's), the runtime's (group and topics from the spec), then defs.
 * For a daemon's tools and start-up checks, which must read exactly the daemon's settings.
 * malloc'd (total entries): free it after the config loaded from it. NULL on no memory. */
struct ks_config_def *ks_worker_table(const struct ks_worker_spec *spec,
                                      const struct ks_config_def *defs, size_t ndefs,
                                      size_t *total);
/* The worker's Prometheus registry, for a daemon's own metrics in its hooks. */
struct ks_metrics *ks_worker_metrics(struct ks_worker *w);
/* The config of a running worker, for the daemon's own settings in its hooks. */
const struct ks_config *ks_worker_config(const struct ks_worker *w);
/* The worker of a batch (for ks_worker_config in handlers). */
struct ks_worker *ks_batch_worker(struct ks_batch *b);

/* --- the reader's half of exactly-once -------------------------------------------------
 * Claims ids[0..n-1] for consumer in kasir_processed with one INSERT ... ON CONFLICT DO
 * NOTHING; fresh[i] = 1 when ids[i] was not processed before (and now is, when the
 * caller's transaction commits). */
enum ks_code ks_dedup_claim(PGconn *pg, const char *consumer, const char *const *ids,
                            size_t n, unsigned char *fresh, struct ks_err *err)
    __attribute__((warn_unused_result));

#endif
