/* test_executor_stripe.c - the Stripe adapter, byte for byte against Stripe's public API
 * reference (https://docs.stripe.com/api). Answer fixtures are the reference's example
 * objects (ids, amounts and field sets as printed there); request expectations follow its
 * "form-encoded, a[b]=c nesting" rule and the parameters each endpoint documents:
 *   - PaymentIntent object, create and confirm: https://docs.stripe.com/api/payment_intents/object,
 *     /api/payment_intents/create, /api/payment_intents/confirm, /api/payment_intents/retrieve
 *   - Refund object and create: https://docs.stripe.com/api/refunds/object, /api/refunds/create
 *   - errors (card_error with decline_code, idempotency_error, api_error):
 *     https://docs.stripe.com/api/errors and https://docs.stripe.com/api/idempotent_requests
 * No secret here: the key is a made-up placeholder. */
#include <stdlib.h>
#include <string.h>

#include "consumers/executor/adapter.c"
#include "consumers/executor/adapter_util.c"
#include "consumers/executor/adapter_stripe.c"
#include "tests/unit/ktest.h"

const struct ex_adapter ex_adapter_sandbox = {.name = "sandbox"};
const struct ex_adapter ex_adapter_xendit = {.name = "xendit"};
const struct ex_adapter ex_adapter_midtrans = {.name = "midtrans"};

static const struct ex_conf CONF = {"https://api.stripe.com", "sk_test_placeholder", "", "", ""};
static const struct ex_kv DETAILS[] = {{"payment_token", "pm_card_visa"}, {"buyer_id", "b1"}};

static struct ex_cmd charge(void)
{
    struct ex_cmd c = {EX_OP_CHARGE, "cmd_1", "pt_1", "pay_1", "ord_1", "", "", "idk_1",
                       2000, "USD", "CARD", DETAILS, 2, ""};
    return c;
}

/* The reference's PaymentIntent after a successful confirm (/api/payment_intents/confirm). */
static const char PI_SUCCEEDED[] =
    "{\"id\":\"pi_3MtweELkdIwHu7ix0Dt0gF2H\",\"object\":\"payment_intent\",\"amount\":2000,"
    "\"amount_capturable\":0,\"amount_details\":{\"tip\":{}},\"amount_received\":2000,"
    "\"application\":null,\"application_fee_amount\":null,\"automatic_payment_methods\":null,"
    "\"canceled_at\":null,\"cancellation_reason\":null,\"capture_method\":\"automatic\","
    "\"client_secret\":\"pi_3MtweELkdIwHu7ix0Dt0gF2H_secret_ALlpPMIZse0ac8YzPxkMkFgGC\","
    "\"confirmation_method\":\"automatic\",\"created\":1680802258,\"currency\":\"usd\","
    "\"customer\":null,\"description\":null,\"invoice\":null,\"last_payment_error\":null,"
    "\"latest_charge\":\"ch_3MtweELkdIwHu7ix05lnLAFd\",\"livemode\":false,\"metadata\":{},"
    "\"next_action\":null,\"on_behalf_of\":null,\"payment_method\":\"pm_1MtweELkdIwHu7ixxrsejPtG\","
    "\"payment_method_options\":{\"card\":{\"installments\":null,\"mandate_options\":null,"
    "\"network\":null,\"request_three_d_secure\":\"automatic\"}},"
    "\"payment_method_types\":[\"card\"],\"processing\":null,\"receipt_email\":null,"
    "\"review\":null,\"setup_future_usage\":null,\"shipping\":null,\"source\":null,"
    "\"statement_descriptor\":null,\"statement_descriptor_suffix\":null,\"status\":\"succeeded\","
    "\"transfer_data\":null,\"transfer_group\":null}";

/* A card_error as /api/errors documents it, with the PaymentIntent it left behind. */
static const char CARD_DECLINED[] =
    "{\"error\":{\"charge\":\"ch_3MtweELkdIwHu7ix05lnLAFd\",\"code\":\"card_declined\","
    "\"decline_code\":\"insufficient_funds\",\"doc_url\":"
    "\"https://stripe.com/docs/error-codes/card-declined\",\"message\":\"Your card has "
    "insufficient funds.\",\"payment_intent\":{\"id\":\"pi_3MtweELkdIwHu7ix0Dt0gF2H\","
    "\"object\":\"payment_intent\",\"status\":\"requires_payment_method\"},\"type\":\"card_error\"}}";

/* The reference's Refund object (/api/refunds/object). */
static const char REFUND[] =
    "{\"id\":\"re_1Nispe2eZvKYlo2Cd31jOCgZ\",\"object\":\"refund\",\"amount\":1000,"
    "\"balance_transaction\":\"txn_1Nispe2eZvKYlo2CYezqFhEx\",\"charge\":"
    "\"ch_1NirD82eZvKYlo2CIvbtLWuY\",\"created\":1692942318,\"currency\":\"usd\","
    "\"destination_details\":{\"card\":{\"reference_status\":\"pending\",\"reference_type\":"
    "\"acquirer_reference_number\",\"type\":\"refund\"},\"type\":\"card\"},\"metadata\":{},"
    "\"payment_intent\":\"pi_1GszsK2eZvKYlo2CfhZyoZLp\",\"reason\":null,\"receipt_number\":null,"
    "\"source_transfer_reversal\":null,\"status\":\"succeeded\",\"transfer_reversal\":null}";

