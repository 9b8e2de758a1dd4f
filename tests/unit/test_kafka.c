/* Unit tests for lib/kafka.c that need no broker: defaults, property rejection, health
 * against nothing, NULL-safe close, headers. */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <threads.h>

#include "ktest.h"
#include "lib/kafka.h"

/* librdkafka starts its threads with C11 thrd_create: this one fails while fail_threads is
 * set, as it does when the process is out of threads or memory */
static int fail_threads;
int thrd_create(thrd_t *thr, thrd_start_t func, void *arg)
{
    static int (*real)(thrd_t *, thrd_start_t, void *);
    if (fail_threads)
        return thrd_nomem;
    if (!real)
        *(void **)&real = dlsym(RTLD_NEXT, "thrd_create");
    return real(thr, func, arg);
}

static const char *conf_get(rd_kafka_conf_t *conf, const char *name, char *buf, size_t len)
{
    size_t sz = len;
    if (rd_kafka_conf_get(conf, name, buf, &sz) != RD_KAFKA_CONF_OK)
        return "";
    return buf;
}

KT_TEST(test_producer_defaults_idempotent)
{
    struct ks_err err = {0};
    char buf[64];
    rd_kafka_conf_t *conf = ks_kafka_conf_new("127.0.0.1:1", "producer", NULL, &err);
    KT_CHECK(conf != NULL);
    KT_STREQ(conf_get(conf, "enable.idempotence", buf, sizeof(buf)), "true");
    KT_STREQ(conf_get(conf, "acks", buf, sizeof(buf)), "-1"); /* all */
    rd_kafka_conf_destroy(conf);
}

/* a daemon's own defaults sit between the role's and the configured settings: a setting
 * wins under either of librdkafka's names for a property (the ingress overwrote
 * queue.buffering.max.ms and delivery.timeout.ms with its own values; test 226) */
KT_TEST(test_own_defaults_yield_to_settings_under_any_name)
{
    static const struct ks_config_def defs[] = {
        {"kafka.brokers", KS_CFG_STRING, "127.0.0.1:1", 0, "brokers"},
    };
    static const char *const own[][2] = {
        {"linger.ms", "1"}, {"message.timeout.ms", "5000"}, {"socket.timeout.ms", "7000"},
    };
    struct ks_err err = {0};
    struct ks_config *cfg;
    rd_kafka_conf_t *conf;
    char buf[64];

    setenv("KASIR_KAFKA_QUEUE_BUFFERING_MAX_MS", "1500", 1);
    setenv("KASIR_KAFKA_DELIVERY_TIMEOUT_MS", "4000", 1);
    cfg = ks_config_load(defs, 1, NULL, NULL, &err);
    unsetenv("KASIR_KAFKA_QUEUE_BUFFERING_MAX_MS");
    unsetenv("KASIR_KAFKA_DELIVERY_TIMEOUT_MS");
    KT_CHECK_MSG(cfg != NULL, "%s", err.msg);
    conf = ks_kafka_conf_new_defaults("127.0.0.1:1", "producer", cfg, own, 3, &err);
    KT_CHECK(conf != NULL);
    KT_STREQ(conf_get(conf, "linger.ms", buf, sizeof(buf)), "1500");
    KT_STREQ(conf_get(conf, "message.timeout.ms", buf, sizeof(buf)), "4000");
    KT_STREQ(conf_get(conf, "socket.timeout.ms", buf, sizeof(buf)), "7000"); /* own, unset */
    KT_STREQ(conf_get(conf, "enable.idempotence", buf, sizeof(buf)), "true"); /* the role's */
    rd_kafka_conf_destroy(conf);
    /* a property librdkafka refuses among the own defaults is an error naming it */
    {
        static const char *const bad[][2] = {{"no.such.property", "1"}};
        memset(&err, 0, sizeof(err));
        KT_CHECK(ks_kafka_conf_new_defaults("127.0.0.1:1", "producer", cfg, bad, 1, &err) == NULL);
        KT_CHECK_MSG(strstr(err.msg, "no.such.property") != NULL, "%s", err.msg);
    }
    ks_config_free(cfg);
}

