/* kafka.c - see kafka.h */
#include <stdio.h>
#include <string.h>

#include "kafka.h"

struct prop_ctx {
    rd_kafka_conf_t *conf;
    struct ks_err *err;
    int failed;
};

static int conf_set(rd_kafka_conf_t *conf, const char *name, const char *value,
                    struct ks_err *err)
{
    char errstr[256];

    if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
        ks_err_set(err, KS_ECONFIG, 0, name, "kafka property %s rejected: %s", name, errstr);
        return -1;
    }
    return 0;
}

static void apply_prop(const char *prop, const char *value, void *opaque)
{
    struct prop_ctx *ctx = opaque;

    if (!ctx->failed && conf_set(ctx->conf, prop, value, ctx->err) != 0)
        ctx->failed = 1;
}

rd_kafka_conf_t *ks_kafka_conf_new(const char *brokers, const char *role,
                                   const struct ks_config *cfg, struct ks_err *err)
{
    return ks_kafka_conf_new_defaults(brokers, role, cfg, NULL, 0, err);
}

rd_kafka_conf_t *ks_kafka_conf_new_defaults(const char *brokers, const char *role,
                                            const struct ks_config *cfg,
                                            const char *const (*own)[2], size_t n_own,
                                            struct ks_err *err)
{
    /* Producers: idempotence gives acks=all, ordered retries and no duplicates from
     * internal retries; linger batches for throughput at a bounded latency cost.
     * Consumers: offsets live in PostgreSQL, so nothing is auto-committed or auto-stored;
     * range assignment because cooperative-sticky had fixes only after 2.0.2;
     * fetch.wait.max.ms 20, not 500: after an assignment the first fetch often carries only
     * an empty partition (a retry topic is ready first), the broker holds it the whole wait
     * and the partitions with messages wait behind it - half a second lost at every start
     * and rebalance. And a message waits up to this long for its fetch at every hop of the
     * pipeline: at 50 the three worker hops' waits alone were most of the end-to-end p99
     * bar (150 ms). An idle consumer asks 50 times a second instead of 2.
     * fetch.min.bytes 64 KiB, not 1: with 1, a consumer whose topics receive a steady flow
     * fetches again as soon as the last fetch returned, a few messages each time, and the
     * broker's work per fetch (every subscribed partition, retry topics included) was the
     * largest part of its CPU in the end-to-end bench; now a fetch returns when 64 KiB are
     * there or after the wait, and a worker's batch is what one fetch brought
     * (worker.batch.gap). */
    static const char *const producer_defaults[][2] = {
        {"enable.idempotence", "true"},
        {"acks", "all"},
        {"linger.ms", "2"},
        {"compression.type", "lz4"},
        {"message.timeout.ms", "30000"},
    };
    static const char *const consumer_defaults[][2] = {
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"auto.offset.reset", "earliest"},
        {"partition.assignment.strategy", "range"},
        {"enable.partition.eof", "false"},
        {"session.timeout.ms", "10000"},
        {"fetch.wait.max.ms", "20"},
        {"fetch.min.bytes", "65536"},
    };
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    struct prop_ctx ctx = {conf, err, 0};
    const char *const(*defs)[2];
    size_t n, i;

    if (strcmp(role, "producer") == 0) {
        defs = producer_defaults;
        n = sizeof(producer_defaults) / sizeof(producer_defaults[0]);
    } else {
        defs = consumer_defaults;
        n = sizeof(consumer_defaults) / sizeof(consumer_defaults[0]);
    }
    if (conf_set(conf, "bootstrap.servers", brokers, err) != 0)
        goto fail;
    for (i = 0; i < n; i++)
        if (conf_set(conf, defs[i][0], defs[i][1], err) != 0)
            goto fail;
    for (i = 0; i < n_own; i++)
        if (conf_set(conf, own[i][0], own[i][1], err) != 0)
            goto fail;
    if (cfg) {
        ks_config_kafka_props(cfg, apply_prop, &ctx);
        if (ctx.failed)
            goto fail;
    }
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

/* rd_kafka_new failed: its configuration (settings that contradict each other, TLS files it
 * cannot load: __INVALID_ARG) is a setting to mend; anything else (no thread could be
 * started) is the machine now, and worth a retry */
static void new_failed(struct ks_err *err, const char *what, const char *errstr)
{
    if (rd_kafka_last_error() == RD_KAFKA_RESP_ERR__INVALID_ARG)
        ks_err_set(err, KS_ECONFIG, 0, NULL, "could not create %s: %s", what, errstr);
    else
        ks_err_set(err, KS_EKAFKA, 1, NULL, "could not create %s: %s", what, errstr);
}

rd_kafka_t *ks_kafka_producer_new(rd_kafka_conf_t *conf, struct ks_err *err)
{
    char errstr[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));

    if (!rk) {
        rd_kafka_conf_destroy(conf);
        new_failed(err, "producer", errstr);
    }
    return rk;
}

rd_kafka_t *ks_kafka_consumer_new(rd_kafka_conf_t *conf, const char *group,
                                  const char *instance, struct ks_err *err)
{
    char errstr[512];
    rd_kafka_t *rk;

    if (conf_set(conf, "group.id", group, err) != 0 ||
        (instance && *instance && conf_set(conf, "group.instance.id", instance, err) != 0)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        new_failed(err, "consumer", errstr);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

enum ks_code ks_kafka_health(rd_kafka_t *rk, int timeout_ms, struct ks_err *err)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, NULL, &md, timeout_ms);
    int brokers;

    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        return ks_err_set(err, KS_EKAFKA, 1, NULL, "could not reach kafka: %s",
                          rd_kafka_err2str(e));
    brokers = md->broker_cnt;
    rd_kafka_metadata_destroy(md);
    if (brokers == 0)
        return ks_err_set(err, KS_EKAFKA, 1, NULL, "could not reach kafka: no brokers");
    return KS_OK;
}

int ks_kafka_producer_close(rd_kafka_t *rk, int flush_ms)
{
    int left;

    if (!rk)
        return 0;
    rd_kafka_flush(rk, flush_ms);
    /* rd_kafka_outq_len counts events waiting for a poll as well as messages: a broker
     * connection that failed during a short flush left an error event that would be
     * reported as an unconfirmed message. Serve them first (bounded: a broker that keeps
     * failing makes more, one per reconnect) */
    for (int i = 0; i < 64 && rd_kafka_poll(rk, 0) > 0; i++)
        ;
    left = rd_kafka_outq_len(rk);
    rd_kafka_destroy(rk);
    return left;
}

void ks_kafka_consumer_close(rd_kafka_t *rk)
{
    if (!rk)
        return;
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
}

const char *ks_kafka_header(const rd_kafka_message_t *m, const char *name, char *buf,
                            size_t len)
{
    rd_kafka_headers_t *hdrs = NULL;
    const void *val;
    size_t vlen;

    if (len == 0 || rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return NULL;
    if (rd_kafka_header_get_last(hdrs, name, &val, &vlen) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return NULL;
    if (vlen >= len)
        vlen = len - 1;
    if (vlen)
        memcpy(buf, val, vlen);
    buf[vlen] = '\0';
    return buf;
}
