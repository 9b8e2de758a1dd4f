/* test_worker.c - the pure pieces of the worker runtime: retry schedule, traceparent,
 * array literals, binary arrays, failure headers, outbox header encoding, metrics text. */
#include <stdlib.h>
#include <string.h>

#include "lib/metrics.h"
#include "lib/outbox.h"
#include "lib/worker.h"
#include "tests/unit/ktest.h"

KT_TEST(test_retry_parse)
{
    int64_t d[8];
    char names[8][16];
    KT_INTEQ(ks_retry_parse("5s,1m,10m", d, names, 8), 3);
    KT_INTEQ(d[0], 5000);
    KT_INTEQ(d[1], 60000);
    KT_INTEQ(d[2], 600000);
    KT_STREQ(names[1], "1m");
    KT_INTEQ(ks_retry_parse("250ms, 2s", d, names, 8), 2);
    KT_INTEQ(d[0], 250);
    KT_STREQ(names[1], "2s");
    KT_INTEQ(ks_retry_parse("", d, names, 8), 0);
    KT_INTEQ(ks_retry_parse("1m,5s", d, names, 8), -1);  /* not ascending */
    KT_INTEQ(ks_retry_parse("5x", d, names, 8), -1);
    KT_INTEQ(ks_retry_parse("0s", d, names, 8), -1);
    KT_INTEQ(ks_retry_parse("s", d, names, 8), -1);
    KT_INTEQ(ks_retry_parse("1s,2s,3s", d, names, 2), -1); /* too many */
}

KT_TEST(test_retry_backoff)
{
    const int64_t d[] = {5000, 60000, 600000};
    size_t idx = 99;
    /* no jitter: 5 s, 10 s, 20 s, ... capped at 10 min; topic = longest delay <= backoff */
    KT_INTEQ(ks_retry_backoff(d, 3, 1, 0, 0, &idx), 5000);
    KT_INTEQ(idx, 0);
    KT_INTEQ(ks_retry_backoff(d, 3, 2, 0, 0, &idx), 10000);
    KT_INTEQ(idx, 0);
    KT_INTEQ(ks_retry_backoff(d, 3, 5, 0, 0, &idx), 80000);
    KT_INTEQ(idx, 1);
    KT_INTEQ(ks_retry_backoff(d, 3, 40, 0, 0, &idx), 600000);
    KT_INTEQ(idx, 2);
    /* jitter: rnd 0 -> -20 %, rnd 500000 -> 0, rnd 999999 -> just under +20 % */
    KT_INTEQ(ks_retry_backoff(d, 3, 1, 20, 0, &idx), 4000);
    KT_INTEQ(idx, 0); /* below the shortest still goes to the shortest topic */
    KT_INTEQ(ks_retry_backoff(d, 3, 1, 20, 500000, &idx), 5000);
    KT_CHECK(ks_retry_backoff(d, 3, 1, 20, 999999, &idx) < 6000);
    for (uint32_t r = 0; r < 1000000; r += 9973) {
        int64_t v = ks_retry_backoff(d, 3, 3, 20, r, &idx);
        KT_CHECK(v >= 16000 && v <= 24000);
    }
    KT_INTEQ(ks_retry_backoff(d, 0, 1, 20, 0, &idx), 0);
}

KT_TEST(test_retry_backoff_long_delays)
{
    /* the parser takes delays up to ~1e9 hours; the jitter of such a delay used to
     * overflow int64 (UB; in practice a wrapped, wrong delay) */
    int64_t d[2];
    const int64_t huge[] = {1, INT64_MAX};
    size_t idx = 99;
    KT_INTEQ(ks_retry_parse("1000000000h", d, NULL, 2), 1);
    KT_INTEQ(d[0], 3600000000000000LL);
    KT_INTEQ(ks_retry_backoff(d, 1, 1, 20, 0, &idx), d[0] - d[0] / 5);
    KT_INTEQ(ks_retry_backoff(d, 1, 1, 20, 500000, &idx), d[0]);
    KT_CHECK(ks_retry_backoff(d, 1, 1, 20, 999999, &idx) > d[0]);
    KT_CHECK(ks_retry_backoff(d, 1, 1, 20, 999999, &idx) < d[0] + d[0] / 5);
    KT_INTEQ(idx, 0);
    /* doubling towards a cap near INT64_MAX stops at the cap */
    KT_INTEQ(ks_retry_backoff(huge, 2, 200, 0, 0, &idx), INT64_MAX);
    KT_INTEQ(idx, 1);
    KT_CHECK(ks_retry_backoff(huge, 2, 200, 100, 999999, &idx) >= INT64_MAX - 10);
}

