/* test_webhooks_parse.c - kasir-webhooks' reading of each PSP's notifications and its
 * state machine (consumers/webhooks/parse.c and state.c are compiled into this test: they
 * are pure and depend only on lib/).
 *
 * Fixtures follow the PSPs' public references, with their example ids and values, the
 * merchant reference set to a Kasir id as the executor sends it; secrets and signatures are
 * placeholders (the parser never sees a secret: the ingress verified the signature):
 *   Stripe   https://docs.stripe.com/api/events/object, /api/payment_intents/object,
 *            /api/refunds/object
 *   Xendit   https://archive.developers.xendit.co/api-reference/ "Fixed virtual account
 *            callbacks" (payment, created/updated), "QR Codes" (QR payment callback v1),
 *            "Disbursements" (disbursement callback)
 *   Midtrans https://docs.midtrans.com/docs/https-notification-webhooks (bank transfer
 *            settlement and pending samples), /reference/code-statuses
 *   sandbox  deploy/psp-sandbox/README.md "Webhooks" (native.c writes these) */
#include <string.h>

#include "consumers/webhooks/parse.c"
#include "consumers/webhooks/state.c"
#include "tests/unit/ktest.h"

static enum ks_code parse(const char *psp, const char *body, struct wh_note *n,
                          struct ks_err *e)
{
    memset(e, 0, sizeof(*e));
    return wh_parse(psp, body, strlen(body), n, e);
}

static const char *next_of(const struct wh_note *n, const char *name)
{
    for (int i = 0; i < n->n_next; i++)
        if (strcmp(n->next_name[i], name) == 0)
            return n->next_value[i];
    return "";
}

/* --- Stripe ------------------------------------------------------------------------------ */

#define STRIPE_PI(type, status, extra)                                                        \
    "{\"id\":\"evt_1NG8Du2eZvKYlo2CUI79vXWy\",\"object\":\"event\","                         \
    "\"api_version\":\"2024-06-20\",\"created\":1686089970,\"data\":{\"object\":{"           \
    "\"id\":\"pi_3MtwBwLkdIwHu7ix28a3tqPa\",\"object\":\"payment_intent\",\"amount\":2000,"   \
    "\"amount_capturable\":0,\"amount_received\":2000,\"capture_method\":\"automatic\","     \
    "\"currency\":\"usd\",\"metadata\":{\"order_id\":\"ord_42\"},"                           \
    "\"status\":\"" status "\"" extra "}},\"livemode\":false,\"pending_webhooks\":0,"         \
    "\"request\":{\"id\":null,\"idempotency_key\":null},\"type\":\"" type "\"}"

KT_TEST(test_stripe_succeeded)
{
    struct wh_note n;
    struct ks_err e;

    KT_INTEQ(parse("stripe", STRIPE_PI("payment_intent.succeeded", "succeeded", ""), &n, &e),
             KS_OK);
    KT_INTEQ(n.kind, WH_CHARGE);
    KT_INTEQ(n.status, WH_SUCCEEDED);
    KT_STREQ(n.reference, "ord_42");
    KT_STREQ(n.psp_reference, "pi_3MtwBwLkdIwHu7ix28a3tqPa");
    KT_INTEQ(n.has_amount, 1);
    KT_INTEQ(n.amount_minor, 2000);
    KT_STREQ(n.currency, "USD");
    KT_STREQ(n.key_suffix, "");
}

KT_TEST(test_stripe_failed_and_canceled)
{
    struct wh_note n;
    struct ks_err e;

    KT_INTEQ(parse("stripe",
                   STRIPE_PI("payment_intent.payment_failed", "requires_payment_method",
                             ",\"last_payment_error\":{\"code\":\"card_declined\","
                             "\"decline_code\":\"insufficient_funds\","
                             "\"message\":\"Your card has insufficient funds.\","
                             "\"type\":\"card_error\"}"),
                   &n, &e),
             KS_OK);
    KT_INTEQ(n.status, WH_FAILED);
    KT_STREQ(n.failure_code, "insufficient_funds");
    KT_STREQ(n.failure_message, "Your card has insufficient funds.");
    KT_INTEQ(parse("stripe", STRIPE_PI("payment_intent.canceled", "canceled",
                                       ",\"cancellation_reason\":\"abandoned\""),
                   &n, &e),
             KS_OK);
    KT_INTEQ(n.status, WH_EXPIRED);
    KT_INTEQ(parse("stripe", STRIPE_PI("payment_intent.canceled", "canceled",
                                       ",\"cancellation_reason\":\"fraudulent\""),
                   &n, &e),
             KS_OK);
    KT_INTEQ(n.status, WH_FAILED);
    /* a state that is not an outcome */
    KT_INTEQ(parse("stripe", STRIPE_PI("payment_intent.processing", "processing", ""), &n, &e),
             KS_OK);
    KT_INTEQ(n.kind, WH_NONE);
    KT_CHECK(strstr(n.reason, "processing") != NULL);
}

