/* kasir-consume - test tool: a topic from the beginning, one JSON line per message.
 *
 *   kasir-consume [--brokers B] --topic T [--max N] [--idle-ms M] [--follow]
 * Reads every partition (assign, no group membership, nothing committed) and prints
 *   {"topic","partition","offset","timestamp","key","headers":{},"schema","value"}
 * with value decoded to JSON, or "raw_base64" (and "error") when it does not decode.
 * Stops after N messages, or when every partition reached the end it had at start (unless
 * --follow), or after M ms without a message (default 5000). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/crypto.h"
#include "lib/kafka.h"
#include "lib/serde.h"
#include "lib/banned.h"

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void print_msg(const rd_kafka_message_t *m)
{
    json_t *o = json_object(), *hs = json_object(), *v = NULL;
    rd_kafka_headers_t *h = NULL;
    rd_kafka_timestamp_type_t tt;
    const struct ks_schema *w = NULL;
    struct ks_err err = {0};
    const char *name;
    const void *val;
    size_t vlen;
    char *s;

    json_object_set_new(o, "topic", json_string(rd_kafka_topic_name(m->rkt)));
    json_object_set_new(o, "partition", json_integer(m->partition));
    json_object_set_new(o, "offset", json_integer(m->offset));
    json_object_set_new(o, "timestamp", json_integer(rd_kafka_message_timestamp(m, &tt)));
    json_object_set_new(o, "key", m->key ? json_stringn(m->key, m->key_len) : json_null());
    if (rd_kafka_message_headers(m, &h) == 0)
        for (size_t i = 0; rd_kafka_header_get_all(h, i, &name, &val, &vlen) == 0; i++)
            json_object_set_new(hs, name, val ? json_stringn(val, vlen) : json_null());
    json_object_set_new(o, "headers", hs);
    if (m->payload && ks_serde_decode(m->payload, m->len, &w, &v, &err) == KS_OK) {
        json_object_set_new(o, "schema", json_string(ks_schema_name(w)));
        json_object_set_new(o, "value", v);
    } else {
        char *b64 = malloc(ks_b64_enclen(m->len) + 1);
        if (b64) {
            ks_b64_encode(m->payload, m->len, b64);
            json_object_set_new(o, "raw_base64", json_string(b64));
            free(b64);
        }
        json_object_set_new(o, "error", json_string(m->payload ? err.msg : "no value"));
    }
    s = json_dumps(o, JSON_COMPACT);
    if (s) {
        fputs(s, stdout);
        fputc('\n', stdout);
        free(s);
    }
    json_decref(o);
}

int main(int argc, char **argv)
{
    const char *brokers = getenv("KASIR_KAFKA_BROKERS"), *topic = NULL;
    long max = -1, count = 0;
    long long idle = 5000, last;
    int follow = 0, nparts, done = 0;
    struct ks_err err = {0};
    char group[64];
    rd_kafka_conf_t *conf;
    rd_kafka_t *rk;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt;
    rd_kafka_topic_partition_list_t *l;
    int64_t *end;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--brokers") == 0 && i + 1 < argc)
            brokers = argv[++i];
        else if (strcmp(argv[i], "--topic") == 0 && i + 1 < argc)
            topic = argv[++i];
        else if (strcmp(argv[i], "--max") == 0 && i + 1 < argc)
            max = strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--idle-ms") == 0 && i + 1 < argc)
            idle = strtoll(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--follow") == 0)
            follow = 1;
        else
            topic = NULL, i = argc;
    }
    if (!topic) {
        fprintf(stderr, "usage: kasir-consume [--brokers B] --topic T [--max N] [--idle-ms M] "
                        "[--follow]\n");
        return 2;
    }
    if (ks_serde_init(&err) != KS_OK) {
        fprintf(stderr, "kasir-consume: %s\n", err.msg);
        return 1;
    }
    conf = ks_kafka_conf_new(brokers ? brokers : "127.0.0.1:9092", "consumer", NULL, &err);
    if (!conf) {
        fprintf(stderr, "kasir-consume: %s\n", err.msg);
        return 1;
    }
    /* a group id only because the consumer API wants one; it never joins (assign) */
    snprintf(group, sizeof(group), "kasir-consume-%d-%lld", (int)getpid(), mono_ms());
    rd_kafka_conf_set(conf, "group.id", group, NULL, 0);
    rd_kafka_conf_set(conf, "fetch.wait.max.ms", "50", NULL, 0);
    if (!(rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, NULL, 0))) {
        fprintf(stderr, "kasir-consume: could not create consumer\n");
        return 1;
    }
    rd_kafka_poll_set_consumer(rk);
    rkt = rd_kafka_topic_new(rk, topic, NULL);
    if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) != 0 || md->topic_cnt != 1 ||
        md->topics[0].err) {
        fprintf(stderr, "kasir-consume: no such topic %s\n", topic);
        return 1;
    }
    nparts = md->topics[0].partition_cnt;
    l = rd_kafka_topic_partition_list_new(nparts);
    end = calloc((size_t)nparts + 1, sizeof(*end));
    for (int p = 0; p < nparts; p++) {
        int64_t lo = 0, hi = 0;
        int32_t id = md->topics[0].partitions[p].id;
        rd_kafka_resp_err_t werr = RD_KAFKA_RESP_ERR_UNKNOWN;

        for (int t = 0; t < 3 && werr != RD_KAFKA_RESP_ERR_NO_ERROR; t++)
            werr = rd_kafka_query_watermark_offsets(rk, topic, id, &lo, &hi, 10000);
        /* an end not known is never reached: that partition is read until --idle-ms */
        end[id < nparts ? id : 0] = werr ? -1 : hi;
        if (!werr && hi <= lo)
            done++;
        rd_kafka_topic_partition_list_add(l, topic, id)->offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    rd_kafka_metadata_destroy(md);
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    last = mono_ms();
    while ((max < 0 || count < max) && (follow || done < nparts)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) {
            if (mono_ms() - last > idle)
                break;
            continue;
        }
        if (m->err) {
            rd_kafka_message_destroy(m);
            continue;
        }
        last = mono_ms();
        print_msg(m);
        count++;
        if (m->partition < nparts && m->offset + 1 == end[m->partition])
            done++;
        rd_kafka_message_destroy(m);
    }
    fflush(stdout);
    free(end);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    ks_serde_shutdown();
    return 0;
}
