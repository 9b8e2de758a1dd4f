/* kasir-smoke - proves the lib wrappers against the real stack: connects to PostgreSQL,
 * checks health, runs a query; produces a message with the idempotent producer, waits for
 * its delivery report, and consumes it back in a consumer group. Prints one line per step
 * and exits non-zero at the first failure.
 *   kasir-smoke TOPIC   (KASIR_PG_DSN, KASIR_KAFKA_BROKERS from the environment) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/db.h"
#include "lib/kafka.h"

static int delivered = -1;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    delivered = m->err == RD_KAFKA_RESP_ERR_NO_ERROR;
}

int main(int argc, char **argv)
{
    const char *dsn = getenv("KASIR_PG_DSN"), *brokers = getenv("KASIR_KAFKA_BROKERS");
    struct ks_err err = {0};
    struct ks_db *db = NULL;
    rd_kafka_conf_t *conf;
    rd_kafka_t *prod = NULL, *cons = NULL;
    rd_kafka_topic_partition_list_t *sub = NULL;
    PGresult *res;
    char payload[64], group[64];
    int rc = 1, i;

    if (argc != 2 || !dsn || !brokers) {
        fprintf(stderr, "usage: KASIR_PG_DSN=.. KASIR_KAFKA_BROKERS=.. kasir-smoke TOPIC\n");
        return 2;
    }
    if (!(db = ks_db_connect(dsn, &err)) || ks_db_health(db, &err) != KS_OK)
        goto fail;
    res = PQexec(ks_db_conn(db), "SELECT 6 * 7");
    if (ks_db_check(db, res, PGRES_TUPLES_OK, "select", &err) != KS_OK) {
        PQclear(res);
        goto fail;
    }
    printf("pg: select 6*7 = %s\n", PQgetvalue(res, 0, 0));
    PQclear(res);
    {
        /* the connection options in effect: ks_db_connect's defaults, or the DSN's */
        PQconninfoOption *opts = PQconninfo(ks_db_conn(db)), *o;
        for (o = opts; o && o->keyword; o++)
            if (o->val && (strcmp(o->keyword, "connect_timeout") == 0 ||
                           strcmp(o->keyword, "keepalives_idle") == 0))
                printf("pg: %s=%s\n", o->keyword, o->val);
        PQconninfoFree(opts);
    }

    snprintf(payload, sizeof(payload), "smoke-%ld", (long)time(NULL));
    if (!(conf = ks_kafka_conf_new(brokers, "producer", NULL, &err)))
        goto fail;
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    if (!(prod = ks_kafka_producer_new(conf, &err)) || ks_kafka_health(prod, 5000, &err))
        goto fail;
    if (rd_kafka_producev(prod, RD_KAFKA_V_TOPIC(argv[1]), RD_KAFKA_V_KEY("k", 1),
                          RD_KAFKA_V_VALUE(payload, strlen(payload)),
                          RD_KAFKA_V_HEADER("kasir.smoke", "1", 1),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) {
        fprintf(stderr, "produce failed\n");
        goto out;
    }
    ks_kafka_producer_close(prod, 10000);
    prod = NULL;
    if (delivered != 1) {
        fprintf(stderr, "kafka: delivery failed\n");
        goto out;
    }
    printf("kafka: produced %s (acks=all, delivery confirmed)\n", payload);

    snprintf(group, sizeof(group), "smoke-%ld", (long)time(NULL));
    if (!(conf = ks_kafka_conf_new(brokers, "consumer", NULL, &err)) ||
        !(cons = ks_kafka_consumer_new(conf, group, NULL, &err)))
        goto fail;
    sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, argv[1], RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(cons, sub);
    for (i = 0; i < 300; i++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(cons, 100);
        char hdr[8];
        if (!m)
            continue;
        if (!m->err && m->len == strlen(payload) && memcmp(m->payload, payload, m->len) == 0 &&
            ks_kafka_header(m, "kasir.smoke", hdr, sizeof(hdr)) && strcmp(hdr, "1") == 0) {
            printf("kafka: consumed %s with its header in group %s\n", payload, group);
            rd_kafka_message_destroy(m);
            rc = 0;
            goto out;
        }
        rd_kafka_message_destroy(m);
    }
    fprintf(stderr, "kafka: message not consumed within 30 s\n");
    goto out;
fail:
    fprintf(stderr, "smoke: %s (%s)\n", err.msg, ks_code_name(err.code));
out:
    if (sub)
        rd_kafka_topic_partition_list_destroy(sub);
    ks_kafka_consumer_close(cons);
    ks_kafka_producer_close(prod, 1000);
    ks_db_free(db);
    return rc;
}