KT_TEST(test_stripe_refund)
{
    static const char ev[] =
        "{\"id\":\"evt_3\",\"object\":\"event\",\"type\":\"refund.created\",\"data\":{\"object\":"
        "{\"id\":\"re_1Nispe2eZvKYlo2Cd31jOCgZ\",\"object\":\"refund\",\"amount\":1000,"
        "\"balance_transaction\":\"txn_1Nispe2eZvKYlo2CYezqFhEx\",\"charge\":"
        "\"ch_1NirD82eZvKYlo2CIvbtLWuY\",\"created\":1692942318,\"currency\":\"usd\","
        "\"metadata\":{\"refund_id\":\"rfd_7\"},\"payment_intent\":\"pi_1\",\"reason\":null,"
        "\"status\":\"succeeded\"}}}";
    struct wh_note n;
    struct ks_err e;

    KT_INTEQ(parse("stripe", ev, &n, &e), KS_OK);
    KT_INTEQ(n.kind, WH_REFUND);
    KT_INTEQ(n.status, WH_REFUNDED);
    KT_STREQ(n.reference, "rfd_7");
    KT_STREQ(n.psp_reference, "re_1Nispe2eZvKYlo2Cd31jOCgZ");
    KT_INTEQ(n.amount_minor, 1000);
}

KT_TEST(test_stripe_bad)
{
    struct wh_note n;
    struct ks_err e;

    /* no Kasir reference: dead-lettered with the reason */
    KT_INTEQ(parse("stripe",
                   "{\"id\":\"evt_1\",\"object\":\"event\",\"type\":\"payment_intent.succeeded\","
                   "\"data\":{\"object\":{\"id\":\"pi_1\",\"amount\":5,\"currency\":\"usd\","
                   "\"metadata\":{}}}}",
                   &n, &e),
             KS_EINVAL);
    KT_STREQ(e.field, "data.object.metadata.order_id");
    KT_CHECK(strncmp(e.msg, "unknown_reference:", 18) == 0);
    /* an amount that is not an integer of minor units */
    KT_INTEQ(parse("stripe",
                   "{\"id\":\"evt_1\",\"object\":\"event\",\"type\":\"payment_intent.succeeded\","
                   "\"data\":{\"object\":{\"id\":\"pi_1\",\"amount\":\"20.00\",\"currency\":"
                   "\"usd\",\"metadata\":{\"order_id\":\"o\"}}}}",
                   &n, &e),
             KS_EINVAL);
    KT_STREQ(e.field, "data.object.amount");
    /* a currency lib/money does not know */
    KT_INTEQ(parse("stripe", "{\"object\":\"event\",\"type\":\"payment_intent.succeeded\","
                             "\"data\":{\"object\":{\"id\":\"pi_1\",\"amount\":5,"
                             "\"currency\":\"zzz\",\"metadata\":{\"order_id\":\"o\"}}}}",
                   &n, &e),
             KS_EINVAL);
    KT_STREQ(e.field, "data.object.currency");
    /* not an Event, not JSON */
    KT_INTEQ(parse("stripe", "{\"type\":\"payment_intent.succeeded\"}", &n, &e), KS_EINVAL);
    KT_INTEQ(parse("stripe", "not json", &n, &e), KS_EINVAL);
    KT_STREQ(e.field, "body");
    KT_INTEQ(parse("stripe", "[1,2]", &n, &e), KS_EINVAL);
}

/* --- Xendit ------------------------------------------------------------------------------ */

