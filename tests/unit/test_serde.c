/* test_serde.c - CRC-64-AVRO, Parsing Canonical Form, the single-object codec, poison
 * handling, and agreement with two other Avro implementations:
 *   - python3-avro's canonical forms, when KS_PCF_VECTORS names a file of
 *     "<fullname>\t<canonical form>" lines (`make unit` (KS_PCF_VECTORS=build/gen/pcf_vectors.tsv) makes one);
 *   - avro-c, which must read our bodies and write back the same bytes. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <avro.h>
#include <jansson.h>

#include "lib/serde.h"
#include "ktest.h"

static void init_or_die(void)
{
    struct ks_err err = {0};
    if (ks_serde_init(&err) != KS_OK) {
        fprintf(stderr, "ks_serde_init: %s: %s\n", err.field, err.msg);
        exit(2);
    }
}

static json_t *J(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    if (!j) {
        fprintf(stderr, "bad test JSON: %s: %s\n", je.text, text);
        exit(2);
    }
    return j;
}

/* ---- CRC-64-AVRO ------------------------------------------------------------------------ */

KT_TEST(test_crc64_vectors)
{
    KT_CHECK(ks_avro_fingerprint64("", 0) == 0xc15d213aa4d7a795ULL);
    KT_CHECK(ks_avro_fingerprint64("\"null\"", 6) == 0x63dd24e7cc258f8aULL);
    KT_CHECK(ks_avro_fingerprint64("\"string\"", 8) == 0x8f014872634503c7ULL);
    KT_CHECK(ks_avro_fingerprint64("\"int\"", 5) == 0x7275d51a3f395c8fULL);
}

/* ---- Parsing Canonical Form ------------------------------------------------------------ */

