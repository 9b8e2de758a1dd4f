/* kasir-topics - creates Kafka topics idempotently.
 *
 *   kasir-topics --brokers B --manifest deploy/topics.tsv
 *   kasir-topics --brokers B name[:partitions] ...
 * A topic that exists already is left as it is (partitions are never changed here: a
 * change of partition count moves keys between partitions and is an operator's decision). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/kafka.h"

#define MAX_TOPICS 512

struct topic {
    char name[250];
    int partitions;
    char retention[32];
    char cleanup[32];
};

static int parse_manifest(const char *path, struct topic *t, int max)
{
    FILE *f = fopen(path, "r");
    char line[512];
    int n = 0, lineno = 0;

    if (!f) {
        fprintf(stderr, "kasir-topics: cannot open %s\n", path);
        return -1;
    }
    while (fgets(line, sizeof(line), f)) {
        char *name, *parts, *ret, *clean, *save = NULL, *end;
        lineno++;
        if (line[0] == '#' || line[0] == '\n')
            continue;
        name = strtok_r(line, "\t\n", &save);
        parts = strtok_r(NULL, "\t\n", &save);
        ret = strtok_r(NULL, "\t\n", &save);
        clean = strtok_r(NULL, "\t\n", &save);
        if (!name || !parts || !ret || !clean || n >= max) {
            fprintf(stderr, "kasir-topics: %s:%d: expected 4 tab-separated columns\n", path,
                    lineno);
            fclose(f);
            return -1;
        }
        snprintf(t[n].name, sizeof(t[n].name), "%s", name);
        t[n].partitions = (int)strtol(parts, &end, 10);
        if (*end || t[n].partitions < 1) {
            fprintf(stderr, "kasir-topics: %s:%d: partitions must be a positive number\n",
                    path, lineno);
            fclose(f);
            return -1;
        }
        snprintf(t[n].retention, sizeof(t[n].retention), "%s", ret);
        snprintf(t[n].cleanup, sizeof(t[n].cleanup), "%s", clean);
        n++;
    }
    fclose(f);
    return n;
}

int main(int argc, char **argv)
{
    static struct topic topics[MAX_TOPICS];
    const char *brokers = getenv("KASIR_KAFKA_BROKERS");
    const char *manifest = NULL;
    struct ks_err err = {0};
    rd_kafka_conf_t *conf;
    rd_kafka_t *rk = NULL;
    rd_kafka_NewTopic_t *nt[MAX_TOPICS];
    rd_kafka_queue_t *q = NULL;
    rd_kafka_event_t *ev = NULL;
    const rd_kafka_CreateTopics_result_t *res;
    const rd_kafka_topic_result_t **tr;
    size_t i, cnt;
    int n = 0, created = 0, existed = 0, failed = 0, rc = 1, a;
    char errstr[256];

    for (a = 1; a < argc; a++) {
        if (strcmp(argv[a], "--brokers") == 0 && a + 1 < argc) {
            brokers = argv[++a];
        } else if (strcmp(argv[a], "--manifest") == 0 && a + 1 < argc) {
            manifest = argv[++a];
        } else if (n < MAX_TOPICS && argv[a][0] != '-') {
            char *colon = strchr(argv[a], ':');
            snprintf(topics[n].name, sizeof(topics[n].name), "%.*s",
                     colon ? (int)(colon - argv[a]) : (int)strlen(argv[a]), argv[a]);
            topics[n].partitions = colon ? atoi(colon + 1) : 3;
            if (topics[n].partitions < 1)
                topics[n].partitions = 1;
            snprintf(topics[n].retention, sizeof(topics[n].retention), "604800000");
            snprintf(topics[n].cleanup, sizeof(topics[n].cleanup), "delete");
            n++;
        } else {
            fprintf(stderr, "usage: kasir-topics [--brokers B] [--manifest F] [name[:parts]...]\n");
            return 2;
        }
    }
    if (!brokers)
        brokers = "127.0.0.1:9092";
    if (manifest) {
        int m = parse_manifest(manifest, topics + n, MAX_TOPICS - n);
        if (m < 0)
            return 2;
        n += m;
    }
    if (n == 0)
        return 0;
    if (!(conf = ks_kafka_conf_new(brokers, "producer", NULL, &err)) ||
        !(rk = ks_kafka_producer_new(conf, &err))) {
        fprintf(stderr, "kasir-topics: %s\n", err.msg);
        return 1;
    }
    for (a = 0; a < n; a++) {
        nt[a] = rd_kafka_NewTopic_new(topics[a].name, topics[a].partitions, 1, errstr,
                                      sizeof(errstr));
        if (!nt[a]) {
            fprintf(stderr, "kasir-topics: %s: %s\n", topics[a].name, errstr);
            goto out;
        }
        rd_kafka_NewTopic_set_config(nt[a], "retention.ms", topics[a].retention);
        rd_kafka_NewTopic_set_config(nt[a], "cleanup.policy", topics[a].cleanup);
    }
    q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, nt, (size_t)n, NULL, q);
    ev = rd_kafka_queue_poll(q, 30000);
    if (!ev || !(res = rd_kafka_event_CreateTopics_result(ev))) {
        fprintf(stderr, "kasir-topics: no answer from kafka in 30 s\n");
        goto out_topics;
    }
    if (rd_kafka_event_error(ev)) {
        fprintf(stderr, "kasir-topics: %s\n", rd_kafka_event_error_string(ev));
        goto out_topics;
    }
    tr = rd_kafka_CreateTopics_result_topics(res, &cnt);
    for (i = 0; i < cnt; i++) {
        rd_kafka_resp_err_t e = rd_kafka_topic_result_error(tr[i]);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
            created++;
        } else if (e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
            existed++;
        } else {
            failed++;
            fprintf(stderr, "kasir-topics: %s: %s\n", rd_kafka_topic_result_name(tr[i]),
                    rd_kafka_topic_result_error_string(tr[i]));
        }
    }
    printf("topics: %d created, %d already there, %d failed\n", created, existed, failed);
    rc = failed ? 1 : 0;
out_topics:
    for (a = 0; a < n; a++)
        rd_kafka_NewTopic_destroy(nt[a]);
out:
    if (ev)
        rd_kafka_event_destroy(ev);
    if (q)
        rd_kafka_queue_destroy(q);
    ks_kafka_producer_close(rk, 1000);
    return rc;
}