KT_TEST(test_build_charge)
{
    struct ex_cmd c = charge();
    struct ex_req req;
    struct ks_err err = {0};

    ex_req_init(&req);
    KT_INTEQ(ex_adapter_stripe.build(&CONF, &c, 0, NULL, &req, &err), KS_OK);
    KT_STREQ(req.method, "POST");
    KT_STREQ(req.content_type, "application/x-www-form-urlencoded");
    KT_STREQ(ks_buf_str(&req.url), "https://api.stripe.com/v1/payment_intents");
    /* amount in the smallest unit, lower-case currency, metadata[order_id] nested */
    KT_STREQ(ks_buf_str(&req.body),
             "amount=2000&currency=usd&payment_method=pm_card_visa&payment_method_types%5B0%5D=card"
             "&confirm=true&metadata%5Border_id%5D=ord_1&metadata%5Bpayment_id%5D=pay_1");
    KT_STREQ(ks_buf_str(&req.headers),
             "Authorization: Bearer sk_test_placeholder\nIdempotency-Key: idk_1\n");
    ex_req_release(&req);
}

KT_TEST(test_build_refuses_bad_commands)
{
    struct ex_cmd c = charge();
    struct ex_req req;
    struct ks_err err = {0};

    ex_req_init(&req);
    c.n_details = 0;
    KT_INTEQ(ex_adapter_stripe.build(&CONF, &c, 0, NULL, &req, &err), KS_EINVAL);
    KT_STREQ(err.field, "details.payment_token");
    c = charge();
    c.method = "QRIS";
    ex_req_reset(&req);
    KT_INTEQ(ex_adapter_stripe.build(&CONF, &c, 0, NULL, &req, &err), KS_EINVAL);
    KT_CHECK(ex_adapter_stripe.supports(EX_OP_CHARGE, "CARD", "IDR"));
    KT_CHECK(!ex_adapter_stripe.supports(EX_OP_CHARGE, "VIRTUAL_ACCOUNT", "IDR"));
    KT_CHECK(!ex_adapter_stripe.supports(EX_OP_PAYOUT, "BANK_TRANSFER", "IDR"));
    ex_req_release(&req);
}

static struct ex_result answer(long status, const char *body)
{
    struct ex_cmd c = charge();
    struct ex_result r;

    ex_result_clear(&r);
    ex_adapter_stripe.parse(&CONF, &c, 0, status, body, strlen(body), &r);
    return r;
}

KT_TEST(test_parse_answers)
{
    struct ex_result r = answer(200, PI_SUCCEEDED);
    KT_INTEQ(r.verdict, EX_SUCCEEDED);
    KT_STREQ(r.psp_reference, "pi_3MtweELkdIwHu7ix0Dt0gF2H");
    KT_INTEQ(r.amount_minor, 2000);

    r = answer(402, CARD_DECLINED);
    KT_INTEQ(r.verdict, EX_FAILED);
    KT_STREQ(r.failure_code, "insufficient_funds");
    KT_STREQ(r.failure_message, "Your card has insufficient funds.");
    KT_STREQ(r.psp_reference, "pi_3MtweELkdIwHu7ix0Dt0gF2H");

    /* invalid_request_error: a refusal, final */
    r = answer(400, "{\"error\":{\"code\":\"parameter_invalid_integer\",\"message\":\"Invalid "
                   "integer: abc\",\"param\":\"amount\",\"type\":\"invalid_request_error\"}}");
    KT_INTEQ(r.verdict, EX_FAILED);
    KT_STREQ(r.failure_code, "parameter_invalid_integer");

    /* the key was used with other parameters: something ran, never "failed" */
    r = answer(400, "{\"error\":{\"message\":\"Keys for idempotent requests can only be used "
                   "with the same parameters they were first used with.\",\"type\":"
                   "\"idempotency_error\"}}");
    KT_INTEQ(r.verdict, EX_UNKNOWN);
    /* api_error: "the request may have been processed" */
    r = answer(500, "{\"error\":{\"message\":\"Sorry, something went wrong.\",\"type\":\"api_error\"}}");
    KT_INTEQ(r.verdict, EX_UNKNOWN);
    /* not run: rate limited, a bad key */
    KT_INTEQ(answer(429, "{\"error\":{\"type\":\"invalid_request_error\",\"code\":\"rate_limit\"}}").verdict, EX_RETRY);
    /* ours did not run, but another request with the key is running: never "absent" */
    KT_INTEQ(answer(409, "{\"error\":{\"type\":\"invalid_request_error\",\"code\":\"idempotency_key_in_use\"}}").verdict, EX_UNKNOWN);
    KT_INTEQ(answer(401, "{\"error\":{\"type\":\"invalid_request_error\"}}").verdict, EX_RETRY);
    KT_INTEQ(answer(200, "not json").verdict, EX_UNKNOWN);
    KT_INTEQ(answer(200, "").verdict, EX_UNKNOWN);
}