KT_TEST(test_traceparent)
{
    char t[33], s[17], f[3], out[56];
    KT_INTEQ(ks_traceparent_parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", t,
                                  s, f), 0);
    KT_STREQ(t, "4bf92f3577b34da6a3ce929d0e0e4736");
    KT_STREQ(s, "00f067aa0ba902b7");
    KT_STREQ(f, "01");
    KT_INTEQ(ks_traceparent_parse("00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-00", t,
                                  s, f), 0);
    KT_STREQ(t, "4bf92f3577b34da6a3ce929d0e0e4736");
    KT_INTEQ(ks_traceparent_parse("00-00000000000000000000000000000000-00f067aa0ba902b7-01", t,
                                  s, f), -1);
    KT_INTEQ(ks_traceparent_parse("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", t,
                                  s, f), -1);
    KT_INTEQ(ks_traceparent_parse("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", t,
                                  s, f), -1);
    KT_INTEQ(ks_traceparent_parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
                                  t, s, f), -1);
    KT_INTEQ(ks_traceparent_parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
                                  t, s, f), 0); /* a later version may append fields */
    KT_INTEQ(ks_traceparent_parse("00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01", t,
                                  s, f), -1);
    KT_INTEQ(ks_traceparent_parse("", t, s, f), -1);
    KT_INTEQ(ks_traceparent_parse(NULL, t, s, f), -1);
    ks_traceparent_format("4bf92f3577b34da6a3ce929d0e0e4736", "1111111111111111", "01", out);
    KT_STREQ(out, "00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01");
    /* formatted by hand now: longer inputs are cut to their field width, and what it
     * writes parses back */
    ks_traceparent_format("4bf92f3577b34da6a3ce929d0e0e4736ffff", "00f067aa0ba902b7aa", "01x",
                          out);
    KT_STREQ(out, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    KT_INTEQ(ks_traceparent_parse(out, t, s, f), 0);
    KT_STREQ(t, "4bf92f3577b34da6a3ce929d0e0e4736");
    KT_STREQ(s, "00f067aa0ba902b7");
    KT_STREQ(f, "01");
}

KT_TEST(test_pgarr)
{
    struct ks_pgarr a;
    ks_pgarr_init(&a);
    KT_STREQ(ks_pgarr_str(&a), "{}");
    ks_pgarr_text(&a, "plain");
    ks_pgarr_text(&a, "q\"b\\s,{}");
    ks_pgarr_text(&a, NULL);
    ks_pgarr_int(&a, -42);
    KT_STREQ(ks_pgarr_str(&a), "{\"plain\",\"q\\\"b\\\\s,{}\",NULL,-42}");
    ks_pgarr_reset(&a);
    ks_pgarr_bytea(&a, "\x01\xff", 2);
    KT_STREQ(ks_pgarr_str(&a), "{\"\\\\x01ff\"}");
    ks_pgarr_release(&a);
}

static uint32_t rd32(const char *p)
{
    const unsigned char *b = (const unsigned char *)p;
    return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3];
}