static const struct {
    const char *in, *want;
} pcf_cases[] = {
    {"\"int\"", "\"int\""},
    {" { \"type\" : \"int\" } ", "\"int\""},
    {"{\"type\":\"long\",\"logicalType\":\"timestamp-micros\"}", "\"long\""},
    {"[\"null\", {\"type\": \"string\", \"avro.java.string\": \"String\"}]", "[\"null\",\"string\"]"},
    {"{\"type\":\"array\",\"items\":{\"type\":\"map\",\"values\":\"bytes\"},\"doc\":\"x\"}",
     "{\"type\":\"array\",\"items\":{\"type\":\"map\",\"values\":\"bytes\"}}"},
    /* docs, defaults, aliases, order, logical types stripped; attributes reordered;
     * namespace inherited by nested types; short references made full; a named type
     * written in full once, by name afterwards */
    {"{\"fields\": [\n"
     "   {\"type\": {\"type\": \"enum\", \"symbols\": [\"A\", \"B\"], \"name\": \"E\", \"doc\": \"e\","
     "      \"default\": \"A\"}, \"name\": \"e\", \"default\": \"A\", \"order\": \"descending\"},\n"
     "   {\"name\": \"e2\", \"type\": \"E\", \"aliases\": [\"x\"]},\n"
     "   {\"name\": \"f\", \"type\": {\"type\": \"fixed\", \"name\": \"c.F\", \"size\": 16,"
     "      \"logicalType\": \"decimal\", \"precision\": 4}},\n"
     "   {\"name\": \"n\", \"type\": {\"type\": \"record\", \"name\": \"N\", \"fields\": [\n"
     "      {\"name\": \"x\", \"type\": [\"null\", \"a.b.R\"], \"default\": null},\n"
     "      {\"name\": \"y\", \"type\": \"c.F\"},\n"
     "      {\"name\": \"t\", \"type\": {\"type\": \"long\", \"logicalType\": \"timestamp-micros\"}}]}}\n"
     " ], \"doc\": \"top\", \"name\": \"R\", \"namespace\": \"a.b\", \"type\": \"record\","
     " \"aliases\": [\"Old\"]}",
     "{\"name\":\"a.b.R\",\"type\":\"record\",\"fields\":["
     "{\"name\":\"e\",\"type\":{\"name\":\"a.b.E\",\"type\":\"enum\",\"symbols\":[\"A\",\"B\"]}},"
     "{\"name\":\"e2\",\"type\":\"a.b.E\"},"
     "{\"name\":\"f\",\"type\":{\"name\":\"c.F\",\"type\":\"fixed\",\"size\":16}},"
     "{\"name\":\"n\",\"type\":{\"name\":\"a.b.N\",\"type\":\"record\",\"fields\":["
     "{\"name\":\"x\",\"type\":[\"null\",\"a.b.R\"]},{\"name\":\"y\",\"type\":\"c.F\"},"
     "{\"name\":\"t\",\"type\":\"long\"}]}}]}"},
    /* a dotted name wins over "namespace" and is what nested types inherit; a nested
     * "namespace" applies to its type and below; "" is the null namespace */
    {"{\"type\":\"record\",\"name\":\"x.y.Top\",\"namespace\":\"ignored\",\"fields\":["
     "{\"name\":\"a\",\"type\":{\"type\":\"enum\",\"name\":\"Kind\",\"symbols\":[\"K\"]}},"
     "{\"name\":\"b\",\"type\":{\"type\":\"record\",\"name\":\"In\",\"namespace\":\"z\",\"fields\":["
     "  {\"name\":\"c\",\"type\":{\"type\":\"fixed\",\"name\":\"Md5\",\"size\":\"16\"}}]}},"
     "{\"name\":\"d\",\"type\":{\"type\":\"enum\",\"name\":\"Bare\",\"namespace\":\"\",\"symbols\":[\"Z\"]}},"
     "{\"name\":\"e\",\"type\":{\"type\":\"array\",\"items\":\"Kind\"}},"
     "{\"name\":\"f\",\"type\":{\"type\":\"map\",\"values\":\"z.Md5\"}},"
     "{\"name\":\"g\",\"type\":\"Bare\"}]}",
     "{\"name\":\"x.y.Top\",\"type\":\"record\",\"fields\":["
     "{\"name\":\"a\",\"type\":{\"name\":\"x.y.Kind\",\"type\":\"enum\",\"symbols\":[\"K\"]}},"
     "{\"name\":\"b\",\"type\":{\"name\":\"z.In\",\"type\":\"record\",\"fields\":["
     "{\"name\":\"c\",\"type\":{\"name\":\"z.Md5\",\"type\":\"fixed\",\"size\":16}}]}},"
     "{\"name\":\"d\",\"type\":{\"name\":\"Bare\",\"type\":\"enum\",\"symbols\":[\"Z\"]}},"
     "{\"name\":\"e\",\"type\":{\"type\":\"array\",\"items\":\"x.y.Kind\"}},"
     "{\"name\":\"f\",\"type\":{\"type\":\"map\",\"values\":\"z.Md5\"}},"
     "{\"name\":\"g\",\"type\":\"Bare\"}]}" /* [INTEGERS]: size "16" */},
    {"{\"type\":\"record\",\"name\":\"x.y.Top\",\"namespace\":\"ignored\",\"fields\":["
     "{\"name\":\"a\",\"type\":{\"type\":\"enum\",\"name\":\"Kind\",\"symbols\":[\"K\"]}},"
     "{\"name\":\"b\",\"type\":{\"type\":\"record\",\"name\":\"In\",\"namespace\":\"z\",\"fields\":["
     "  {\"name\":\"c\",\"type\":{\"type\":\"fixed\",\"name\":\"Md5\",\"size\":16}}]}},"
     "{\"name\":\"d\",\"type\":{\"type\":\"enum\",\"name\":\"Bare\",\"namespace\":\"\",\"symbols\":[\"Z\"]}},"
     "{\"name\":\"e\",\"type\":{\"type\":\"array\",\"items\":\"Kind\"}},"
     "{\"name\":\"f\",\"type\":{\"type\":\"map\",\"values\":\"z.Md5\"}},"
     "{\"name\":\"g\",\"type\":\"Bare\"}]}",
     "{\"name\":\"x.y.Top\",\"type\":\"record\",\"fields\":["
     "{\"name\":\"a\",\"type\":{\"name\":\"x.y.Kind\",\"type\":\"enum\",\"symbols\":[\"K\"]}},"
     "{\"name\":\"b\",\"type\":{\"name\":\"z.In\",\"type\":\"record\",\"fields\":["
     "{\"name\":\"c\",\"type\":{\"name\":\"z.Md5\",\"type\":\"fixed\",\"size\":16}}]}},"
     "{\"name\":\"d\",\"type\":{\"name\":\"Bare\",\"type\":\"enum\",\"symbols\":[\"Z\"]}},"
     "{\"name\":\"e\",\"type\":{\"type\":\"array\",\"items\":\"x.y.Kind\"}},"
     "{\"name\":\"f\",\"type\":{\"type\":\"map\",\"values\":\"z.Md5\"}},"
     "{\"name\":\"g\",\"type\":\"Bare\"}]}"},
    /* [STRINGS]: escapes in the input become plain UTF-8 (here in a name part) */
    {"{\"type\":\"enum\",\"name\":\"\\u0045n\",\"symbols\":[\"\\u0041\"]}",
     "{\"name\":\"En\",\"type\":\"enum\",\"symbols\":[\"A\"]}"},
    /* an error type is a record on the wire */
    {"{\"type\":\"error\",\"name\":\"Oops\",\"fields\":[]}",
     "{\"name\":\"Oops\",\"type\":\"record\",\"fields\":[]}"},
    /* malformed */
    {"", NULL},
    {"{\"type\":\"record\",\"name\":\"R\"}", NULL},
    {"{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":\"Nope\"}]}", NULL},
    {"{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":\"int\"},"
     "{\"name\":\"a\",\"type\":\"int\"}]}", NULL},
    {"{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":"
     "{\"type\":\"enum\",\"name\":\"R\",\"symbols\":[\"X\"]}}]}", NULL},
    {"{\"type\":\"enum\",\"name\":\"1bad\",\"symbols\":[\"X\"]}", NULL},
    {"{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"X\",\"X\"]}", NULL},
    {"[\"null\",\"null\"]", NULL},
    {"[\"null\",[\"int\"]]", NULL},
    {"{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":\"int\",\"default\":\"x\"}]}",
     NULL},
    {"{\"type\":\"record\",\"name\":\"int\",\"fields\":[]}", NULL},
    {"{\"type\":\"map\"}", NULL},
    {"{\"type\":\"fixed\",\"name\":\"F\",\"size\":-1}", NULL},
    {"{\"type\":\"fixed\",\"name\":\"F\",\"size\":\"1x\"}", NULL},
    {"{\"type\":\"fixed\",\"name\":\"F\",\"size\":\"\"}", NULL},
    {"{\"type\":\"fixed\",\"name\":\"F\",\"size\":\"0016\"}",
     "{\"name\":\"F\",\"type\":\"fixed\",\"size\":16}"},
    {"42", NULL},
};

KT_TEST(test_pcf_table)
{
    for (size_t i = 0; i < sizeof(pcf_cases) / sizeof(pcf_cases[0]); i++) {
        struct ks_err err = {0};
        char *got = ks_avro_canonical_form(pcf_cases[i].in, strlen(pcf_cases[i].in), &err);
        if (pcf_cases[i].want) {
            KT_CHECK_MSG(got && strcmp(got, pcf_cases[i].want) == 0, "case %zu: got %s (%s)", i,
                         got ? got : "NULL", err.msg);
        } else {
            KT_CHECK_MSG(!got && err.code == KS_ESCHEMA && err.msg[0], "case %zu: got %s", i,
                         got ? got : "NULL");
        }
        free(got);
    }
}