KT_TEST(test_parse_requires_action)
{
    /* 3-D Secure: status requires_action with next_action.redirect_to_url (object reference) */
    struct ex_result r = answer(200, "{\"id\":\"pi_1\",\"object\":\"payment_intent\",\"amount\":2000,"
                                    "\"status\":\"requires_action\",\"next_action\":{\"type\":"
                                    "\"redirect_to_url\",\"redirect_to_url\":{\"return_url\":"
                                    "\"https://example.com/r\",\"url\":\"https://hooks.stripe.com/"
                                    "3d_secure_2/hosted?x=1\"}}}");
    KT_INTEQ(r.verdict, EX_PENDING_CUSTOMER);
    KT_INTEQ(r.n_next_action, 1);
    KT_STREQ(r.next_action[0].name, "redirect_url");
    KT_STREQ(r.next_action[0].value, "https://hooks.stripe.com/3d_secure_2/hosted?x=1");
}

KT_TEST(test_status_and_replay)
{
    struct ex_cmd c = charge();
    struct ex_req req;
    struct ex_result prev, r;
    struct ks_err err = {0};

    ex_req_init(&req);
    ex_result_clear(&prev);
    /* no PaymentIntent id known: the same request with the same key, a replay */
    KT_INTEQ(ex_adapter_stripe.build_status(&CONF, &c, 0, &prev, &req, &err), KS_OK);
    KT_STREQ(req.method, "POST");
    KT_CHECK(strstr(ks_buf_str(&req.headers), "Idempotency-Key: idk_1\n") != NULL);
    KT_CHECK(strncmp(ks_buf_str(&req.body), "amount=2000&currency=usd", 24) == 0);
    /* an id known: retrieve it */
    ex_req_reset(&req);
    snprintf(prev.psp_reference, sizeof(prev.psp_reference), "pi_3MtweELkdIwHu7ix0Dt0gF2H");
    KT_INTEQ(ex_adapter_stripe.build_status(&CONF, &c, 0, &prev, &req, &err), KS_OK);
    KT_STREQ(req.method, "GET");
    KT_STREQ(ks_buf_str(&req.url), "https://api.stripe.com/v1/payment_intents/pi_3MtweELkdIwHu7ix0Dt0gF2H");
    KT_STREQ(ks_buf_str(&req.headers), "Authorization: Bearer sk_test_placeholder\n");
    ex_result_clear(&r);
    ex_adapter_stripe.parse_status(&CONF, &c, 0, 200, PI_SUCCEEDED, strlen(PI_SUCCEEDED), &r);
    KT_INTEQ(r.verdict, EX_SUCCEEDED);
    ex_result_clear(&r);
    ex_adapter_stripe.parse_status(&CONF, &c, 0, 404,
                                   "{\"error\":{\"code\":\"resource_missing\",\"type\":"
                                   "\"invalid_request_error\"}}", 62, &r);
    KT_INTEQ(r.verdict, EX_ABSENT);
    ex_req_release(&req);
}

KT_TEST(test_refund)
{
    struct ex_cmd c = charge();
    struct ex_req req;
    struct ex_result r;
    struct ks_err err = {0};

    c.op = EX_OP_REFUND;
    c.refund_id = "rf_1";
    c.amount_minor = 1000;
    c.idem_key = "idk_rf_1";
    c.charge_ref = "pi_1GszsK2eZvKYlo2CfhZyoZLp";
    ex_req_init(&req);
    KT_INTEQ(ex_adapter_stripe.build(&CONF, &c, 0, NULL, &req, &err), KS_OK);
    KT_STREQ(ks_buf_str(&req.url), "https://api.stripe.com/v1/refunds");
    KT_STREQ(ks_buf_str(&req.body), "payment_intent=pi_1GszsK2eZvKYlo2CfhZyoZLp&amount=1000"
                                    "&metadata%5Brefund_id%5D=rf_1&metadata%5Border_id%5D=ord_1");
    KT_CHECK(strstr(ks_buf_str(&req.headers), "Idempotency-Key: idk_rf_1\n") != NULL);
    ex_result_clear(&r);
    ex_adapter_stripe.parse(&CONF, &c, 0, 200, REFUND, strlen(REFUND), &r);
    KT_INTEQ(r.verdict, EX_SUCCEEDED);
    KT_STREQ(r.psp_reference, "re_1Nispe2eZvKYlo2Cd31jOCgZ");
    KT_INTEQ(r.amount_minor, 1000);
    c.charge_ref = "";
    ex_req_reset(&req);
    KT_INTEQ(ex_adapter_stripe.build(&CONF, &c, 0, NULL, &req, &err), KS_EINVAL);
    ex_req_release(&req);
}

KT_MAIN(test_build_charge, test_build_refuses_bad_commands, test_parse_answers,
        test_parse_requires_action, test_status_and_replay, test_refund)
