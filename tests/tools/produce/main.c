/* kasir-produce - test tool: JSON lines on stdin -> Avro single-object messages in Kafka.
 *
 *   kasir-produce [--brokers B] [--topic T] < lines
 * Each line: {"topic": T, "key": K, "schema": "kasir.demo.DemoEvent", "value": {...},
 *             "headers": {"name": "value", ...}, "partition": P, "timestamp_ms": MS}
 *             ("headers_base64": {"name": "<base64>"} for values that are not text)
 * or, for bytes that are not Avro, {"topic": T, "key": K, "raw_base64": "..."}.
 * topic defaults to --topic; key, headers, partition and timestamp_ms (the message's
 * CreateTime; default now) are optional. The producer is
 * idempotent; the tool waits for every delivery report and exits 1 if any message failed
 * or a line was bad (the line number is printed), else prints "produced N" on stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/crypto.h"
#include "lib/kafka.h"
#include "lib/serde.h"
#include "lib/banned.h"

static long delivered, failed;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    if (m->err) {
        if (failed++ < 5)
            fprintf(stderr, "kasir-produce: delivery failed: %s\n", rd_kafka_err2str(m->err));
    } else {
        delivered++;
    }
}

static int produce_line(rd_kafka_t *rk, const char *line, const char *def_topic, long lineno)
{
    json_error_t jerr;
    json_t *j = json_loads(line, 0, &jerr), *hv;
    const char *topic, *key, *schema, *raw, *hname;
    void *buf = NULL;
    size_t len = 0;
    struct ks_err err = {0};
    rd_kafka_headers_t *h = NULL;
    rd_kafka_resp_err_t e;
    int32_t part = RD_KAFKA_PARTITION_UA;
    int64_t ts = 0; /* librdkafka: 0 is now */
    int rc = -1;

    if (!j || !json_is_object(j)) {
        fprintf(stderr, "kasir-produce: line %ld: not a JSON object: %s\n", lineno, jerr.text);
        goto out;
    }
    topic = json_string_value(json_object_get(j, "topic"));
    if (!topic)
        topic = def_topic;
    key = json_string_value(json_object_get(j, "key"));
    schema = json_string_value(json_object_get(j, "schema"));
    raw = json_string_value(json_object_get(j, "raw_base64"));
    if (json_is_integer(json_object_get(j, "partition")))
        part = (int32_t)json_integer_value(json_object_get(j, "partition"));
    if (json_is_integer(json_object_get(j, "timestamp_ms")))
        ts = json_integer_value(json_object_get(j, "timestamp_ms"));
    if (!topic) {
        fprintf(stderr, "kasir-produce: line %ld: no topic\n", lineno);
        goto out;
    }
    if (raw) {
        size_t cap = strlen(raw) + 4;
        long n;
        if (!(buf = malloc(cap)) || (n = ks_b64_decode(raw, strlen(raw), buf, cap)) < 0) {
            fprintf(stderr, "kasir-produce: line %ld: bad raw_base64\n", lineno);
            goto out;
        }
        len = (size_t)n;
    } else {
        const struct ks_schema *s = schema ? ks_schema_by_name(schema) : NULL;
        if (!s) {
            fprintf(stderr, "kasir-produce: line %ld: unknown schema %s\n", lineno,
                    schema ? schema : "(none)");
            goto out;
        }
        if (ks_serde_encode(s, json_object_get(j, "value"), &buf, &len, &err) != KS_OK) {
            fprintf(stderr, "kasir-produce: line %ld: %s (%s)\n", lineno, err.msg, err.field);
            goto out;
        }
    }
    if (json_is_object(json_object_get(j, "headers")) ||
        json_is_object(json_object_get(j, "headers_base64"))) {
        h = rd_kafka_headers_new(8);
        json_object_foreach(json_object_get(j, "headers"), hname, hv)
            if (json_is_string(hv))
                rd_kafka_header_add(h, hname, -1, json_string_value(hv), -1);
        /* values that are not text (forged, non-UTF-8 headers in tests) */
        json_object_foreach(json_object_get(j, "headers_base64"), hname, hv) {
            const char *b64 = json_string_value(hv);
            size_t hl = b64 ? strlen(b64) : 0;
            unsigned char *hb = malloc(hl + 1);
            long dl = hb ? ks_b64_decode(b64, hl, hb, hl + 1) : -1;
            if (dl >= 0)
                rd_kafka_header_add(h, hname, -1, hb, (ssize_t)dl);
            free(hb);
        }
    }
    for (;;) {
        e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(part),
                              RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
                              RD_KAFKA_V_VALUE(buf, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
                              RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_TIMESTAMP(ts), RD_KAFKA_V_END);
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            break;
        rd_kafka_poll(rk, 20);
    }
    if (e) {
        fprintf(stderr, "kasir-produce: line %ld: %s\n", lineno, rd_kafka_err2str(e));
        goto out;
    }
    buf = NULL;
    h = NULL;
    rc = 0;
out:
    free(buf);
    if (h)
        rd_kafka_headers_destroy(h);
    json_decref(j);
    rd_kafka_poll(rk, 0);
    return rc;
}

int main(int argc, char **argv)
{
    const char *brokers = getenv("KASIR_KAFKA_BROKERS"), *topic = NULL;
    struct ks_err err = {0};
    rd_kafka_conf_t *conf;
    rd_kafka_t *rk;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long lineno = 0, sent = 0, bad = 0;
    int left;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--brokers") == 0 && i + 1 < argc)
            brokers = argv[++i];
        else if (strcmp(argv[i], "--topic") == 0 && i + 1 < argc)
            topic = argv[++i];
        else {
            fprintf(stderr, "usage: kasir-produce [--brokers B] [--topic T] < json-lines\n");
            return 2;
        }
    }
    if (ks_serde_init(&err) != KS_OK) {
        fprintf(stderr, "kasir-produce: %s\n", err.msg);
        return 1;
    }
    conf = ks_kafka_conf_new(brokers ? brokers : "127.0.0.1:9092", "producer", NULL, &err);
    if (!conf) {
        fprintf(stderr, "kasir-produce: %s\n", err.msg);
        return 1;
    }
    rd_kafka_conf_set(conf, "linger.ms", "20", NULL, 0);
    rd_kafka_conf_set(conf, "queue.buffering.max.messages", "1000000", NULL, 0);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    if (!(rk = ks_kafka_producer_new(conf, &err))) {
        fprintf(stderr, "kasir-produce: %s\n", err.msg);
        return 1;
    }
    while ((n = getline(&line, &cap, stdin)) > 0) {
        lineno++;
        if (n <= 1 || line[0] == '#')
            continue;
        if (produce_line(rk, line, topic, lineno) == 0)
            sent++;
        else
            bad++;
    }
    free(line);
    rd_kafka_flush(rk, 120000);
    left = rd_kafka_outq_len(rk);
    rd_kafka_destroy(rk);
    ks_serde_shutdown();
    fprintf(stderr, "produced %ld\n", delivered);
    if (bad || failed || left || delivered != sent) {
        fprintf(stderr, "kasir-produce: %ld bad lines, %ld failed, %d undelivered\n", bad,
                failed, left);
        return 1;
    }
    return 0;
}