static const char xendit_va_paid[] =
    "{\"updated\":\"2016-12-07T09:12:44.125Z\",\"created\":\"2016-12-07T09:12:44.125Z\","
    "\"payment_id\":\"1502450097080\",\"callback_virtual_account_id\":"
    "\"598d91b1191029596846047f\",\"owner_id\":\"5824128aa6f9f9b648be9d76\","
    "\"external_id\":\"ord_va1\",\"account_number\":\"1001470126\",\"bank_code\":\"MANDIRI\","
    "\"amount\":80000,\"transaction_timestamp\":\"2016-12-07T09:12:44.000Z\","
    "\"merchant_code\":\"8808\",\"id\":\"587cc7ea77767d4a5e8ec2c0\"}";

KT_TEST(test_xendit_va_paid)
{
    struct wh_note n;
    struct ks_err e;

    KT_INTEQ(parse("xendit", xendit_va_paid, &n, &e), KS_OK);
    KT_INTEQ(n.kind, WH_CHARGE);
    KT_INTEQ(n.status, WH_SUCCEEDED);
    KT_STREQ(n.reference, "ord_va1");
    KT_STREQ(n.psp_reference, "598d91b1191029596846047f");
    KT_INTEQ(n.amount_minor, 8000000); /* 80,000 rupiah in sen */
    KT_STREQ(n.currency, "IDR");
}

#define XENDIT_VA(status, expiration, updated)                                                \
    "{\"id\":\"57fb4e076fa3fa296b7f5a97\",\"owner_id\":\"57b4e5181473eeb61c11f9b9\","        \
    "\"external_id\":\"ord_va2\",\"bank_code\":\"BRI\",\"merchant_code\":\"26215\","         \
    "\"name\":\"Steve Wozniak\",\"account_number\":\"262151000393993\","                      \
    "\"expiration_date\":\"" expiration "\",\"is_closed\":false,\"is_single_use\":false,"    \
    "\"status\":\"" status "\",\"created\":\"2016-10-10T08:15:03.404Z\","                    \
    "\"updated\":\"" updated "\"}"

KT_TEST(test_xendit_va_states)
{
    struct wh_note n;
    struct ks_err e;

    /* created/updated, usable: the buyer must pay */
    KT_INTEQ(parse("xendit", XENDIT_VA("ACTIVE", "2048-10-10T08:15:03.080Z",
                                       "2016-10-10T08:15:03.404Z"), &n, &e),
             KS_OK);
    KT_INTEQ(n.kind, WH_CHARGE);
    KT_INTEQ(n.status, WH_PENDING_CUSTOMER);
    KT_STREQ(next_of(&n, "va_number"), "262151000393993");
    KT_STREQ(next_of(&n, "bank_code"), "BRI");
    KT_STREQ(next_of(&n, "expires_at"), "2048-10-10T08:15:03.080Z");
    KT_INTEQ(n.has_amount, 0);
    /* inactive at its expiration date: expired */
    KT_INTEQ(parse("xendit", XENDIT_VA("INACTIVE", "2016-10-11T08:15:03.080Z",
                                       "2016-10-11T08:15:04.000Z"), &n, &e),
             KS_OK);
    KT_INTEQ(n.status, WH_EXPIRED);
    KT_STREQ(n.reference, "ord_va2");
    /* inactive before it: a single-use VA closed by its payment, told by the payment */
    KT_INTEQ(parse("xendit", XENDIT_VA("INACTIVE", "2048-10-10T08:15:03.080Z",
                                       "2016-10-11T08:15:04.000Z"), &n, &e),
             KS_OK);
    KT_INTEQ(n.kind, WH_NONE);
    KT_INTEQ(parse("xendit", XENDIT_VA("PENDING", "2048-10-10T08:15:03.080Z",
                                       "2016-10-10T08:15:03.404Z"), &n, &e),
             KS_OK);
    KT_INTEQ(n.kind, WH_NONE);
}

