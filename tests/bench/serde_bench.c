/* serde_bench.c - encode and decode rates of lib/serde.c for two typical messages.
 * Not a test: it prints figures. Build and run (after `make build/lib/libkasir.a`):
 *   cc -std=c11 -D_GNU_SOURCE -O2 -I. -Ibuild/gen -o build/bench/serde_bench \
 *      tests/bench/serde_bench.c build/lib/libkasir.a \
 *      $(pkg-config --libs avro-c jansson) -lpthread -lm && build/bench/serde_bench
 * Encode starts from a built jansson object (what a producer holds); decode ends with a
 * new jansson object, freed (what a consumer does). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "lib/serde.h"

static const char payment[] =
    "{\"message_id\":\"msg_01J0ABCDEF\",\"occurred_at\":1718000000123456,\"partner_id\":\"partner_a\","
    "\"payment_id\":\"pay_01J0ABCDEF\",\"buyer_id\":\"buyer-123456\",\"checkout_id\":\"checkout-987654\","
    "\"idempotency_key_hash\":\"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\","
    "\"orders\":[{\"order_id\":\"ord_01J0A\",\"seller_id\":\"seller-1\",\"amount_minor\":15000000,"
    "\"currency\":\"IDR\",\"method\":\"VIRTUAL_ACCOUNT\",\"psp_preference\":null,\"payment_token\":null,"
    "\"bank_code\":\"BCA\",\"ewallet_channel\":null},{\"order_id\":\"ord_01J0B\",\"seller_id\":\"seller-2\","
    "\"amount_minor\":250000,\"currency\":\"IDR\",\"method\":\"CARD\",\"psp_preference\":\"stripe\","
    "\"payment_token\":\"pm_card_visa\",\"bank_code\":null,\"ewallet_channel\":null}],"
    "\"metadata\":{\"cart\":\"c-1\",\"channel\":\"app\"}}";

static const char ledger[] =
    "{\"message_id\":\"msg_le_01J0\",\"occurred_at\":1718000000123456,\"entry_id\":\"le_01J0ABCDEF\","
    "\"journal_id\":\"jr_01J0ABCDEF\",\"partner_id\":\"partner_a\",\"kind\":\"charge\",\"postings\":["
    "{\"account\":\"psp_clearing:xendit:IDR\",\"direction\":\"DEBIT\",\"amount_minor\":15000000,\"currency\":\"IDR\"},"
    "{\"account\":\"seller_wallet:partner_a:seller-1:IDR\",\"direction\":\"CREDIT\",\"amount_minor\":14850000,\"currency\":\"IDR\"},"
    "{\"account\":\"fees_revenue:IDR\",\"direction\":\"CREDIT\",\"amount_minor\":150000,\"currency\":\"IDR\"}],"
    "\"reference\":\"msg_out_01J0\",\"prev_hash\":\"5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8\","
    "\"hash\":\"6b86b273ff34fce19d6b804eff5a3f5747ada4ea2d3f1ecf6d0b8e4e6a1b2c3d\",\"posted_at\":1718000000123999}";

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int bench(const char *name, const char *text, long n)
{
    struct ks_err err = {0};
    const struct ks_schema *s = ks_schema_by_name(name);
    json_t *obj = json_loads(text, 0, NULL), *out = NULL;
    void *buf = NULL;
    size_t len = 0;
    if (!s || !obj || ks_serde_encode(s, obj, &buf, &len, &err) != KS_OK) {
        fprintf(stderr, "%s: setup failed: %s %s\n", name, err.field, err.msg);
        return 1;
    }
    double t0 = now();
    for (long i = 0; i < n; i++) {
        void *b;
        size_t l;
        if (ks_serde_encode(s, obj, &b, &l, &err) != KS_OK)
            return 1;
        free(b);
    }
    double t1 = now();
    for (long i = 0; i < n; i++) {
        if (ks_serde_decode(buf, len, NULL, &out, &err) != KS_OK)
            return 1;
        json_decref(out);
    }
    double t2 = now();
    printf("%-32s %4zu bytes  encode %9.0f msgs/s (%.2f us)  decode %9.0f msgs/s (%.2f us)\n",
           name, len, n / (t1 - t0), (t1 - t0) * 1e6 / n, n / (t2 - t1), (t2 - t1) * 1e6 / n);
    free(buf);
    json_decref(obj);
    return 0;
}

int main(int argc, char **argv)
{
    struct ks_err err = {0};
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 500000;
    if (n <= 0 || ks_serde_init(&err) != KS_OK) {
        fprintf(stderr, "usage: serde_bench [iterations]; init: %s\n", err.msg);
        return 2;
    }
    int rc = bench("kasir.payments.PaymentRequested", payment, n) |
             bench("kasir.ledger.LedgerEntry", ledger, n);
    ks_serde_shutdown();
    return rc;
}
