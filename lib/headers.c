/* headers.c - the kasir.* message headers and the failure headers of retry and DLQ
 * copies. See headers.h. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "headers.h"
#include "banned.h"

static int runtime_owned(const char *name)
{
    return strcmp(name, KS_H_ATTEMPT) == 0 || strcmp(name, KS_H_MESSAGE_ID) == 0 ||
           strcmp(name, KS_H_TRACEPARENT) == 0 || strncmp(name, "kasir.retry.", 12) == 0 ||
           strncmp(name, "kasir.origin.", 13) == 0 || strncmp(name, "kasir.error.", 12) == 0;
}

static void hdr_str(rd_kafka_headers_t *h, const char *name, const char *v)
{
    if (v)
        rd_kafka_header_add(h, name, -1, v, -1);
}

static void hdr_int(rd_kafka_headers_t *h, const char *name, int64_t v)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%" PRId64, v);
    rd_kafka_header_add(h, name, -1, buf, -1);
}

rd_kafka_headers_t *ks_headers_failure(const rd_kafka_headers_t *src, const struct ks_failure *f)
{
    rd_kafka_headers_t *h = rd_kafka_headers_new(24);
    const char *name;
    const void *val;
    size_t vlen;

    if (!h)
        return NULL;
    for (size_t i = 0; src && rd_kafka_header_get_all(src, i, &name, &val, &vlen) == 0; i++)
        if (!runtime_owned(name))
            rd_kafka_header_add(h, name, -1, val, val ? (ssize_t)vlen : 0);
    hdr_str(h, KS_H_MESSAGE_ID, f->message_id);
    hdr_str(h, KS_H_TRACEPARENT, f->traceparent);
    hdr_int(h, KS_H_ATTEMPT, f->attempt);
    hdr_str(h, KS_H_ORIGIN_TOPIC, f->origin_topic);
    hdr_int(h, KS_H_ORIGIN_PARTITION, f->origin_partition);
    hdr_int(h, KS_H_ORIGIN_OFFSET, f->origin_offset);
    hdr_int(h, KS_H_ORIGIN_TIMESTAMP, f->origin_timestamp_ms);
    hdr_str(h, KS_H_GROUP, f->group);
    hdr_str(h, KS_H_ERR_CLASS, f->error_class);
    if (f->err) {
        hdr_str(h, KS_H_ERR_CODE, ks_code_name(f->err->code));
        hdr_str(h, KS_H_ERR_MSG, f->err->msg);
        if (f->err->field[0])
            hdr_str(h, KS_H_ERR_FIELD, f->err->field);
    }
    hdr_int(h, KS_H_FIRST_FAILURE, f->first_failure_ms);
    hdr_int(h, KS_H_LAST_FAILURE, f->now_ms);
    hdr_str(h, KS_H_INSTANCE, f->instance);
    if (f->not_before_ms >= 0)
        hdr_int(h, KS_H_NOT_BEFORE, f->not_before_ms);
    return h;
}

rd_kafka_headers_t *ks_headers_output(const char *message_id, const char *producer,
                                      const char *cause, const char *traceparent)
{
    rd_kafka_headers_t *h = rd_kafka_headers_new(4);
    if (!h)
        return NULL;
    rd_kafka_header_add(h, KS_H_MESSAGE_ID, -1, message_id, -1);
    rd_kafka_header_add(h, KS_H_PRODUCER, -1, producer, -1);
    rd_kafka_header_add(h, KS_H_CAUSE, -1, cause, -1);
    rd_kafka_header_add(h, KS_H_TRACEPARENT, -1, traceparent, -1);
    return h;
}