KT_TEST(test_xendit_qr_and_disbursement)
{
    static const char qr[] =
        "{\"event\":\"qr.payment\",\"id\":\"qrpy_8182837te-87st-49ing-8696-1239bd4d759c\","
        "\"amount\":1500,\"created\":\"2020-01-08T18:18:18.857Z\",\"qr_code\":{\"id\":"
        "\"qr_8182837te-87st-49ing-8696-1239bd4d759c\",\"external_id\":\"ord_qr\","
        "\"qr_string\":\"0002010102##########CO.XENDIT.WWW011893600\",\"type\":\"DYNAMIC\"},"
        "\"status\":\"COMPLETED\"}";
    static const char disb[] =
        "{\"id\":\"57e214ba82b034c325e84d6e\",\"user_id\":\"57c5aa7a36e3b6a709b6e148\","
        "\"external_id\":\"po_1\",\"amount\":150000,\"bank_code\":\"BCA\","
        "\"account_holder_name\":\"MICHAEL CHEN\",\"disbursement_description\":"
        "\"Refund for shoes\",\"failure_code\":\"INVALID_DESTINATION\",\"is_instant\":false,"
        "\"status\":\"FAILED\",\"updated\":\"2016-10-10T08:15:03.404Z\","
        "\"created\":\"2016-10-10T08:15:03.404Z\"}";
    struct wh_note n;
    struct ks_err e;

    KT_INTEQ(parse("xendit", qr, &n, &e), KS_OK);
    KT_INTEQ(n.kind, WH_CHARGE);
    KT_INTEQ(n.status, WH_SUCCEEDED);
    KT_STREQ(n.reference, "ord_qr");
    KT_STREQ(n.psp_reference, "qr_8182837te-87st-49ing-8696-1239bd4d759c");
    KT_INTEQ(n.amount_minor, 150000);
    KT_INTEQ(parse("xendit", disb, &n, &e), KS_OK);
    KT_INTEQ(n.kind, WH_PAYOUT);
    KT_INTEQ(n.status, WH_FAILED);
    KT_STREQ(n.failure_code, "INVALID_DESTINATION");
    KT_STREQ(n.reference, "po_1");
    KT_INTEQ(n.amount_minor, 15000000);
    /* completed */
    {
        char ok[sizeof(disb) + 8];
        const char *at = strstr(disb, "\"FAILED\"");
        snprintf(ok, sizeof(ok), "%.*s\"COMPLETED\"%s", (int)(at - disb), disb, at + 8);
        KT_INTEQ(parse("xendit", ok, &n, &e), KS_OK);
        KT_INTEQ(n.status, WH_PAID_OUT);
    }
}

KT_TEST(test_xendit_bad)
{
    struct wh_note n;
    struct ks_err e;

    /* whole rupiah only: a fraction is not Xendit's format */
    KT_INTEQ(parse("xendit", "{\"payment_id\":\"1\",\"callback_virtual_account_id\":\"v\","
                             "\"external_id\":\"o\",\"amount\":80000.5}",
                   &n, &e),
             KS_EINVAL);
    KT_STREQ(e.field, "amount");
    KT_INTEQ(parse("xendit", "{\"payment_id\":\"1\",\"callback_virtual_account_id\":\"v\","
                             "\"amount\":80000}",
                   &n, &e),
             KS_EINVAL);
    KT_STREQ(e.field, "external_id");
    KT_CHECK(strncmp(e.msg, "unknown_reference:", 18) == 0);
    /* a product kasir does not read: recorded as ignored */
    KT_INTEQ(parse("xendit", "{\"id\":\"inv_1\",\"status\":\"PAID\"}", &n, &e), KS_OK);
    KT_INTEQ(n.kind, WH_NONE);
}

/* --- Midtrans ---------------------------------------------------------------------------- */

#define MIDTRANS(status, code, extra)                                                         \
    "{\"va_numbers\":[{\"va_number\":\"333333333333333\",\"bank\":\"bca\"}],"                \
    "\"transaction_time\":\"2021-06-23 15:24:32\",\"transaction_status\":\"" status "\","     \
    "\"transaction_id\":\"b7f2ca4f-e8b0-4d4d-9c4a-6f50d8e5f8b4\",\"status_message\":"        \
    "\"midtrans payment notification\",\"status_code\":\"" code "\",\"signature_key\":"      \
    "\"0000\",\"payment_type\":\"bank_transfer\",\"order_id\":\"ord_mt\",\"merchant_id\":"    \
    "\"G141532850\",\"gross_amount\":\"20000.00\",\"fraud_status\":\"accept\","              \
    "\"currency\":\"IDR\"" extra "}"

