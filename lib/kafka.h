/* kafka.h - a thin librdkafka wrapper: configured clients, health, clean close, headers.
 *
 * Producers are always idempotent (enable.idempotence=true, so acks=all). Consumers never
 * auto-commit and use the range assignor (NOTES: cooperative-sticky bugs before 2.3).
 * Settings named "kafka.<prop>" in the daemon's config pass straight to librdkafka and
 * override the defaults here. */
#ifndef KS_KAFKA_H
#define KS_KAFKA_H

#include <stddef.h>
#include <librdkafka/rdkafka.h>

#include "config.h"
#include "err.h"

/* A conf with bootstrap.servers = brokers, the defaults above for the role, then every
 * kafka.* setting of cfg (cfg may be NULL). role: "producer" or "consumer". NULL + err on a
 * rejected property (the message names it). */
rd_kafka_conf_t *ks_kafka_conf_new(const char *brokers, const char *role,
                                   const struct ks_config *cfg, struct ks_err *err);

/* ks_kafka_conf_new with a daemon's own defaults (n name/value pairs) applied after the
 * role's and before cfg's settings: a configured value wins under any of librdkafka's
 * names for the property (linger.ms or queue.buffering.max.ms, message.timeout.ms or
 * delivery.timeout.ms), which a daemon matching names itself would miss. */
rd_kafka_conf_t *ks_kafka_conf_new_defaults(const char *brokers, const char *role,
                                            const struct ks_config *cfg,
                                            const char *const (*own)[2], size_t n_own,
                                            struct ks_err *err);

/* Creates an idempotent producer from conf (consumed, also on failure). Set a delivery
 * report callback on conf before, if wanted. A client librdkafka refuses for its
 * configuration (settings that contradict each other, TLS files it cannot load) is
 * KS_ECONFIG, for the consumer too (a worker exits 2, as for any other setting); one it
 * could not start (no thread) is KS_EKAFKA, retriable. */
rd_kafka_t *ks_kafka_producer_new(rd_kafka_conf_t *conf, struct ks_err *err);

/* Creates a consumer in group (group.instance.id = instance when not NULL) from conf
 * (consumed); the main queue is redirected to the consumer queue. */
rd_kafka_t *ks_kafka_consumer_new(rd_kafka_conf_t *conf, const char *group,
                                  const char *instance, struct ks_err *err);

/* Asks the cluster for metadata within timeout_ms: KS_EKAFKA retriable when unreachable. */
enum ks_code ks_kafka_health(rd_kafka_t *rk, int timeout_ms, struct ks_err *err)
    __attribute__((warn_unused_result));

/* Flushes for up to flush_ms, serves the events left, then destroys. NULL ok. Returns the
 * messages left unconfirmed (an event that arrives in the instant between the last poll and
 * the count is counted as one). */
int ks_kafka_producer_close(rd_kafka_t *rk, int flush_ms);
/* Leaves the group (rd_kafka_consumer_close), then destroys. NULL ok. */
void ks_kafka_consumer_close(rd_kafka_t *rk);

/* Copies header name of m into buf as a string; returns buf, or NULL when absent. */
const char *ks_kafka_header(const rd_kafka_message_t *m, const char *name, char *buf,
                            size_t len);

#endif