/* A recursive type: the inner reference is by name, and the codec handles it. */
KT_TEST(test_pcf_recursive)
{
    const char *s = "{\"type\":\"record\",\"name\":\"List\",\"namespace\":\"t\",\"fields\":["
                    "{\"name\":\"v\",\"type\":\"long\"},{\"name\":\"next\",\"type\":[\"null\",\"List\"]}]}";
    struct ks_err err = {0};
    char *got = ks_avro_canonical_form(s, strlen(s), &err);
    KT_CHECK(got != NULL);
    if (got)
        KT_STREQ(got, "{\"name\":\"t.List\",\"type\":\"record\",\"fields\":[{\"name\":\"v\","
                      "\"type\":\"long\"},{\"name\":\"next\",\"type\":[\"null\",\"t.List\"]}]}");
    free(got);
}

/* Every catalogue schema's canonical form equals python3-avro's (see pcf_vectors.sh). */
KT_TEST(test_pcf_matches_python)
{
    const char *path = getenv("KS_PCF_VECTORS");
    if (!path || !*path) {
        printf("test_pcf_matches_python: KS_PCF_VECTORS not set, skipped "
               "(make unit sets it)\n");
        return;
    }
    FILE *f = fopen(path, "r");
    KT_CHECK_MSG(f != NULL, "cannot open %s", path);
    if (!f)
        return;
    char *line = NULL;
    size_t cap = 0, seen = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        if (line[n - 1] == '\n')
            line[--n] = '\0';
        char *tab = strchr(line, '\t');
        KT_CHECK_MSG(tab != NULL, "bad vector line: %s", line);
        if (!tab)
            continue;
        *tab = '\0';
        const struct ks_schema *s = ks_schema_by_name(line);
        KT_CHECK_MSG(s != NULL, "%s is not in the catalogue", line);
        if (!s)
            continue;
        KT_CHECK_MSG(strcmp(ks_schema_canonical_form(s), tab + 1) == 0, "%s:\n  C:      %s\n  python: %s",
                     line, ks_schema_canonical_form(s), tab + 1);
        /* and the free function agrees with the catalogue's */
        struct ks_err err = {0};
        char *pcf = ks_avro_canonical_form(ks_schema_json(s), strlen(ks_schema_json(s)), &err);
        KT_CHECK(pcf && strcmp(pcf, tab + 1) == 0);
        free(pcf);
        seen++;
    }
    free(line);
    fclose(f);
    KT_INTEQ(seen, ks_schema_count());
    printf("test_pcf_matches_python: %zu canonical forms agree with python3-avro\n", seen);
}

/* ---- catalogue -------------------------------------------------------------------------- */

KT_TEST(test_before_init)
{
    uint8_t msg[16] = {0xC3, 0x01};
    json_t *out = NULL;
    struct ks_err err = {0};
    KT_CHECK(ks_schema_by_name("kasir.demo.DemoEvent") == NULL);
    KT_CHECK(ks_schema_count() == 0);
    KT_INTEQ(ks_serde_decode(msg, sizeof(msg), NULL, &out, &err), KS_ESTATE);
}

KT_TEST(test_catalogue)
{
    struct ks_err err = {0};
    KT_INTEQ(ks_serde_init(&err), KS_OK); /* idempotent */
    KT_CHECK(ks_schema_count() == 11);
    for (size_t i = 0; i < ks_schema_count(); i++) {
        const struct ks_schema *s = ks_schema_at(i);
        KT_CHECK(ks_schema_by_name(ks_schema_name(s)) == s);
        KT_CHECK(ks_schema_by_fingerprint(ks_schema_fingerprint(s)) == s);
        const char *pcf = ks_schema_canonical_form(s);
        KT_CHECK(ks_schema_fingerprint(s) == ks_avro_fingerprint64(pcf, strlen(pcf)));
        KT_INTEQ(ks_schema_version(s), 1);
        KT_CHECK(strstr(ks_schema_json(s), "\"doc\"") != NULL);
        KT_CHECK(strstr(pcf, "logicalType") == NULL && strstr(pcf, "doc") == NULL);
    }
    KT_CHECK(ks_schema_at(ks_schema_count()) == NULL);
    KT_CHECK(ks_schema_by_name("kasir.nope.Nope") == NULL);
    KT_CHECK(ks_schema_by_name(NULL) == NULL);
    /* shut down and come back */
    const char *name = "kasir.ledger.LedgerEntry";
    uint64_t fp = ks_schema_fingerprint(ks_schema_by_name(name));
    ks_serde_shutdown();
    KT_CHECK(ks_schema_by_name(name) == NULL);
    init_or_die();
    KT_CHECK(ks_schema_by_name(name) && ks_schema_fingerprint(ks_schema_by_name(name)) == fp);
}

/* ---- round trips ----------------------------------------------------------------------- */

