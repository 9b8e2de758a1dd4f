/* test_executor_core.c - the executor's pure pieces: the circuit breaker's states and
 * transitions, the result helpers, the adapters' shared encoders. */
#include <stdlib.h>
#include <string.h>

#include "consumers/executor/adapter.c"
#include "consumers/executor/adapter_util.c"
#include "consumers/executor/breaker.c"
#include "tests/unit/ktest.h"

const struct ex_adapter ex_adapter_sandbox = {.name = "sandbox"};
const struct ex_adapter ex_adapter_stripe = {.name = "stripe"};
const struct ex_adapter ex_adapter_xendit = {.name = "xendit"};
const struct ex_adapter ex_adapter_midtrans = {.name = "midtrans"};

KT_TEST(test_breaker)
{
    struct ex_breaker_conf conf = {10, 4, 50, 2, 1000};
    struct ks_metrics *m = ks_metrics_new();
    struct ex_breakers *bs = ex_breakers_new(&conf, m);
    struct ex_breaker *br = ex_breaker_get(bs, "sandbox", "CARD");
    int64_t t = 5000;

    KT_CHECK(br == ex_breaker_get(bs, "sandbox", "CARD"));
    KT_CHECK(br != ex_breaker_get(bs, "sandbox", "QRIS"));
    /* 3 failures are below min_calls: closed */
    for (int i = 0; i < 3; i++) {
        KT_CHECK(ex_breaker_allow(br, t));
        ex_breaker_record(br, 0, t);
    }
    KT_INTEQ(ex_breaker_state(br, t), EX_BREAKER_CLOSED);
    ex_breaker_record(br, 1, t); /* 3 of 4 failed: open */
    KT_INTEQ(ex_breaker_state(br, t), EX_BREAKER_OPEN);
    KT_CHECK(!ex_breaker_allow(br, t + 999));
    /* after open_ms: half-open, two probes, a third waits */
    KT_CHECK(ex_breaker_allow(br, t + 1000));
    KT_INTEQ(ex_breaker_state(br, t + 1000), EX_BREAKER_HALF_OPEN);
    KT_CHECK(ex_breaker_allow(br, t + 1000));
    KT_CHECK(!ex_breaker_allow(br, t + 1000));
    ex_breaker_record(br, 1, t + 1001);
    ex_breaker_record(br, 0, t + 1002); /* one probe failed: open again */
    KT_INTEQ(ex_breaker_state(br, t + 1002), EX_BREAKER_OPEN);
    KT_CHECK(!ex_breaker_allow(br, t + 1500));
    KT_CHECK(ex_breaker_allow(br, t + 2002));
    ex_breaker_release(br); /* a probe slot given back unused */
    KT_CHECK(ex_breaker_allow(br, t + 2002));
    KT_CHECK(ex_breaker_allow(br, t + 2002));
    ex_breaker_record(br, 1, t + 2003);
    ex_breaker_record(br, 1, t + 2003);
    KT_INTEQ(ex_breaker_state(br, t + 2003), EX_BREAKER_CLOSED);
    /* closed with a fresh window: a healthy mix stays closed */
    for (int i = 0; i < 40; i++)
        ex_breaker_record(br, i % 4 != 3, t + 3000); /* 25 % failed */
    KT_INTEQ(ex_breaker_state(br, t + 3000), EX_BREAKER_CLOSED);
    {
        size_t len;
        char *text = ks_metrics_render(m, &len);
        KT_CHECK(text && strstr(text, "kasir_executor_breaker_state{psp=\"sandbox\",method=\"CARD\"} 0"));
        KT_CHECK(text && strstr(text, "kasir_executor_breaker_transitions_total{psp=\"sandbox\","
                                      "method=\"CARD\",to=\"open\"} 2"));
        KT_CHECK(text && strstr(text, "to=\"half_open\"} 2"));
        free(text);
    }
    /* NULL breakers (no memory) allow everything */
    KT_CHECK(ex_breaker_allow(NULL, t));
    ex_breakers_free(bs);
    ks_metrics_free(m);
}

KT_TEST(test_result_next_action)
{
    struct ex_result r;
    char big[900];

    ex_result_clear(&r);
    KT_INTEQ(r.verdict, EX_UNKNOWN);
    KT_INTEQ(ex_result_add_next(&r, "va_number", "8808"), 0);
    KT_INTEQ(ex_result_add_next(&r, "expires_at", "2026-01-01T00:00:00Z"), 0);
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    KT_INTEQ(ex_result_add_next(&r, "qr_string", big), 0);
    KT_INTEQ(ex_result_add_next(&r, "more", big), -1); /* does not fit: dropped */
    KT_INTEQ(r.n_next_action, 3);
    KT_STREQ(r.next_action[1].value, "2026-01-01T00:00:00Z");
}

KT_TEST(test_encoders)
{
    struct ks_buf b = KS_BUF_INIT;
    const struct ex_kv d[] = {{"payment_token", "tok"}, {"bank_code", "BCA"}};
    struct ex_cmd c = {0};

    ex_url_escape(&b, "a b/c~d_e.f-\xc3\xa9");
    KT_STREQ(ks_buf_str(&b), "a%20b%2Fc~d_e.f-%C3%A9");
    ks_buf_reset(&b);
    ex_form_add(&b, "metadata[order_id]", "o&1");
    ex_form_add(&b, "amount", "10");
    KT_STREQ(ks_buf_str(&b), "metadata%5Border_id%5D=o%261&amount=10");
    c.details = d;
    c.n_details = 2;
    KT_STREQ(ex_detail(&c, "bank_code"), "BCA");
    KT_STREQ(ex_detail(&c, "nope"), "");
    KT_CHECK(ex_adapter_find("stripe") == &ex_adapter_stripe);
    KT_CHECK(ex_adapter_find("paypal") == NULL);
    ks_buf_release(&b);
}

KT_MAIN(test_breaker, test_result_next_action, test_encoders)