KT_TEST(test_midtrans_statuses)
{
    static const struct {
        const char *body;
        int kind;
        enum wh_status st;
    } cases[] = {
        {MIDTRANS("settlement", "200", ",\"settlement_time\":\"2021-06-23 15:25:01\""), WH_CHARGE,
         WH_SUCCEEDED},
        {MIDTRANS("capture", "200", ""), WH_CHARGE, WH_SUCCEEDED},
        {MIDTRANS("pending", "201", ",\"expiry_time\":\"2021-06-24 15:24:32\""), WH_CHARGE,
         WH_PENDING_CUSTOMER},
        {MIDTRANS("deny", "202", ""), WH_CHARGE, WH_FAILED},
        {MIDTRANS("cancel", "202", ""), WH_CHARGE, WH_FAILED},
        {MIDTRANS("expire", "407", ""), WH_CHARGE, WH_EXPIRED},
        {MIDTRANS("refund", "200", ""), WH_NONE, WH_SUCCEEDED},
        {MIDTRANS("partial_refund", "200", ""), WH_NONE, WH_SUCCEEDED},
    };
    struct wh_note n;
    struct ks_err e;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        KT_INTEQ(parse("midtrans", cases[i].body, &n, &e), KS_OK);
        KT_INTEQ(n.kind, cases[i].kind);
        KT_CHECK(strncmp(n.key_suffix, ":", 1) == 0);
        if (cases[i].kind == WH_NONE)
            continue;
        KT_INTEQ(n.status, cases[i].st);
        KT_STREQ(n.reference, "ord_mt");
        KT_STREQ(n.psp_reference, "ord_mt");
        KT_INTEQ(n.amount_minor, 2000000);
    }
    KT_INTEQ(parse("midtrans", cases[2].body, &n, &e), KS_OK);
    KT_STREQ(n.key_suffix, ":pending");
    KT_STREQ(next_of(&n, "va_number"), "333333333333333");
    KT_STREQ(next_of(&n, "bank_code"), "bca");
    KT_STREQ(next_of(&n, "expires_at"), "2021-06-24T08:24:32Z"); /* GMT+7 to UTC */
}

KT_TEST(test_midtrans_bad)
{
    struct wh_note n;
    struct ks_err e;

    /* only status_code is signed: a settlement signed as pending (201) was altered */
    KT_INTEQ(parse("midtrans", MIDTRANS("settlement", "201", ""), &n, &e), KS_EINVAL);
    KT_STREQ(e.field, "status_code");
    KT_CHECK(strncmp(e.msg, "status_code_mismatch:", 21) == 0);
    KT_INTEQ(parse("midtrans", MIDTRANS("pending", "200", ""), &n, &e), KS_EINVAL);
    KT_INTEQ(parse("midtrans", MIDTRANS("teleported", "200", ""), &n, &e), KS_EINVAL);
    KT_STREQ(e.field, "transaction_status");
    /* a capture held by fraud detection is not a success yet */
    KT_INTEQ(parse("midtrans",
                   "{\"transaction_status\":\"capture\",\"status_code\":\"200\",\"order_id\":"
                   "\"o\",\"gross_amount\":\"1.00\",\"fraud_status\":\"challenge\"}",
                   &n, &e),
             KS_OK);
    KT_INTEQ(n.kind, WH_NONE);
    KT_INTEQ(parse("midtrans", "{\"transaction_status\":\"settlement\",\"status_code\":\"200\","
                               "\"order_id\":\"o\",\"gross_amount\":\"1.001\"}",
                   &n, &e),
             KS_EINVAL);
    KT_STREQ(e.field, "gross_amount");
}

/* --- the sandbox's own events ------------------------------------------------------------ */