static const char *const samples[] = {
    "{\"$\":\"kasir.payments.PaymentRequested\",\"message_id\":\"msg-pay-1\",\"occurred_at\":1718000000123456,"
    "\"partner_id\":\"p_A\",\"payment_id\":\"pay_01J\",\"buyer_id\":\"b-9\",\"checkout_id\":\"co-77\","
    "\"idempotency_key_hash\":\"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\","
    "\"orders\":[{\"order_id\":\"ord_1\",\"seller_id\":\"s-1\",\"amount_minor\":15000000,\"currency\":\"IDR\","
    "\"method\":\"VIRTUAL_ACCOUNT\",\"psp_preference\":null,\"payment_token\":null,\"bank_code\":\"BCA\","
    "\"ewallet_channel\":null},{\"order_id\":\"ord_2\",\"seller_id\":\"s-2\",\"amount_minor\":1,"
    "\"currency\":\"IDR\",\"method\":\"CARD\",\"psp_preference\":\"stripe\",\"payment_token\":\"pm_card_visa\","
    "\"bank_code\":null,\"ewallet_channel\":null}],\"metadata\":{\"cart\":\"c1\",\"\\u00e9t\\u00e9\":\"\\u2603\"}}",
    "{\"$\":\"kasir.refunds.RefundRequested\",\"message_id\":\"m\",\"occurred_at\":0,\"partner_id\":\"p\","
    "\"refund_id\":\"r\",\"payment_id\":\"pay\",\"order_id\":\"o\",\"amount_minor\":500,\"currency\":\"IDR\","
    "\"reason\":\"damaged\"}",
    "{\"$\":\"kasir.payouts.PayoutRequested\",\"message_id\":\"m\",\"occurred_at\":-1,\"partner_id\":\"p\","
    "\"payout_id\":\"po\",\"seller_id\":\"s\",\"amount_minor\":9223372036854775807,\"currency\":\"IDR\","
    "\"channel\":\"EWALLET\",\"bank_code\":null,\"ewallet_channel\":\"OVO\",\"destination_account\":\"+62811\","
    "\"account_holder\":null,\"description\":\"weekly\"}",
    "{\"$\":\"kasir.psp.PspCommand\",\"message_id\":\"m\",\"occurred_at\":1,\"partner_id\":\"p\","
    "\"command_id\":\"c\",\"kind\":\"PAYOUT\",\"payment_id\":null,\"order_id\":null,\"refund_id\":null,"
    "\"payout_id\":\"po\",\"psp\":\"xendit\",\"psp_idempotency_key\":\"k\",\"amount_minor\":100,"
    "\"currency\":\"IDR\",\"method\":\"BANK_TRANSFER\",\"attempt\":2147483647,\"details\":{}}",
    "{\"$\":\"kasir.webhooks.WebhookReceived\",\"message_id\":\"m\",\"occurred_at\":2,\"webhook_id\":\"w\","
    "\"psp\":\"stripe\",\"event_id\":\"evt_1\",\"received_at\":3,\"headers\":{\"content-type\":\"application/json\"},"
    "\"body\":\"eyJpZCI6ImV2dF8xIn0AAf8=\",\"verification\":\"stripe-signature\"}",
    "{\"$\":\"kasir.psp.PspOutcome\",\"message_id\":\"m\",\"occurred_at\":4,\"partner_id\":\"p\",\"outcome_id\":\"o\","
    "\"order_id\":\"ord\",\"payment_id\":\"pay\",\"refund_id\":null,\"payout_id\":null,\"kind\":\"CHARGE\","
    "\"status\":\"PENDING_CUSTOMER\",\"psp\":\"xendit\",\"psp_reference\":\"va-1\",\"amount_minor\":10000,"
    "\"fee_minor\":0,\"currency\":\"IDR\",\"failure_code\":null,\"failure_message\":null,"
    "\"next_action\":{\"va_number\":\"8808123\",\"expires_at\":\"2024-06-11T00:00:00Z\"},\"source\":\"EXECUTOR\"}",
    "{\"$\":\"kasir.ledger.LedgerEntry\",\"message_id\":\"m\",\"occurred_at\":5,\"entry_id\":\"e\",\"journal_id\":\"j\","
    "\"partner_id\":null,\"kind\":\"charge\",\"postings\":[{\"account\":\"psp_clearing:xendit:IDR\","
    "\"direction\":\"DEBIT\",\"amount_minor\":10000,\"currency\":\"IDR\"},{\"account\":\"seller_wallet:p:s:IDR\","
    "\"direction\":\"CREDIT\",\"amount_minor\":10000,\"currency\":\"IDR\"}],\"reference\":\"m0\","
    "\"prev_hash\":\"00\",\"hash\":\"ab\",\"posted_at\":6}",
    "{\"$\":\"kasir.settlement.SettlementRow\",\"message_id\":\"m\",\"occurred_at\":7,\"file_id\":\"f\",\"psp\":\"midtrans\","
    "\"row_number\":1,\"psp_reference\":\"ref\",\"amount_minor\":10000,\"fee_minor\":-250,\"currency\":\"IDR\","
    "\"status\":\"settled\",\"settled_at\":8,\"raw\":{\"order_id\":\"x\",\"gross\":\"100.00\"}}",
    "{\"$\":\"kasir.recon.ReconResult\",\"message_id\":\"m\",\"occurred_at\":9,\"file_id\":\"f\",\"psp\":\"sandbox\","
    "\"result\":\"MISMATCH\",\"mismatch_class\":\"amount\",\"psp_reference\":\"ref\",\"order_id\":null,"
    "\"expected_minor\":10000,\"actual_minor\":9999,\"currency\":\"IDR\",\"detail\":null}",
    "{\"$\":\"kasir.demo.DemoEvent\",\"message_id\":\"m\",\"occurred_at\":10,\"event_id\":\"ev\",\"seq\":3,"
    "\"account\":\"acc\",\"amount_minor\":-5,\"currency\":\"XXX\",\"note\":null}",
    "{\"$\":\"kasir.demo.DemoApplied\",\"message_id\":\"m\",\"occurred_at\":11,\"event_id\":\"ev\","
    "\"account\":\"acc\",\"amount_minor\":5,\"currency\":\"IDR\",\"applied_seq\":-9223372036854775807}",
};
#define N_SAMPLES (sizeof(samples) / sizeof(samples[0]))

/* A sample object without its "$" (the schema name) member; *s gets the schema. */
static json_t *sample(size_t i, const struct ks_schema **s)
{
    json_t *j = J(samples[i]);
    *s = ks_schema_by_name(json_string_value(json_object_get(j, "$")));
    json_object_del(j, "$");
    return j;
}

static int encode_sample(size_t i, const struct ks_schema **s, void **buf, size_t *len)
{
    json_t *j = sample(i, s);
    struct ks_err err = {0};
    int rc = *s ? (int)ks_serde_encode(*s, j, buf, len, &err) : -1;
    json_decref(j);
    return rc;
}

