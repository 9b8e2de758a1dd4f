/* headers.h - the kasir.* Kafka headers: every name in one place (lib/README.md gives their
 * meaning), and the headers of a retry or dead-letter copy. */
#ifndef KS_HEADERS_H
#define KS_HEADERS_H

#include <stdint.h>
#include <librdkafka/rdkafka.h>

#include "err.h"

/* The headers of a retry or dead-letter copy: src's headers minus those the runtime
 * owns (kasir.attempt, kasir.retry.*, kasir.origin.*, kasir.error.*, traceparent,
 * kasir.message_id), then the fields of f. NULL on no memory. */
struct ks_failure {
    const char *message_id;    /* the input's id: a retried message keeps it */
    const char *traceparent;   /* carried on, or NULL */
    const char *origin_topic;  /* where the message first came in */
    int32_t origin_partition;
    int64_t origin_offset;
    int64_t origin_timestamp_ms;
    const char *group;
    const char *instance;
    const char *error_class;   /* poison, invalid, failed, exhausted, retry */
    const struct ks_err *err;
    int attempt;               /* attempts made so far, the failed one included */
    int64_t first_failure_ms;
    int64_t now_ms;
    int64_t not_before_ms;     /* retry copy: when it is due; -1 for the DLQ */
};
rd_kafka_headers_t *ks_headers_failure(const rd_kafka_headers_t *src, const struct ks_failure *f);

/* The headers of an output message: kasir.message_id, kasir.producer, kasir.cause (the
 * input's id) and traceparent (the input's trace, a new span). The worker runtime's outputs
 * carry exactly these (ks_batch_emit); a daemon that writes outbox rows some other way
 * (kasir-risk's held commands) uses the same. NULL on no memory. */
rd_kafka_headers_t *ks_headers_output(const char *message_id, const char *producer,
                                      const char *cause, const char *traceparent);

/* Header names (lib/README.md lists them with their meaning). */
#define KS_H_MESSAGE_ID "kasir.message_id"
#define KS_H_PRODUCER "kasir.producer"
#define KS_H_CAUSE "kasir.cause"
#define KS_H_TRACEPARENT "traceparent"
#define KS_H_UPLOADED_BY_KEY "kasir.uploaded_by.key"
#define KS_H_UPLOADED_BY_PARTNER "kasir.uploaded_by.partner"
#define KS_H_ATTEMPT "kasir.attempt"
#define KS_H_NOT_BEFORE "kasir.retry.not_before"
#define KS_H_ORIGIN_TOPIC "kasir.origin.topic"
#define KS_H_ORIGIN_PARTITION "kasir.origin.partition"
#define KS_H_ORIGIN_OFFSET "kasir.origin.offset"
#define KS_H_ORIGIN_TIMESTAMP "kasir.origin.timestamp"
#define KS_H_GROUP "kasir.error.group"
#define KS_H_ERR_CLASS "kasir.error.class"
#define KS_H_ERR_CODE "kasir.error.code"
#define KS_H_ERR_MSG "kasir.error.message"
#define KS_H_ERR_FIELD "kasir.error.field"
#define KS_H_FIRST_FAILURE "kasir.error.first_failure"
#define KS_H_LAST_FAILURE "kasir.error.last_failure"
#define KS_H_INSTANCE "kasir.error.instance"

#endif