KT_TEST(test_pgbin)
{
    struct ks_pgbin a;
    const char *d;
    int len = 0;
    ks_pgbin_init(&a, KS_OID_BYTEA);
    d = ks_pgbin_data(&a, &len);
    KT_INTEQ(len, 12);
    KT_INTEQ(rd32(d), 0);
    ks_pgbin_bytes(&a, "ab", 2);
    ks_pgbin_bytes(&a, NULL, 0);
    d = ks_pgbin_data(&a, &len);
    KT_INTEQ(len, 20 + 4 + 2 + 4);
    KT_INTEQ(rd32(d), 1);      /* one dimension */
    KT_INTEQ(rd32(d + 4), 1);  /* has nulls */
    KT_INTEQ(rd32(d + 8), KS_OID_BYTEA);
    KT_INTEQ(rd32(d + 12), 2); /* elements */
    KT_INTEQ(rd32(d + 16), 1); /* lower bound */
    KT_INTEQ(rd32(d + 20), 2);
    KT_CHECK(memcmp(d + 24, "ab", 2) == 0);
    KT_INTEQ(rd32(d + 26), 0xffffffffu);
    ks_pgbin_release(&a);
    ks_pgbin_init(&a, KS_OID_INT8);
    ks_pgbin_int8(&a, -2);
    d = ks_pgbin_data(&a, &len);
    KT_INTEQ(len, 32);
    KT_INTEQ(rd32(d + 20), 8);
    KT_INTEQ(rd32(d + 24), 0xffffffffu);
    KT_INTEQ(rd32(d + 28), 0xfffffffeu);
    ks_pgbin_release(&a);
}

static const char *hget(rd_kafka_headers_t *h, const char *name, char *buf, size_t len)
{
    const void *v;
    size_t n;
    if (rd_kafka_header_get_last(h, name, &v, &n) != 0)
        return NULL;
    snprintf(buf, len, "%.*s", (int)n, (const char *)v);
    return buf;
}

KT_TEST(test_failure_headers)
{
    rd_kafka_headers_t *src = rd_kafka_headers_new(4), *h, *back;
    struct ks_err err = {0};
    struct ks_failure f = {0};
    char b[256];
    void *enc;
    size_t len;
    size_t cnt = 0;
    const char *name;
    const void *val;
    size_t vlen;

    rd_kafka_header_add(src, "kasir.producer", -1, "ingress", -1);
    rd_kafka_header_add(src, "kasir.attempt", -1, "7", -1);          /* replaced */
    rd_kafka_header_add(src, "kasir.error.class", -1, "old", -1);    /* replaced */
    rd_kafka_header_add(src, "kasir.retry.not_before", -1, "1", -1); /* dropped for DLQ */
    ks_err_set(&err, KS_EINVAL, 0, "amount_minor", "amount_minor must be greater than zero");
    f.message_id = "msg_1";
    f.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    f.origin_topic = "kasir.demo.in";
    f.origin_partition = 2;
    f.origin_offset = 41;
    f.origin_timestamp_ms = 1700000000000;
    f.group = "kasir-demo";
    f.instance = "demo-1";
    f.error_class = "invalid";
    f.err = &err;
    f.attempt = 1;
    f.first_failure_ms = 1700000000100;
    f.now_ms = 1700000000200;
    f.not_before_ms = -1;
    h = ks_failure_headers(src, &f);
    KT_STREQ(hget(h, "kasir.producer", b, sizeof(b)), "ingress");
    KT_STREQ(hget(h, "kasir.attempt", b, sizeof(b)), "1");
    KT_STREQ(hget(h, "kasir.error.class", b, sizeof(b)), "invalid");
    KT_STREQ(hget(h, "kasir.error.code", b, sizeof(b)), "invalid");
    KT_STREQ(hget(h, "kasir.error.field", b, sizeof(b)), "amount_minor");
    KT_STREQ(hget(h, "kasir.origin.topic", b, sizeof(b)), "kasir.demo.in");
    KT_STREQ(hget(h, "kasir.origin.partition", b, sizeof(b)), "2");
    KT_STREQ(hget(h, "kasir.origin.offset", b, sizeof(b)), "41");
    KT_STREQ(hget(h, "kasir.origin.timestamp", b, sizeof(b)), "1700000000000");
    KT_STREQ(hget(h, "kasir.error.group", b, sizeof(b)), "kasir-demo");
    KT_STREQ(hget(h, "kasir.error.instance", b, sizeof(b)), "demo-1");
    KT_STREQ(hget(h, "kasir.error.first_failure", b, sizeof(b)), "1700000000100");
    KT_STREQ(hget(h, "kasir.message_id", b, sizeof(b)), "msg_1");
    KT_CHECK(hget(h, "kasir.retry.not_before", b, sizeof(b)) == NULL);
    for (size_t i = 0; rd_kafka_header_get_all(h, i, &name, &val, &vlen) == 0; i++)
        cnt += strcmp(name, "kasir.attempt") == 0;
    KT_INTEQ(cnt, 1);

    /* round trip through the outbox encoding */
    enc = ks_outbox_headers_encode(h, &len);
    KT_CHECK(enc != NULL && len > 0);
    back = ks_outbox_headers_decode(enc, len);
    KT_CHECK(back != NULL);
    KT_INTEQ(rd_kafka_header_cnt(back), rd_kafka_header_cnt(h));
    KT_STREQ(hget(back, "kasir.error.message", b, sizeof(b)),
             "amount_minor must be greater than zero");
    KT_CHECK(ks_outbox_headers_decode(enc, len - 1) == NULL); /* truncated */
    free(enc);
    rd_kafka_headers_destroy(back);
    rd_kafka_headers_destroy(h);

    f.not_before_ms = 1700000005000;
    f.error_class = "retry";
    h = ks_failure_headers(NULL, &f);
    KT_STREQ(hget(h, "kasir.retry.not_before", b, sizeof(b)), "1700000005000");
    rd_kafka_headers_destroy(h);
    rd_kafka_headers_destroy(src);
}