/* avro-c reads our body and writes back the same bytes. */
static int avro_c_agrees(const struct ks_schema *s, const uint8_t *body, size_t len)
{
    avro_schema_t schema = NULL;
    avro_value_iface_t *iface = NULL;
    avro_value_t v;
    avro_reader_t r = NULL;
    avro_writer_t w = NULL;
    char *copy = malloc(len + 1), *back = malloc(len + 16);
    size_t size = 0;
    int ok = 0, have_value = 0;

    if (!copy || !back || avro_schema_from_json_length(ks_schema_json(s), strlen(ks_schema_json(s)), &schema))
        goto out;
    memcpy(copy, body, len);
    if (!(iface = avro_generic_class_from_schema(schema)) || avro_generic_value_new(iface, &v))
        goto out;
    have_value = 1;
    r = avro_reader_memory(copy, (int64_t)len);
    w = avro_writer_memory(back, (int64_t)len + 16);
    if (avro_value_read(r, &v) || avro_value_sizeof(&v, &size) || size != len ||
        avro_value_write(w, &v) || avro_writer_tell(w) != (int64_t)len)
        goto out;
    ok = memcmp(back, body, len) == 0;
out:
    if (!ok)
        fprintf(stderr, "avro-c: %s\n", avro_strerror());
    if (have_value)
        avro_value_decref(&v);
    if (iface)
        avro_value_iface_decref(iface);
    if (schema)
        avro_schema_decref(schema);
    if (r)
        avro_reader_free(r);
    if (w)
        avro_writer_free(w);
    free(copy);
    free(back);
    return ok;
}

KT_TEST(test_round_trip_every_schema)
{
    size_t covered = 0;
    for (size_t i = 0; i < N_SAMPLES; i++) {
        const struct ks_schema *s = NULL, *w = NULL;
        json_t *want = sample(i, &s), *got = NULL;
        void *buf = NULL;
        size_t len = 0;
        struct ks_err err = {0};
        KT_CHECK_MSG(s != NULL, "sample %zu: no schema", i);
        if (!s) {
            json_decref(want);
            continue;
        }
        KT_CHECK_MSG(ks_serde_encode(s, want, &buf, &len, &err) == KS_OK, "%s: %s: %s",
                     ks_schema_name(s), err.field, err.msg);
        KT_CHECK(len > 10 && ((uint8_t *)buf)[0] == 0xC3 && ((uint8_t *)buf)[1] == 0x01);
        uint64_t fp = 0;
        for (int b = 0; b < 8; b++)
            fp |= (uint64_t)((uint8_t *)buf)[2 + b] << (8 * b);
        KT_CHECK(fp == ks_schema_fingerprint(s));
        KT_CHECK_MSG(ks_serde_decode(buf, len, &w, &got, &err) == KS_OK, "%s: %s", ks_schema_name(s),
                     err.msg);
        KT_CHECK(w == s);
        KT_CHECK_MSG(got && json_equal(got, want), "%s round trip differs", ks_schema_name(s));
        KT_CHECK_MSG(avro_c_agrees(s, (uint8_t *)buf + 10, len - 10), "%s: avro-c disagrees",
                     ks_schema_name(s));
        covered++;
        json_decref(got);
        json_decref(want);
        free(buf);
    }
    KT_INTEQ(covered, ks_schema_count()); /* a new schema needs a sample here */
}

KT_TEST(test_defaults_and_nulls)
{
    const struct ks_schema *s = ks_schema_by_name("kasir.refunds.RefundRequested");
    json_t *in = J("{\"message_id\":\"m\",\"occurred_at\":1,\"partner_id\":\"p\",\"refund_id\":\"r\","
                   "\"payment_id\":\"pay\",\"order_id\":\"o\",\"amount_minor\":5,\"currency\":\"IDR\"}");
    json_t *out = NULL;
    void *buf = NULL;
    size_t len;
    struct ks_err err = {0};
    KT_INTEQ(ks_serde_encode(s, in, &buf, &len, &err), KS_OK);
    KT_INTEQ(ks_serde_decode(buf, len, NULL, &out, &err), KS_OK);
    KT_CHECK(out && json_is_null(json_object_get(out, "reason")));
    free(buf);
    json_decref(out);
    json_decref(in);
}

KT_TEST(test_to_json_text)
{
    const struct ks_schema *s;
    void *buf = NULL;
    size_t len = 0;
    struct ks_err err = {0};
    KT_INTEQ(encode_sample(N_SAMPLES - 2, &s, &buf, &len), KS_OK);
    char *text = ks_serde_to_json_text(buf, len, &err);
    KT_CHECK(text != NULL);
    if (text)
        KT_STREQ(text, "{\"$schema\":\"kasir.demo.DemoEvent\",\"message_id\":\"m\",\"occurred_at\":10,"
                       "\"event_id\":\"ev\",\"seq\":3,\"account\":\"acc\",\"amount_minor\":-5,"
                       "\"currency\":\"XXX\",\"note\":null}");
    free(text);
    KT_CHECK(ks_serde_to_json_text(buf, 5, &err) == NULL && err.code == KS_EPOISON);
    KT_CHECK(ks_serde_to_json_text(buf, len - 1, &err) == NULL && err.code == KS_EPOISON);
    free(buf);
}

/* ---- encode errors name the field ---------------------------------------------------- */

static void expect_encode_error(const char *schema, const char *text, const char *field,
                                const char *msg_part)
{
    const struct ks_schema *s = ks_schema_by_name(schema);
    json_t *j = J(text);
    void *buf = NULL;
    size_t len = 0;
    struct ks_err err = {0};
    enum ks_code rc = ks_serde_encode(s, j, &buf, &len, &err);
    KT_CHECK_MSG(rc == KS_EINVAL && strcmp(err.field, field) == 0 && strstr(err.msg, msg_part),
                 "%s: got %s field \"%s\" msg \"%s\"", text, ks_code_name(rc), err.field, err.msg);
    KT_CHECK(buf == NULL);
    free(buf);
    json_decref(j);
}