KT_TEST(test_consumer_defaults_no_autocommit)
{
    struct ks_err err = {0};
    char buf[64];
    rd_kafka_conf_t *conf = ks_kafka_conf_new("127.0.0.1:1", "consumer", NULL, &err);
    KT_CHECK(conf != NULL);
    KT_STREQ(conf_get(conf, "enable.auto.commit", buf, sizeof(buf)), "false");
    KT_STREQ(conf_get(conf, "partition.assignment.strategy", buf, sizeof(buf)), "range");
    rd_kafka_conf_destroy(conf);
}

KT_TEST(test_health_unreachable_is_retriable)
{
    struct ks_err err = {0};
    rd_kafka_conf_t *conf = ks_kafka_conf_new("127.0.0.1:1", "producer", NULL, &err);
    rd_kafka_t *rk = ks_kafka_producer_new(conf, &err);
    KT_CHECK(rk != NULL);
    KT_INTEQ(ks_kafka_health(rk, 300, &err), KS_EKAFKA);
    KT_INTEQ(err.retriable, 1);
    KT_CHECK(strstr(err.msg, "could not reach kafka") != NULL);
    KT_INTEQ(ks_kafka_producer_close(rk, 0), 0);
}

/* rd_kafka_new refuses only what its configuration makes impossible: a setting, as
 * lib/scan.c says too (a worker exits 2, config.invalid, not 1 as for an unreachable cluster) */
KT_TEST(test_refused_settings_are_config_errors)
{
    struct ks_err err = {0};
    char es[256];
    rd_kafka_conf_t *conf = ks_kafka_conf_new("127.0.0.1:1", "producer", NULL, &err);
    KT_CHECK(conf != NULL);
    /* idempotence needs acks=all: only rd_kafka_new checks the pair */
    KT_INTEQ(rd_kafka_conf_set(conf, "acks", "1", es, sizeof(es)), RD_KAFKA_CONF_OK);
    KT_CHECK(ks_kafka_producer_new(conf, &err) == NULL);
    KT_INTEQ(err.code, KS_ECONFIG);
    KT_CHECK(strstr(err.msg, "could not create producer") != NULL);

    memset(&err, 0, sizeof(err));
    conf = ks_kafka_conf_new("127.0.0.1:1", "consumer", NULL, &err);
    KT_CHECK(conf != NULL);
    KT_INTEQ(rd_kafka_conf_set(conf, "security.protocol", "ssl", es, sizeof(es)),
             RD_KAFKA_CONF_OK);
    KT_INTEQ(rd_kafka_conf_set(conf, "ssl.ca.location", "/nonexistent/kasir-ca.pem", es,
                               sizeof(es)),
             RD_KAFKA_CONF_OK);
    KT_CHECK(ks_kafka_consumer_new(conf, "kasir-unit", NULL, &err) == NULL);
    KT_INTEQ(err.code, KS_ECONFIG);
    KT_CHECK(strstr(err.msg, "could not create consumer") != NULL);
}

/* ...and nothing else is: a client that cannot start its threads is a resource the machine
 * lacks now (a supervisor restarts it), not a setting to mend (review, session 10) */
KT_TEST(test_no_threads_is_not_a_config_error)
{
    struct ks_err err = {0};
    rd_kafka_conf_t *conf = ks_kafka_conf_new("127.0.0.1:1", "producer", NULL, &err);
    rd_kafka_t *rk;
    KT_CHECK(conf != NULL);
    fail_threads = 1;
    rk = ks_kafka_producer_new(conf, &err);
    fail_threads = 0;
    KT_CHECK(rk == NULL);
    KT_INTEQ(err.code, KS_EKAFKA);
    KT_INTEQ(err.retriable, 1);
    if (rk)
        ks_kafka_producer_close(rk, 0);
}

KT_TEST(test_close_null)
{
    KT_INTEQ(ks_kafka_producer_close(NULL, 0), 0);
    ks_kafka_consumer_close(NULL);
    KT_CHECK(1);
}

KT_MAIN(test_producer_defaults_idempotent, test_own_defaults_yield_to_settings_under_any_name,
        test_consumer_defaults_no_autocommit,
        test_health_unreachable_is_retriable, test_refused_settings_are_config_errors,
        test_no_threads_is_not_a_config_error, test_close_null)
