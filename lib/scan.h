/* scan.h - reading whole topics from a start position to the end: the tools' consumer.
 *
 * kasir-dlq reads every DLQ topic and kasir-tap any topic the same way: each partition
 * from the beginning, a timestamp or the end, up to the high watermark it had when the scan
 * started (so a scan ends even while producers keep writing), or forever with follow. No
 * group membership and nothing committed (partitions are assigned, not subscribed),
 * unless a group is given: then the group's committed offsets are the start (from only
 * says where a partition without one starts) and the caller commits with ks_scan_commit.
 * With a group the scan reads the partitions the group assigns it and ends when those
 * reached their ends; a partition assigned to another member counts as done, and is not
 * committed by this one. A scan joins only a group whose members all have its client.id
 * (other runs of the same tool): KS_ECONFLICT otherwise (a worker's group).
 * A topic name starting with '^' is a POSIX extended regular expression matched against
 * the cluster's topics ("^.*\\.dlq$": every DLQ).
 * Not thread-safe: one thread drives a scan. */
#ifndef KS_SCAN_H
#define KS_SCAN_H

#include <stddef.h>
#include <stdint.h>
#include <librdkafka/rdkafka.h>

#include "err.h"

enum ks_scan_from { KS_SCAN_BEGINNING, KS_SCAN_END, KS_SCAN_TIME };

struct ks_scan_opts {
    enum ks_scan_from from;
    int64_t from_ms;   /* KS_SCAN_TIME: first message with a timestamp >= from_ms */
    int follow;        /* 1: never ends, waits for new messages */
    const char *group; /* NULL: assign, commit nothing; else subscribe as this group */
    const char *client; /* with a group: the client.id of the scan (the tool's name) unless
                         * kafka.client.id sets one; the group's members must all have it */
};

/* Restricts a partition to offsets [start, end) (refs given on a command line). */
struct ks_scan_range {
    const char *topic;
    int32_t partition;
    int64_t start, end;
};

struct ks_scan; /* opaque */

/* Creates the consumer from conf (consumed, also on failure; its bootstrap.servers and
 * kafka.* settings as ks_kafka_conf_new made them) and assigns or subscribes. topics:
 * names or '^' patterns; ranges (may be NULL/0) restrict the scan to those partitions.
 * KS_ENOTFOUND when a named topic does not exist (a pattern may match none: the scan is
 * then empty); KS_ECONFIG when librdkafka refuses the configuration (TLS files, SASL);
 * KS_EKAFKA retriable when the cluster does not answer. */
struct ks_scan *ks_scan_new(rd_kafka_conf_t *conf, const char *const *topics, size_t ntopics,
                            const struct ks_scan_range *ranges, size_t nranges,
                            const struct ks_scan_opts *opts, struct ks_err *err);
void ks_scan_free(struct ks_scan *s); /* NULL ok; leaves the group if any */

/* The next message: 1 and *out (the caller destroys it with rd_kafka_message_destroy),
 * 0 when none came within timeout_ms, -1 at the end (every partition reached its end; never
 * with follow), -2 on a consumer error (err filled; partition EOFs are not errors). */
int ks_scan_next(struct ks_scan *s, int timeout_ms, rd_kafka_message_t **out,
                 struct ks_err *err);

/* Share of the messages between the starts and the ends already returned, 0..1 (0 with
 * follow or a group). */
double ks_scan_progress(const struct ks_scan *s);
/* Messages between the starts and the ends (an upper bound of what the scan returns). */
int64_t ks_scan_total(const struct ks_scan *s);

/* The topics the scan reads (patterns expanded), for messages about them. */
size_t ks_scan_topic_count(const struct ks_scan *s);
const char *ks_scan_topic(const struct ks_scan *s, size_t i);

/* With a group: commits (synchronously) the offsets after the last messages returned.
 * No-op without a group. */
enum ks_code ks_scan_commit(struct ks_scan *s, struct ks_err *err)
    __attribute__((warn_unused_result));

/* With a group: the caller could not take m (undecodable, not writable): its partition
 * stops at m. The commit for that partition stays at m's offset, so the group's next run
 * starts with m again; no later message of the partition is returned (it is paused, and
 * what was already fetched is dropped); the partition counts as done. No-op without a
 * group (nothing is committed, the scan goes on) or for a message the scan did not
 * return. */
void ks_scan_hold(struct ks_scan *s, const rd_kafka_message_t *m);

/* The consumer handle (metadata queries); owned by s. */
rd_kafka_t *ks_scan_handle(struct ks_scan *s);

/* Parses a point in time for --since/--until/--from: epoch milliseconds (digits only),
 * RFC 3339 ("2026-12-01T22:00:00Z", "...T22:00:00.250+07:00", or a bare date
 * "2026-12-01" = midnight UTC), or a duration back from now_ms ("90s", "30m", "2h", "7d").
 * 0 and *ms, or -1 when s is none of these or a time before 1970 (negative ms mean "none"
 * to the tools and "latest"/"earliest" to librdkafka). */
int ks_scan_parse_time(const char *s, int64_t now_ms, int64_t *ms);

#endif