#define DEMO_OK "\"message_id\":\"m\",\"occurred_at\":1,\"event_id\":\"e\",\"account\":\"a\",\"currency\":\"IDR\""

KT_TEST(test_encode_errors)
{
    expect_encode_error("kasir.demo.DemoEvent", "{" DEMO_OK ",\"amount_minor\":1}", "seq",
                        "missing field");
    expect_encode_error("kasir.demo.DemoEvent", "{" DEMO_OK ",\"seq\":1,\"amount_minor\":\"1\"}",
                        "amount_minor", "expected an integer, got a string");
    expect_encode_error("kasir.demo.DemoEvent", "{" DEMO_OK ",\"seq\":1,\"amount_minor\":1.5}",
                        "amount_minor", "expected an integer");
    expect_encode_error("kasir.demo.DemoEvent", "{" DEMO_OK ",\"seq\":1,\"amount_minor\":1,\"amount\":1}",
                        "amount", "unknown field");
    expect_encode_error("kasir.demo.DemoEvent", "{" DEMO_OK ",\"seq\":1,\"amount_minor\":1,\"note\":5}",
                        "note", "expected a string, got an integer");
    expect_encode_error("kasir.demo.DemoEvent", "[]", "", "expected an object");

    char text[4096];
    const char *pay_head =
        "{\"message_id\":\"m\",\"occurred_at\":1,\"partner_id\":\"p\",\"payment_id\":\"x\",\"buyer_id\":\"b\","
        "\"checkout_id\":\"c\",\"idempotency_key_hash\":\"h\",\"metadata\":{},\"orders\":[";
    const char *ord_ok = "{\"order_id\":\"o\",\"seller_id\":\"s\",\"amount_minor\":1,\"currency\":\"IDR\","
                         "\"method\":\"QRIS\"}";
    snprintf(text, sizeof(text), "%s%s,%s,{\"order_id\":\"o\",\"seller_id\":\"s\",\"amount_minor\":true,"
             "\"currency\":\"IDR\",\"method\":\"QRIS\"}]}", pay_head, ord_ok, ord_ok);
    expect_encode_error("kasir.payments.PaymentRequested", text, "orders[2].amount_minor",
                        "expected an integer, got a boolean");
    snprintf(text, sizeof(text), "%s%s,{\"order_id\":\"o\",\"seller_id\":\"s\",\"amount_minor\":1,"
             "\"currency\":\"IDR\",\"method\":\"CASH\"}]}", pay_head, ord_ok);
    expect_encode_error("kasir.payments.PaymentRequested", text, "orders[1].method",
                        "unknown symbol \"CASH\" of kasir.payments.PaymentMethod");
    snprintf(text, sizeof(text), "%s{\"order_id\":\"o\",\"seller_id\":\"s\",\"currency\":\"IDR\","
             "\"method\":\"QRIS\"}]}", pay_head);
    expect_encode_error("kasir.payments.PaymentRequested", text, "orders[0].amount_minor",
                        "missing field");
    /* metadata is a map */
    snprintf(text, sizeof(text), "%s%s]}", pay_head, ord_ok);
    char *meta = strstr(text, "\"metadata\":{}");
    memcpy(meta, "\"metadata\":[]", 13);
    expect_encode_error("kasir.payments.PaymentRequested", text, "metadata", "expected an object");

    expect_encode_error("kasir.psp.PspCommand",
                        "{\"message_id\":\"m\",\"occurred_at\":1,\"partner_id\":\"p\",\"command_id\":\"c\","
                        "\"kind\":\"CHARGE\",\"psp\":\"s\",\"psp_idempotency_key\":\"k\",\"amount_minor\":1,"
                        "\"currency\":\"IDR\",\"method\":\"CARD\",\"attempt\":2147483648,\"details\":{}}",
                        "attempt", "out of the int range");
    expect_encode_error("kasir.psp.PspCommand",
                        "{\"message_id\":\"m\",\"occurred_at\":1,\"partner_id\":\"p\",\"command_id\":\"c\","
                        "\"kind\":\"CHARGE\",\"psp\":\"s\",\"psp_idempotency_key\":\"k\",\"amount_minor\":1,"
                        "\"currency\":\"IDR\",\"method\":\"CARD\",\"attempt\":1,\"details\":{\"bank\":7}}",
                        "details.bank", "expected a string");
    expect_encode_error("kasir.webhooks.WebhookReceived",
                        "{\"message_id\":\"m\",\"occurred_at\":1,\"webhook_id\":\"w\",\"psp\":\"s\","
                        "\"received_at\":1,\"headers\":{},\"body\":\"not base64!\",\"verification\":\"v\"}",
                        "body", "not valid base64");
    expect_encode_error("kasir.webhooks.WebhookReceived",
                        "{\"message_id\":\"m\",\"occurred_at\":1,\"webhook_id\":\"w\",\"psp\":\"s\","
                        "\"received_at\":1,\"headers\":{},\"body\":\"QQ=\",\"verification\":\"v\"}",
                        "body", "not valid base64");

    struct ks_err err = {0};
    void *buf = NULL;
    size_t len;
    json_t *empty = json_object();
    KT_INTEQ(ks_serde_encode(NULL, empty, &buf, &len, &err), KS_EINVAL);
    json_decref(empty);
}

KT_TEST(test_bytes_base64)
{
    static const char *const bodies[] = {"", "QQ==", "QUI=", "QUJD", "AP8A/w=="};
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        char text[512];
        snprintf(text, sizeof(text),
                 "{\"message_id\":\"m\",\"occurred_at\":1,\"webhook_id\":\"w\",\"psp\":\"s\",\"event_id\":null,"
                 "\"received_at\":1,\"headers\":{},\"body\":\"%s\",\"verification\":\"v\"}",
                 bodies[i]);
        json_t *in = J(text), *out = NULL;
        void *buf = NULL;
        size_t len;
        struct ks_err err = {0};
        KT_INTEQ(ks_serde_encode(ks_schema_by_name("kasir.webhooks.WebhookReceived"), in, &buf, &len, &err),
                 KS_OK);
        KT_INTEQ(ks_serde_decode(buf, len, NULL, &out, &err), KS_OK);
        KT_CHECK_MSG(out && json_equal(in, out), "body %s", bodies[i]);
        json_decref(in);
        json_decref(out);
        free(buf);
    }
}