KT_TEST(test_sandbox_events)
{
    static const char pending[] =
        "{\"type\":\"charge.pending\",\"created_at\":1733100000,\"data\":{\"id\":"
        "\"sbch_0190f3c2\",\"object\":\"charge\",\"reference\":\"ord_sb\",\"currency\":\"IDR\","
        "\"method\":\"virtual_account\",\"created_at\":\"2024-12-02T00:00:00Z\",\"amount\":"
        "\"150000.00\",\"status\":\"pending\",\"next_action\":{\"type\":\"virtual_account\","
        "\"bank_code\":\"BCA\",\"va_number\":\"8808123456789012\",\"expires_at\":"
        "\"2024-12-03T00:00:00Z\"}}}";
    static const char payout[] =
        "{\"type\":\"payout.failed\",\"created_at\":1733100000,\"data\":{\"id\":\"sbpo_1\","
        "\"object\":\"payout\",\"reference\":\"po_9\",\"currency\":\"IDR\",\"bank_code\":"
        "\"BCA\",\"status\":\"failed\",\"amount\":\"200000.00\",\"failure_code\":"
        "\"account_invalid\"}}";
    static const char refund[] =
        "{\"type\":\"refund.succeeded\",\"created_at\":1733100000,\"data\":{\"id\":\"sbre_1\","
        "\"object\":\"refund\",\"charge\":\"sbch_1\",\"reference\":\"rfd_1\",\"currency\":"
        "\"IDR\",\"status\":\"succeeded\",\"amount\":\"5000.00\"}}";
    struct wh_note n;
    struct ks_err e;

    KT_INTEQ(parse("sandbox", pending, &n, &e), KS_OK);
    KT_INTEQ(n.kind, WH_CHARGE);
    KT_INTEQ(n.status, WH_PENDING_CUSTOMER);
    KT_STREQ(n.reference, "ord_sb");
    KT_STREQ(n.psp_reference, "sbch_0190f3c2");
    KT_INTEQ(n.amount_minor, 15000000);
    KT_STREQ(next_of(&n, "va_number"), "8808123456789012");
    KT_STREQ(next_of(&n, "expires_at"), "2024-12-03T00:00:00Z");
    KT_INTEQ(parse("sandbox", payout, &n, &e), KS_OK);
    KT_INTEQ(n.kind, WH_PAYOUT);
    KT_INTEQ(n.status, WH_FAILED);
    KT_STREQ(n.failure_code, "account_invalid");
    KT_INTEQ(parse("sandbox", refund, &n, &e), KS_OK);
    KT_INTEQ(n.kind, WH_REFUND);
    KT_INTEQ(n.status, WH_REFUNDED);
    KT_INTEQ(n.amount_minor, 500000);
    KT_INTEQ(parse("sandbox", "{\"type\":\"charge.updated\",\"data\":{}}", &n, &e), KS_OK);
    KT_INTEQ(n.kind, WH_NONE);
    KT_INTEQ(parse("sandbox", "{\"type\":\"charge.succeeded\",\"data\":{\"id\":\"x\","
                              "\"currency\":\"IDR\",\"amount\":\"1.00\"}}",
                   &n, &e),
             KS_EINVAL);
    KT_STREQ(e.field, "data.reference");
    KT_INTEQ(parse("sandbox", "{\"type\":\"charge.succeeded\",\"data\":{\"id\":\"x\","
                              "\"reference\":\"o\",\"currency\":\"IDR\",\"amount\":\"-1.00\"}}",
                   &n, &e),
             KS_EINVAL);
    KT_STREQ(e.field, "data.amount");
}

KT_TEST(test_unknown_psp)
{
    struct wh_note n;
    struct ks_err e;

    KT_INTEQ(parse("paypal", "{}", &n, &e), KS_EINVAL);
    KT_STREQ(e.field, "psp");
    KT_INTEQ(parse("iris", "{\"reference_no\":\"x\",\"status\":\"completed\"}", &n, &e),
             KS_EINVAL);
    KT_CHECK(strncmp(e.msg, "unknown_reference:", 18) == 0);
}

KT_TEST(test_verification)
{
    KT_CHECK(wh_verification_ok("stripe", "stripe-signature"));
    KT_CHECK(wh_verification_ok("sandbox", "standard-webhooks"));
    KT_CHECK(wh_verification_ok("midtrans", "midtrans-signature-key"));
    KT_CHECK(wh_verification_ok("xendit", "xendit-callback-token"));
    KT_CHECK(!wh_verification_ok("stripe", "standard-webhooks"));
    KT_CHECK(!wh_verification_ok("paypal", "stripe-signature"));
    KT_CHECK(!wh_verification_ok("stripe", NULL));
}

