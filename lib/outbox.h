/* outbox.h - the transactional outbox (table kasir_outbox) and its relay.
 *
 * A worker adds output messages while it handles a batch, writes them with one COPY in
 * the batch's transaction (ks_outbox_commit_send), and after COMMIT hands them to the idempotent
 * producer (ks_outbox_relay). Delivery reports collect the ids of delivered rows; the next
 * transaction marks them sent by deleting them (ks_outbox_mark_write, then _mark_done
 * after its COMMIT), so the table holds only what may still be in flight.
 * Rows a crash left unsent are relayed again by ks_outbox_sweep. So every row reaches
 * Kafka at least once; readers dedup by the kasir.message_id header.
 * Not thread-safe: one worker thread drives it, delivery reports included. */
#ifndef KS_OUTBOX_H
#define KS_OUTBOX_H

#include <stddef.h>
#include <stdint.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#include "config.h"
#include "err.h"

struct ks_outbox; /* opaque */

/* owner: the worker name stored in each row (a worker sweeps only its own rows). Creates
 * the idempotent producer from brokers and the kafka.* settings of cfg (cfg is kept, for
 * ks_outbox_recreate: it must outlive ob). */
struct ks_outbox *ks_outbox_new(const char *owner, const char *brokers,
                                const struct ks_config *cfg, struct ks_err *err);
void ks_outbox_free(struct ks_outbox *ob, int flush_ms); /* NULL ok; flushes first */

/* Adds a pending row. value (malloc'd, may be NULL) and hdrs (may be NULL) are taken in
 * all cases. cause: a caller tag (the input's index) for ks_outbox_drop. */
enum ks_code ks_outbox_add(struct ks_outbox *ob, const char *topic, const void *key,
                           size_t key_len, void *value, size_t value_len,
                           rd_kafka_headers_t *hdrs, const char *message_id, long cause,
                           struct ks_err *err) __attribute__((warn_unused_result));
/* Drops pending rows added with cause. */
void ks_outbox_drop(struct ks_outbox *ob, long cause);

/* The end of a batch in one round trip: sends one query string made of the COPY of the
 * pending rows, the DELETE of the delivered ones (ks_outbox_mark_write's work) and then
 * rest (the caller's statements, e.g. its fence and COMMIT; may be NULL), streams the
 * COPY data and returns without waiting: the caller reads every result with
 * PQgetResult until NULL (meanwhile it may do work that does not use pg), then calls
 * ks_outbox_mark_done and ks_outbox_relay (committed) or ks_outbox_discard. On an error
 * here nothing more is to be read but what PQgetResult still returns. */
enum ks_code ks_outbox_commit_send(struct ks_outbox *ob, PGconn *pg, const char *rest,
                                   struct ks_err *err) __attribute__((warn_unused_result));
/* After COMMIT: produces the written rows and forgets them. */
void ks_outbox_relay(struct ks_outbox *ob);
/* After ROLLBACK: forgets the pending rows. */
void ks_outbox_discard(struct ks_outbox *ob);

/* Marks delivered rows sent, in the caller's transaction; after its COMMIT call
 * ks_outbox_mark_done(ob, 1), after a rollback ks_outbox_mark_done(ob, 0). */
enum ks_code ks_outbox_mark_write(struct ks_outbox *ob, PGconn *pg, struct ks_err *err)
    __attribute__((warn_unused_result));
void ks_outbox_mark_done(struct ks_outbox *ob, int committed);
/* Delivered rows not yet marked. */
size_t ks_outbox_delivered(const struct ks_outbox *ob);

/* Serves delivery reports (non-blocking when timeout_ms = 0). */
void ks_outbox_poll(struct ks_outbox *ob, int timeout_ms);
/* Waits up to timeout_ms for every in-flight message to be reported. */
void ks_outbox_flush(struct ks_outbox *ob, int timeout_ms);

/* Relays again up to limit unsent rows of this owner older than min_age_ms (autocommit,
 * outside any transaction); returns how many were produced in *n. */
enum ks_code ks_outbox_sweep(struct ks_outbox *ob, PGconn *pg, int64_t min_age_ms, int limit,
                             int *n, struct ks_err *err) __attribute__((warn_unused_result));
/* Parking: a row Kafka refused for itself (too large, unknown or invalid topic, not
 * authorized) after_n times, or refused at least once and older than age_ms, is moved to
 * kasir_outbox_dead by the sweep instead of being produced again. Defaults 10, 1 h. */
void ks_outbox_set_parking(struct ks_outbox *ob, int after_n, int64_t age_ms);
/* Rows parked since start. */
uint64_t ks_outbox_parked(const struct ks_outbox *ob);

/* 1 after the producer raised a fatal error (an idempotent producer fenced or out of
 * sequence): it will deliver nothing more. ks_outbox_recreate drops it (what it held
 * is still in kasir_outbox) and makes a new one; the next sweep re-sends every unsent
 * row. Call between batches (nothing pending). */
int ks_outbox_fatal(const struct ks_outbox *ob);
enum ks_code ks_outbox_recreate(struct ks_outbox *ob, struct ks_err *err)
    __attribute__((warn_unused_result));
/* Test hook: rd_kafka_test_fatal_error on the producer. */
void ks_outbox_test_fatal(struct ks_outbox *ob);

/* Counters since start: messages delivered, delivery failures. */
void ks_outbox_stats(const struct ks_outbox *ob, uint64_t *delivered, uint64_t *failed);

/* Header list <-> bytes, as stored in kasir_outbox.headers: per header a 2-byte name
 * length, the name, a 4-byte value length (0xffffffff: null value), the value; big
 * endian. encode returns a malloc'd buffer (NULL for no headers or no memory). */
void *ks_outbox_headers_encode(const rd_kafka_headers_t *hdrs, size_t *len);
rd_kafka_headers_t *ks_outbox_headers_decode(const void *buf, size_t len);

#endif