/* ---- poison -------------------------------------------------------------------------- */

static enum ks_code try_decode(const void *buf, size_t len, struct ks_err *err)
{
    json_t *out = NULL;
    enum ks_code rc = ks_serde_decode(buf, len, NULL, &out, err);
    if (rc == KS_OK)
        KT_CHECK(out != NULL);
    json_decref(out);
    return rc;
}

KT_TEST(test_poison_header)
{
    const struct ks_schema *s;
    uint8_t *buf = NULL;
    size_t len = 0;
    struct ks_err err = {0};
    KT_INTEQ(encode_sample(0, &s, (void **)&buf, &len), KS_OK);
    for (size_t n = 0; n < 10; n++) {
        KT_INTEQ(try_decode(buf, n, &err), KS_EPOISON);
        KT_CHECK(strstr(err.msg, "too short") != NULL);
    }
    KT_INTEQ(try_decode(NULL, 0, &err), KS_EPOISON);
    buf[0] = 0xC2;
    KT_INTEQ(try_decode(buf, len, &err), KS_EPOISON);
    KT_CHECK(strstr(err.msg, "bad magic") != NULL);
    buf[0] = 0xC3;
    buf[1] = 0x02;
    KT_INTEQ(try_decode(buf, len, &err), KS_EPOISON);
    buf[1] = 0x01;
    buf[5] ^= 0x10;
    KT_INTEQ(try_decode(buf, len, &err), KS_EPOISON);
    KT_CHECK(strstr(err.msg, "unknown schema fingerprint") != NULL);
    buf[5] ^= 0x10;
    KT_INTEQ(try_decode(buf, len, &err), KS_OK);
    free(buf);
}

KT_TEST(test_poison_truncated_and_trailing)
{
    for (size_t i = 0; i < N_SAMPLES; i++) {
        const struct ks_schema *s;
        uint8_t *buf = NULL;
        size_t len = 0;
        struct ks_err err = {0};
        if (encode_sample(i, &s, (void **)&buf, &len) != KS_OK) {
            KT_CHECK(0);
            continue;
        }
        size_t bad = 0;
        for (size_t n = 10; n < len; n++) { /* every strict prefix of the body */
            uint8_t *cut = malloc(n);      /* its own allocation: ASan sees any overread */
            memcpy(cut, buf, n);
            if (try_decode(cut, n, &err) != KS_EPOISON)
                bad++;
            free(cut);
        }
        KT_CHECK_MSG(bad == 0, "%s: %zu truncations were not poison", ks_schema_name(s), bad);
        uint8_t *longer = malloc(len + 3);
        memcpy(longer, buf, len);
        memcpy(longer + len, "\x00zz", 3);
        KT_INTEQ(try_decode(longer, len + 1, &err), KS_EPOISON);
        KT_CHECK(strstr(err.msg, "1 trailing bytes") != NULL);
        KT_INTEQ(try_decode(longer, len + 3, &err), KS_EPOISON);
        free(longer);
        free(buf);
    }
}

/* A DemoEvent header followed by a hand-made body. */
static enum ks_code decode_demo_body(const uint8_t *body, size_t n, struct ks_err *err)
{
    uint8_t msg[256];
    uint64_t fp = ks_schema_fingerprint(ks_schema_by_name("kasir.demo.DemoEvent"));
    msg[0] = 0xC3;
    msg[1] = 0x01;
    for (int i = 0; i < 8; i++)
        msg[2 + i] = (uint8_t)(fp >> (8 * i));
    memcpy(msg + 10, body, n);
    return try_decode(msg, 10 + n, err);
}

