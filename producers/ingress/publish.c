/* publish.c - the Kafka side: one idempotent producer (acks=all) and a thread that serves
 * its delivery reports. It carries the texts texts.c made and hands each delivery report to
 * the request's r->delivered (accept.c): what a report means for the answer is decided
 * there. A message's opaque is its struct ing_req. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/headers.h"
#include "lib/kafka.h"
#include "lib/log.h"
#include "producers/ingress/ingress.h"
#include "lib/banned.h"

static pthread_t poll_thread;
static int poll_started;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct ing_req *r = m->_private;
    (void)rk;
    (void)opaque;

    if (!r)
        return;
    if (m->err)
        ks_log(KS_LOG_WARN, "ingress.publish.failed", rd_kafka_err2str(m->err),
               "trace_id", r->trace_id, "topic", rd_kafka_topic_name(m->rkt), NULL);
    r->delivered(r, m->err ? rd_kafka_err2str(m->err) : NULL);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk;
    (void)opaque;
    ks_log(err == RD_KAFKA_RESP_ERR__FATAL ? KS_LOG_ERROR : KS_LOG_WARN, "ingress.kafka.error",
           reason, "error", rd_kafka_err2name((rd_kafka_resp_err_t)err), NULL);
}

/* librdkafka's own log lines, as JSON log lines (syslog levels: 0-3 error, 4 warn) */
static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    ks_log(level <= 3 ? KS_LOG_ERROR : level == 4 ? KS_LOG_WARN : level <= 6 ? KS_LOG_INFO
                                                                            : KS_LOG_DEBUG,
           "ingress.kafka.library", buf, "facility", fac, NULL);
}

static void *poll_main(void *arg)
{
    (void)arg;
    while (!ING.stopping)
        rd_kafka_poll(ING.rk, 50);
    return NULL;
}

/* The producer's settings of the ingress's own, applied as defaults: a kafka.* setting
 * overrides them under any of librdkafka's names for the property (test 226).
 * message.timeout.ms 5000: a client waits for the delivery report, so a broker outage
 * turns into a 503 within seconds, not after the library's 30 s default.
 * linger.ms 1: a group-commit writer produces its whole batch of claimed events in one
 * burst, spread over the topic's partitions; the millisecond lets a partition's batch take
 * in what arrives meanwhile (fewer, larger appends for the broker). Measured at 5,000
 * payments/s, side by side (docs/BENCHMARKS.md, session 15): against 0 ms, broker CPU -10
 * to -15 us and the ingress's -5 us per payment, p50 +1 ms, and p99 median 14.1 against
 * 18.7 ms over 12 runs each (on a box this busy the tail is queueing for the CPU, not the
 * wait). Session 4 chose 0 against 2 ms when the box had CPU to spare.
 * reconnect.backoff.max.ms 1000: after a broker restart the producer is back within a
 * second, not after the library's backoff of up to 10 s (requests meanwhile time out into
 * 503s).
 * compression.type none, not the other producers' lz4: a writer's burst gives each partition
 * a batch of a few events of ~0.5 KB, which lz4 barely shrinks, and librdkafka 2.0.2 sets up
 * an lz4 frame (a context and its tables) for every such batch: 3.9 % of the ingress's CPU
 * in perf at 5,000/s. Side by side at 5,000 payments/s (docs/BENCHMARKS.md, session 18,
 * five runs each, alternated): the ingress's CPU per payment 0.94 of lz4's, the broker's
 * and PostgreSQL's unchanged; the events take 1.2x the bytes in the topic's log. */
static const char *const producer_own[][2] = {
    {"message.timeout.ms", "5000"},
    {"linger.ms", "1"},
    {"reconnect.backoff.max.ms", "1000"},
    {"compression.type", "none"},
};