KT_TEST(test_metrics_render)
{
    struct ks_metrics *m = ks_metrics_new();
    static const int64_t bounds[] = {1000, 10000};
    struct ks_metric *c = ks_metrics_counter(m, "x_total", "things", NULL);
    struct ks_metric *h = ks_metrics_histogram(m, "x_seconds", "time", NULL, bounds, 2);
    char *txt;
    KT_CHECK(ks_metrics_counter(m, "x_total", "things", NULL) == c);
    ks_metric_add(c, 3);
    ks_metric_observe(h, 500);
    ks_metric_observe(h, 5000);
    ks_metric_observe(h, 50000);
    ks_metric_set(ks_metrics_gauge(m, "lag", "behind", "topic=\"t\",partition=\"0\""), 7);
    txt = ks_metrics_render(m, NULL);
    KT_CHECK(strstr(txt, "# TYPE x_total counter\nx_total 3\n") != NULL);
    KT_CHECK(strstr(txt, "x_seconds_bucket{le=\"0.001000\"} 1\n") != NULL);
    KT_CHECK(strstr(txt, "x_seconds_bucket{le=\"0.010000\"} 2\n") != NULL);
    KT_CHECK(strstr(txt, "x_seconds_bucket{le=\"+Inf\"} 3\n") != NULL);
    KT_CHECK(strstr(txt, "x_seconds_sum 0.055500\n") != NULL);
    KT_CHECK(strstr(txt, "x_seconds_count 3\n") != NULL);
    KT_CHECK(strstr(txt, "lag{topic=\"t\",partition=\"0\"} 7\n") != NULL);
    free(txt);
    ks_metrics_free(m);
}

KT_TEST(test_metrics_remove)
{
    struct ks_metrics *m = ks_metrics_new();
    struct ks_metric *a = ks_metrics_gauge(m, "lag", "behind", "partition=\"0\"");
    struct ks_metric *b = ks_metrics_gauge(m, "lag", "behind", "partition=\"1\"");
    struct ks_metric *c;
    char *txt;
    ks_metric_set(a, 5);
    ks_metric_set(b, 6);
    ks_metrics_remove(m, b); /* the tail */
    ks_metrics_remove(m, NULL);
    c = ks_metrics_gauge(m, "lag", "behind", "partition=\"2\""); /* appended after a */
    ks_metric_set(c, 7);
    ks_metrics_remove(m, a); /* the head */
    txt = ks_metrics_render(m, NULL);
    KT_CHECK(strstr(txt, "partition=\"0\"") == NULL);
    KT_CHECK(strstr(txt, "partition=\"1\"") == NULL);
    KT_CHECK(strstr(txt, "lag{partition=\"2\"} 7\n") != NULL);
    free(txt);
    ks_metrics_free(m);
}

KT_MAIN(test_retry_parse, test_retry_backoff, test_retry_backoff_long_delays, test_traceparent,
        test_pgarr, test_pgbin, test_failure_headers, test_metrics_render, test_metrics_remove)