KT_TEST(test_poison_crafted)
{
    struct ks_err err = {0};
    /* message_id "m", occurred_at 1, event_id "e", seq 1, account "a", amount 2, "IDR", note null */
    static const uint8_t good[] = {2, 'm', 2, 2, 'e', 2, 2, 'a', 4, 6, 'I', 'D', 'R', 0};
    KT_INTEQ(decode_demo_body(good, sizeof(good), &err), KS_OK);
    /* string length far beyond the message */
    static const uint8_t huge[] = {0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 'm'};
    KT_INTEQ(decode_demo_body(huge, sizeof(huge), &err), KS_EPOISON);
    KT_CHECK(strstr(err.msg, "exceeds the message") && strcmp(err.field, "message_id") == 0);
    /* negative length */
    static const uint8_t neg[] = {1, 'm'};
    KT_INTEQ(decode_demo_body(neg, sizeof(neg), &err), KS_EPOISON);
    /* an 11-byte varint */
    static const uint8_t longvar[] = {2, 'm', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    KT_INTEQ(decode_demo_body(longvar, sizeof(longvar), &err), KS_EPOISON);
    KT_CHECK(strstr(err.msg, "varint") && strcmp(err.field, "occurred_at") == 0);
    /* union branch 2 of [null, string] */
    uint8_t badunion[sizeof(good)];
    memcpy(badunion, good, sizeof(good));
    badunion[sizeof(good) - 1] = 4;
    KT_INTEQ(decode_demo_body(badunion, sizeof(badunion), &err), KS_EPOISON);
    KT_CHECK(strstr(err.msg, "union branch") && strcmp(err.field, "note") == 0);
    /* a string that is not UTF-8 */
    uint8_t badutf[sizeof(good)];
    memcpy(badutf, good, sizeof(good));
    badutf[1] = 0xff;
    KT_INTEQ(decode_demo_body(badutf, sizeof(badutf), &err), KS_EPOISON);
    KT_CHECK(strstr(err.msg, "UTF-8") != NULL);

    /* LedgerEntry: enum index out of range and a huge block count */
    const struct ks_schema *s = ks_schema_by_name("kasir.ledger.LedgerEntry");
    json_t *j = J("{\"message_id\":\"m\",\"occurred_at\":1,\"entry_id\":\"e\",\"journal_id\":\"j\",\"kind\":\"k\","
                  "\"postings\":[{\"account\":\"a\",\"direction\":\"CREDIT\",\"amount_minor\":1,\"currency\":\"IDR\"}],"
                  "\"reference\":\"r\",\"prev_hash\":\"p\",\"hash\":\"h\",\"posted_at\":1}");
    uint8_t *buf = NULL;
    size_t len = 0;
    KT_INTEQ(ks_serde_encode(s, j, (void **)&buf, &len, &err), KS_OK);
    /* body: m(2) ts(1) e(2) j(2) null(1) k(2) count(1) a(2) dir(1) ... */
    size_t count_at = 10 + 2 + 1 + 2 + 2 + 1 + 2, dir_at = count_at + 1 + 2;
    KT_INTEQ(buf[count_at], 2);
    KT_INTEQ(buf[dir_at], 2);
    buf[dir_at] = 4;
    KT_INTEQ(try_decode(buf, len, &err), KS_EPOISON);
    KT_CHECK(strstr(err.msg, "enum index") && strcmp(err.field, "direction") == 0);
    buf[dir_at] = 2;
    buf[count_at] = 0x7e; /* 63 postings: more than the bytes left */
    KT_INTEQ(try_decode(buf, len, &err), KS_EPOISON);
    KT_CHECK(strstr(err.msg, "block count") != NULL);
    buf[count_at] = 1; /* -1: a block with a byte size, which must be there */
    KT_INTEQ(try_decode(buf, len, &err), KS_EPOISON);
    free(buf);
    json_decref(j);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

KT_TEST(test_poison_random)
{
    size_t ok = 0, poison = 0, other = 0;
    uint8_t *enc[N_SAMPLES];
    size_t enclen[N_SAMPLES];
    for (size_t i = 0; i < N_SAMPLES; i++) {
        const struct ks_schema *s;
        if (encode_sample(i, &s, (void **)&enc[i], &enclen[i]) != KS_OK) {
            enc[i] = NULL;
            enclen[i] = 0;
        }
    }
    for (int iter = 0; iter < 30000; iter++) {
        size_t which = rnd() % N_SAMPLES, len;
        uint8_t *m;
        int mode = iter % 3;
        if (mode == 0) { /* random bytes after a valid header */
            len = 10 + rnd() % 200;
            m = malloc(len);
            memcpy(m, enc[which], 10);
            for (size_t k = 10; k < len; k++)
                m[k] = (uint8_t)rnd();
        } else if (mode == 1) { /* a valid message with a few bytes changed */
            len = enclen[which];
            m = malloc(len);
            memcpy(m, enc[which], len);
            for (int k = 0, flips = 1 + (int)(rnd() % 4); k < flips; k++)
                m[10 + rnd() % (len - 10)] = (uint8_t)rnd();
        } else { /* anything at all */
            len = rnd() % 64;
            m = malloc(len ? len : 1);
            for (size_t k = 0; k < len; k++)
                m[k] = (uint8_t)rnd();
            if (len >= 2 && (rnd() & 1)) {
                m[0] = 0xC3;
                m[1] = 0x01;
            }
        }
        struct ks_err err = {0};
        enum ks_code rc = try_decode(m, len, &err);
        if (rc == KS_OK)
            ok++;
        else if (rc == KS_EPOISON && err.msg[0])
            poison++;
        else
            other++;
        free(m);
    }
    for (size_t i = 0; i < N_SAMPLES; i++)
        free(enc[i]);
    KT_INTEQ(other, 0);
    KT_CHECK(poison > 20000);
    printf("test_poison_random: 30000 inputs, %zu decoded, %zu poison\n", ok, poison);
}

/* ---- threads ------------------------------------------------------------------------- */

static void *worker(void *arg)
{
    size_t base = (size_t)arg, failures = 0;
    for (int iter = 0; iter < 2000; iter++) {
        const struct ks_schema *s, *w = NULL;
        size_t i = (base + (size_t)iter) % N_SAMPLES;
        json_t *in = sample(i, &s), *out = NULL;
        void *buf = NULL;
        size_t len;
        struct ks_err err = {0};
        if (ks_serde_encode(s, in, &buf, &len, &err) != KS_OK ||
            ks_serde_decode(buf, len, &w, &out, &err) != KS_OK || w != s || !json_equal(in, out))
            failures++;
        json_decref(in);
        json_decref(out);
        free(buf);
    }
    return (void *)failures;
}

KT_TEST(test_threads)
{
    pthread_t t[4];
    for (size_t i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, worker, (void *)i);
    size_t failures = 0;
    for (size_t i = 0; i < 4; i++) {
        void *r;
        pthread_join(t[i], &r);
        failures += (size_t)r;
    }
    KT_INTEQ(failures, 0);
}

KT_TEST(test_init)
{
    init_or_die();
}

KT_TEST(test_shutdown)
{
    ks_serde_shutdown();
    ks_serde_shutdown(); /* twice is fine */
}

KT_MAIN(test_crc64_vectors, test_pcf_table, test_pcf_recursive, test_before_init, test_init,
        test_catalogue, test_pcf_matches_python, test_round_trip_every_schema,
        test_defaults_and_nulls, test_to_json_text, test_encode_errors, test_bytes_base64,
        test_poison_header, test_poison_truncated_and_trailing, test_poison_crafted,
        test_poison_random, test_threads, test_shutdown)