/* --- the state machine ------------------------------------------------------------------- */

KT_TEST(test_decide)
{
    static const struct {
        enum wh_kind k;
        int cur, late;
        enum wh_status to;
        enum wh_result want;
    } cases[] = {
        {WH_CHARGE, -1, 0, WH_PENDING_CUSTOMER, WH_APPLIED},
        {WH_CHARGE, -1, 0, WH_SUCCEEDED, WH_APPLIED},
        {WH_CHARGE, WH_PENDING_CUSTOMER, 0, WH_PENDING_CUSTOMER, WH_DUPLICATE},
        {WH_CHARGE, WH_PENDING_CUSTOMER, 0, WH_SUCCEEDED, WH_APPLIED},
        {WH_CHARGE, WH_PENDING_CUSTOMER, 0, WH_EXPIRED, WH_APPLIED},
        /* paid before pending: the pending is stale */
        {WH_CHARGE, WH_SUCCEEDED, 0, WH_PENDING_CUSTOMER, WH_STALE},
        {WH_CHARGE, WH_SUCCEEDED, 0, WH_SUCCEEDED, WH_DUPLICATE},
        /* never out of a final state */
        {WH_CHARGE, WH_SUCCEEDED, 0, WH_FAILED, WH_STALE},
        {WH_CHARGE, WH_SUCCEEDED, 0, WH_EXPIRED, WH_STALE},
        {WH_CHARGE, WH_EXPIRED, 0, WH_FAILED, WH_STALE},
        /* money after an expiry: reported once, the state stays */
        {WH_CHARGE, WH_EXPIRED, 0, WH_SUCCEEDED, WH_LATE},
        {WH_CHARGE, WH_FAILED, 0, WH_SUCCEEDED, WH_LATE},
        {WH_CHARGE, WH_EXPIRED, 1, WH_SUCCEEDED, WH_DUPLICATE},
        {WH_REFUND, WH_FAILED, 0, WH_REFUNDED, WH_STALE},
        {WH_REFUND, WH_REFUNDED, 0, WH_FAILED, WH_STALE},
        {WH_PAYOUT, WH_FAILED, 0, WH_PAID_OUT, WH_STALE},
        {WH_PAYOUT, -1, 0, WH_PAID_OUT, WH_APPLIED},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        KT_CHECK_MSG(wh_decide(cases[i].k, cases[i].cur, cases[i].late, cases[i].to) ==
                         cases[i].want,
                     "case %zu", i);
    KT_STREQ(wh_result_name(WH_LATE), "late_success");
}

KT_TEST(test_states)
{
    KT_INTEQ(wh_table_state(WH_CHARGE, "SUCCESS"), WH_SUCCEEDED);
    KT_INTEQ(wh_table_state(WH_CHARGE, "EXECUTING"), -1);
    KT_INTEQ(wh_table_state(WH_CHARGE, "PENDING_CUSTOMER"), WH_PENDING_CUSTOMER);
    KT_INTEQ(wh_table_state(WH_REFUND, "SUCCEEDED"), WH_REFUNDED);
    KT_INTEQ(wh_table_state(WH_REFUND, "SUCCESS"), -1);
    KT_INTEQ(wh_table_state(WH_PAYOUT, "PAID_OUT"), WH_PAID_OUT);
    KT_INTEQ(wh_table_state(WH_PAYOUT, NULL), -1);
    for (int s = WH_SUCCEEDED; s <= WH_PAID_OUT; s++)
        KT_INTEQ(wh_status_parse(wh_status_name((enum wh_status)s)), s);
    KT_INTEQ(wh_status_parse("PAID"), -1);
    KT_STREQ(wh_kind_name(WH_PAYOUT), "PAYOUT");
    KT_CHECK(!wh_status_final(WH_PENDING_CUSTOMER));
    KT_CHECK(wh_status_final(WH_EXPIRED));
}

KT_MAIN(test_stripe_succeeded, test_stripe_failed_and_canceled, test_stripe_refund,
        test_stripe_bad, test_xendit_va_paid, test_xendit_va_states,
        test_xendit_qr_and_disbursement, test_xendit_bad, test_midtrans_statuses,
        test_midtrans_bad, test_sandbox_events, test_unknown_psp, test_verification, test_decide, test_states)
