/* test_ingress_validate.c - the ingress's request parsers (producers/ingress/validate.c is
 * compiled into this test: it is pure and has no other dependency than lib/). */
#include <string.h>

#include "producers/ingress/validate.c"
#include "tests/unit/ktest.h"

struct vcase {
    const char *body;
    const char *code; /* NULL: accepted */
    const char *field;
};

static const struct vcase payments[] = {
    {"{\"buyer\":{\"id\":\"b\"},\"checkout_id\":\"c\",\"payment_orders\":[{\"seller_id\":\"s\","
     "\"amount\":\"0.01\",\"currency\":\"IDR\",\"method\":\"qris\"}]}", NULL, NULL},
    {"{\"buyer\":{\"id\":\"b\"},\"checkout_id\":\"c\",\"payment_orders\":[{\"seller_id\":\"s\","
     "\"amount\":\"1000000000.00\",\"currency\":\"IDR\",\"method\":\"qris\"}]}", NULL, NULL},
    {"{\"buyer\":{\"id\":\"b\"},\"checkout_id\":\"c\",\"payment_orders\":[{\"seller_id\":\"s\","
     "\"amount\":\"1000000000.01\",\"currency\":\"IDR\",\"method\":\"qris\"}]}",
     "amount_out_of_range", "payment_orders[0].amount"},
    {"{\"buyer\":{\"id\":\"b\"},\"checkout_id\":\"c\",\"payment_orders\":[{\"seller_id\":\"s\","
     "\"amount\":\"5\",\"currency\":\"JPY\",\"method\":\"card\",\"payment_token\":\"tok_1\"}]}",
     NULL, NULL},
    {"{\"buyer\":{\"id\":\"b\"},\"checkout_id\":\"c\",\"payment_orders\":[{\"seller_id\":\"s\","
     "\"amount\":\"5.5\",\"currency\":\"JPY\",\"method\":\"qris\"}]}", "amount_invalid",
     "payment_orders[0].amount"},
    {"{\"checkout_id\":\"c\"}", "field_required", "buyer"},
    {"{\"buyer\":{\"id\":\"b\"},\"checkout_id\":\"c\",\"payment_orders\":[],\"x\":1}",
     "field_unknown", "x"},
    {"{\"a\":1,\"a\":2}", "duplicate_field", ""},
    {"null", "body_not_object", ""},
    {"", "malformed_json", ""},
};

KT_TEST(payment_table)
{
    size_t i;

    for (i = 0; i < sizeof(payments) / sizeof(payments[0]); i++) {
        struct ing_payment out;
        struct ing_problem p = {0};
        int rc = ing_parse_payment(payments[i].body, strlen(payments[i].body), &out, &p);
        if (!payments[i].code) {
            KT_CHECK_MSG(rc == 0, "case %zu refused: %s %s", i, p.code, p.detail);
            json_decref(out.root);
        } else {
            KT_CHECK_MSG(rc != 0 && strcmp(p.code, payments[i].code) == 0, "case %zu: %s", i,
                         rc ? p.code : "accepted");
            if (rc)
                KT_STREQ(p.field, payments[i].field);
        }
    }
}

KT_TEST(card_numbers)
{
    KT_CHECK(ing_has_card_number("4111111111111111"));
    KT_CHECK(ing_has_card_number("pay with 4111 1111 1111 1111 please"));
    KT_CHECK(ing_has_card_number("5500-0000-0000-0004"));
    KT_CHECK(!ing_has_card_number("4111111111111112"));
    KT_CHECK(!ing_has_card_number("tok_4111"));
    KT_CHECK(!ing_has_card_number("20260501"));
    /* the forms of issue 12: dots, slashes, embedded in a longer run; Amex grouping */
    KT_CHECK(ing_has_card_number("4111.1111.1111.1111"));
    KT_CHECK(ing_has_card_number("4111/1111/1111/1111"));
    KT_CHECK(ing_has_card_number("ref004111111111111111999"));
    KT_CHECK(ing_has_card_number("3782 822463 10005"));
    /* not a card: no issuer's prefix, a UUID's grouping, mixed separators */
    KT_CHECK(!ing_has_card_number("00000000000000000000000"));
    KT_CHECK(!ing_has_card_number("1234567890123"));
    KT_CHECK(!ing_has_card_number("12345678-4111-1111-1111-123456789012"));
    KT_CHECK(!ing_has_card_number("4111 1111-1111.1111"));
}

static int count_rows(const struct ing_settle_row *row, void *opaque)
{
    (*(int *)opaque)++;
    KT_CHECK(row->amount_minor >= 0);
    return 0;
}

KT_TEST(settlement_csv)
{
    const char *ok = "psp_reference,amount,fee,currency,status,settled_at\r\n"
                     "a,1.00,0.01,IDR,settled,2026-05-01T10:00:00Z\r\n"
                     "\"b,\"\"q\"\"\",2.00,0,IDR,REFUNDED,2026-05-01T10:00:00.25Z\r\n";
    const char *bad = "psp_reference,amount,fee,currency,status,settled_at\n"
                      "a,1.00,0,IDR,settled,2026-05-01T10:00:00Z\n"
                      "b,1.00,0,IDR,lost,2026-05-01T10:00:00Z\n";
    struct ing_problem p = {0};
    int n = 0;

    KT_INTEQ(ing_settle_parse(ok, strlen(ok), "sandbox", count_rows, &n, &p), 2);
    KT_INTEQ(n, 2);
    n = 0;
    KT_INTEQ(ing_settle_parse(bad, strlen(bad), "sandbox", count_rows, &n, &p), -1);
    KT_INTEQ(n, 0); /* nothing handed out from an invalid file */
    KT_STREQ(p.code, "settlement_invalid");
    KT_STREQ(p.field, "line 3, column status");
    KT_INTEQ(ing_settle_parse(ok, strlen(ok), "nope", NULL, NULL, &p), -1);
    KT_STREQ(p.code, "settlement_format_unknown");
    KT_INTEQ(ing_parse_rfc3339("2026-02-31T00:00:00Z"), -1);
    KT_INTEQ(ing_parse_rfc3339("1970-01-01T00:00:01.5Z"), 1500000);
}

KT_TEST(idempotency_keys)
{
    const char *k = NULL;
    struct ing_problem p = {0};

    KT_INTEQ(ing_idem_key_pick("a", "a", &k, &p), 0);
    KT_INTEQ(ing_idem_key_pick("a", "b", &k, &p), -1);
    KT_STREQ(p.code, "idempotency_key_mismatch");
    KT_INTEQ(ing_idem_key_pick(NULL, NULL, &k, &p), -1);
    KT_STREQ(p.code, "idempotency_key_required");
    KT_INTEQ(ing_idem_key_pick(" a", NULL, &k, &p), -1);
    KT_STREQ(p.code, "idempotency_key_invalid");
}

KT_MAIN(payment_table, card_numbers, settlement_csv, idempotency_keys)
