/* test_headers.c - the failure headers of retry and DLQ copies, and their outbox encoding (lib/headers.c, lib/outbox.c). */
#include <stdlib.h>
#include <string.h>

#include "lib/headers.h"
#include "lib/outbox.h"
#include "tests/unit/ktest.h"

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
    h = ks_headers_failure(src, &f);
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
    h = ks_headers_failure(NULL, &f);
    KT_STREQ(hget(h, "kasir.retry.not_before", b, sizeof(b)), "1700000005000");
    rd_kafka_headers_destroy(h);
    rd_kafka_headers_destroy(src);
}

KT_MAIN(test_failure_headers)