int ing_publish_start(void)
{
    struct ks_err e = {0};
    rd_kafka_conf_t *conf;

    conf = ks_kafka_conf_new_defaults(ks_config_str(ING.cfg, "kafka.brokers"), "producer",
                                      ING.cfg, producer_own,
                                      sizeof(producer_own) / sizeof(producer_own[0]), &e);
    if (!conf)
        goto fail;
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_log_cb(conf, on_log);
    rd_kafka_conf_set_error_cb(conf, on_error);
    ING.rk = ks_kafka_producer_new(conf, &e);
    if (!ING.rk)
        goto fail;
    if (pthread_create(&poll_thread, NULL, poll_main, NULL) != 0)
        return -1;
    poll_started = 1;
    return 0;
fail:
    ks_log(KS_LOG_ERROR, "ingress.kafka.init", e.msg, NULL);
    return -1;
}

void ing_publish_stop(void)
{
    if (poll_started) {
        pthread_join(poll_thread, NULL);
        poll_started = 0;
    }
    if (ING.rk) {
        int64_t ms = (ING.stop_by_us - ks_clock_mono_us()) / 1000;
        /* http.drain_timeout is at most 1 h: ms fits an int */
        int left = ks_kafka_producer_close(ING.rk, ms < 1000 ? 1000 : (int)ms);
        ING.rk = NULL;
        if (left)
            ks_logf(KS_LOG_ERROR, "ingress.kafka.unflushed", "%d messages not confirmed", left);
    }
}

int ing_produce_bytes(struct ing_req *r, const char *topic, const char *key, const void *buf,
                      size_t len, const char *msg_id, unsigned flags)
{
    int block = (flags & ING_PRODUCE_BLOCK) != 0;
    char tp[64];
    rd_kafka_resp_err_t e;

    snprintf(tp, sizeof(tp), "00-%s-%s-01", r->trace_id, r->span_id);
    if (flags & ING_PRODUCE_UPLOADER) {
        /* a settlement row says who uploaded it: the key and its partner (an operator's) */
        rd_kafka_headers_t *h = rd_kafka_headers_new(5);
        rd_kafka_header_add(h, KS_H_TRACEPARENT, -1, tp, -1);
        rd_kafka_header_add(h, KS_H_MESSAGE_ID, -1, msg_id, -1);
        rd_kafka_header_add(h, KS_H_PRODUCER, -1, "kasir-ingress", -1);
        rd_kafka_header_add(h, KS_H_UPLOADED_BY_KEY, -1, r->cred_id, -1);
        rd_kafka_header_add(h, KS_H_UPLOADED_BY_PARTNER, -1, r->partner_id, -1);
        e = rd_kafka_producev(ING.rk, RD_KAFKA_V_TOPIC(topic),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY |
                                                  (block ? RD_KAFKA_MSG_F_BLOCK : 0)),
                              RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE((void *)buf, len),
                              RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE(r), RD_KAFKA_V_END);
        if (e)
            rd_kafka_headers_destroy(h); /* owned by the message only when produced */
        goto out;
    }
    e = rd_kafka_producev(ING.rk, RD_KAFKA_V_TOPIC(topic),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY | (block ? RD_KAFKA_MSG_F_BLOCK : 0)),
                          RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE((void *)buf, len),
                          RD_KAFKA_V_HEADER(KS_H_TRACEPARENT, tp, (ssize_t)strlen(tp)),
                          RD_KAFKA_V_HEADER(KS_H_MESSAGE_ID, msg_id, (ssize_t)strlen(msg_id)),
                          RD_KAFKA_V_HEADER(KS_H_PRODUCER, "kasir-ingress", (ssize_t)13),
                          RD_KAFKA_V_OPAQUE(r), RD_KAFKA_V_END);
out:
    if (e) {
        ks_log(KS_LOG_WARN, "ingress.publish.refused", rd_kafka_err2str(e), "trace_id",
               r->trace_id, "topic", topic, NULL);
        return -1;
    }
    return 0;
}

int ing_produce(struct ing_req *r, void (*delivered)(struct ing_req *r, const char *err))
{
    r->delivered = delivered;
    return ing_produce_bytes(r, r->topic, r->msg_key, r->payload, r->payload_len, r->msg_id, 0);
}
