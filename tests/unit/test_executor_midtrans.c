/* test_executor_midtrans.c - the Midtrans adapter against Midtrans' API reference: each
 * request built byte for byte, each documented answer and error read to its verdict.
 *
 * References (sections named at each test): Core API https://docs.midtrans.com/reference/
 * (charge-api, get-transaction-status, refund-transaction), the integration guides
 * https://docs.midtrans.com/docs/coreapi-core-api-bank-transfer-integration,
 * .../coreapi-qris-integration, .../coreapi-gopay-integration, status codes
 * https://docs.midtrans.com/reference/code-statuses, the status cycle
 * https://docs.midtrans.com/en/after-payment/status-cycle, Iris
 * https://docs.midtrans.com/reference/create-payouts and .../get-payout-details.
 * The fixtures' values are the reference's examples; the keys are made at run time. */
#define FX_MIDTRANS
#include "tests/unit/executor_adapter_test.h"

static const struct ex_adapter *M = &ex_adapter_midtrans;
static char out[4096];

KT_TEST(keys)
{
    fx_keys("SB-Mid-server-", "IRIS-");
    KT_CHECK(strlen(fx_secret) > 16);
}

KT_TEST(supports_matrix)
{
    KT_CHECK(M->supports(EX_OP_CHARGE, "VIRTUAL_ACCOUNT", "IDR"));
    KT_CHECK(M->supports(EX_OP_CHARGE, "QRIS", "IDR"));
    KT_CHECK(M->supports(EX_OP_CHARGE, "EWALLET", "IDR"));
    KT_CHECK(M->supports(EX_OP_REFUND, "QRIS", "IDR"));
    KT_CHECK(M->supports(EX_OP_REFUND, "EWALLET", "IDR"));
    KT_CHECK(M->supports(EX_OP_PAYOUT, "BANK_TRANSFER", "IDR"));
    KT_CHECK(!M->supports(EX_OP_CHARGE, "CARD", "IDR"));
    KT_CHECK(!M->supports(EX_OP_REFUND, "VIRTUAL_ACCOUNT", "IDR"));
    KT_CHECK(!M->supports(EX_OP_CHARGE, "QRIS", "SGD"));
    KT_CHECK(!M->supports(EX_OP_PAYOUT, "EWALLET", "IDR"));
    KT_CHECK(ex_adapter_find("midtrans") == M);
}

/* Bank transfer integration guide, "Charge API request" for BCA:
 * {"payment_type":"bank_transfer","transaction_details":{"order_id":"order-101",
 * "gross_amount":44000},"bank_transfer":{"bank":"bca"}} */
KT_TEST(charge_bank_transfer_request)
{
    struct ex_conf c = fx_conf("https://api.sandbox.midtrans.com", "");
    const struct ex_kv d[] = {{"bank_code", "BCA"}};
    struct ex_cmd cmd = fx_cmd(EX_OP_CHARGE, "VIRTUAL_ACCOUNT", 4400000, d, 1);
    struct ks_err e;
    char want[2048];

    cmd.order_id = "order-101";
    KT_INTEQ(fx_build(M, 0, &c, &cmd, 0, NULL, out, sizeof(out), &e), KS_OK);
    snprintf(want, sizeof(want),
             "POST https://api.sandbox.midtrans.com/v2/charge\n%s"
             "application/json\n"
             "{\"payment_type\":\"bank_transfer\",\"transaction_details\":{\"order_id\":"
             "\"order-101\",\"gross_amount\":44000},\"bank_transfer\":{\"bank\":\"bca\"}}",
             fx_auth);
    KT_STREQ(out, want);
    /* notifications to Kasir: X-Override-Notification ("HTTP(S) Notification" guide) */
    c.notify_url = "https://kasir.example/v1/webhooks/midtrans";
    KT_INTEQ(fx_build(M, 0, &c, &cmd, 0, NULL, out, sizeof(out), &e), KS_OK);
    KT_CHECK_MSG(strstr(out, "\nX-Override-Notification: https://kasir.example/v1/webhooks/midtrans\n"),
                 "%s", out);

    /* no server key set: a configuration problem, nothing is sent */
    c.secret = "";
    KT_INTEQ(fx_build(M, 0, &c, &cmd, 0, NULL, out, sizeof(out), &e), KS_ECONFIG);
    KT_INTEQ(fx_build(M, 1, &c, &cmd, 0, NULL, out, sizeof(out), &e), KS_ECONFIG);
    c.secret = fx_secret;
    const struct ex_kv mandiri[] = {{"bank_code", "MANDIRI"}};
    cmd.details = mandiri;
    KT_INTEQ(fx_build(M, 0, &c, &cmd, 0, NULL, out, sizeof(out), &e), KS_EINVAL);
    KT_STREQ(e.field, "details.bank_code");
    cmd.details = d;
    cmd.amount_minor = 4400001;
    KT_INTEQ(fx_build(M, 0, &c, &cmd, 0, NULL, out, sizeof(out), &e), KS_EINVAL);
    KT_STREQ(e.field, "amount_minor");
    cmd.amount_minor = 4400000;
    cmd.order_id = "o-123456789012345678901234567890123456789012345678901";
    KT_INTEQ(fx_build(M, 0, &c, &cmd, 0, NULL, out, sizeof(out), &e), KS_EINVAL);
    KT_STREQ(e.field, "order_id");
}

/* Bank transfer guide, "Charge API response" for BCA (va_numbers) and Permata
 * (permata_va_number). */
static const char bca_response[] =
    "{\"status_code\":\"201\",\"status_message\":\"Success, Bank Transfer transaction is "
    "created\",\"transaction_id\":\"be03df7d-2f97-4c8c-a53c-8959f1b67295\",\"order_id\":"
    "\"order-101\",\"merchant_id\":\"G812785002\",\"gross_amount\":\"44000.00\",\"currency\":"
    "\"IDR\",\"payment_type\":\"bank_transfer\",\"transaction_time\":\"2019-10-23 16:33:49\","
    "\"transaction_status\":\"pending\",\"va_numbers\":[{\"bank\":\"bca\",\"va_number\":"
    "\"812785002530231\"}],\"fraud_status\":\"accept\",\"expiry_time\":\"2019-10-24 16:33:49\"}";

KT_TEST(charge_bank_transfer_answers)
{
    const struct ex_kv d[] = {{"bank_code", "BCA"}};
    struct ex_cmd cmd = fx_cmd(EX_OP_CHARGE, "VIRTUAL_ACCOUNT", 4400000, d, 1);
    struct ex_result r;

    cmd.order_id = "order-101";
    fx_parse(M, 0, &cmd, 0, 200, bca_response, &r);
    KT_INTEQ(r.verdict, EX_PENDING_CUSTOMER);
    KT_STREQ(r.psp_reference, "be03df7d-2f97-4c8c-a53c-8959f1b67295");
    KT_INTEQ(r.amount_minor, 4400000);
    KT_STREQ(fx_next(&r, "va_number"), "812785002530231");
    KT_STREQ(fx_next(&r, "bank_code"), "BCA");
    /* GMT+7 to UTC */
    KT_STREQ(fx_next(&r, "expires_at"), "2019-10-24T09:33:49Z");

    fx_parse(M, 0, &cmd, 0, 200,
             "{\"status_code\":\"201\",\"status_message\":\"Success, PERMATA VA transaction is "
             "successful\",\"transaction_id\":\"6fd88567-62da-43ff-8fe6-5717e430ffc7\","
             "\"order_id\":\"H17550\",\"gross_amount\":\"145000.00\",\"currency\":\"IDR\","
             "\"payment_type\":\"bank_transfer\",\"transaction_time\":\"2016-06-19 13:42:29\","
             "\"transaction_status\":\"pending\",\"fraud_status\":\"accept\","
             "\"permata_va_number\":\"8562000087926752\"}", &r);
    KT_INTEQ(r.verdict, EX_PENDING_CUSTOMER);
    KT_STREQ(fx_next(&r, "va_number"), "8562000087926752");
    KT_STREQ(fx_next(&r, "bank_code"), "PERMATA");

    /* an expiry across midnight and a month: 00:30 WIB on 1 March is 17:30 UTC on 28 Feb */
    char t[32];
    KT_INTEQ(utc_from_wib("2026-03-01 00:30:00", t, sizeof(t)), 0);
    KT_STREQ(t, "2026-02-28T17:30:00Z");
    KT_INTEQ(utc_from_wib("2024-03-01 06:59:59", t, sizeof(t)), 0);
    KT_STREQ(t, "2024-02-29T23:59:59Z");
    KT_INTEQ(utc_from_wib("2027-01-01 03:00:00", t, sizeof(t)), 0);
    KT_STREQ(t, "2026-12-31T20:00:00Z");
    KT_INTEQ(utc_from_wib("2026-13-01 00:00:00", t, sizeof(t)), -1);
    KT_INTEQ(utc_from_wib("2026-01-01T00:00:00Z", t, sizeof(t)), -1);
}

/* QRIS guide: {"payment_type":"qris","transaction_details":{"order_id":"order03",
 * "gross_amount":275000}} and its answer (qr_string, actions generate-qr-code). */
KT_TEST(charge_qris)
{
    struct ex_conf c = fx_conf("https://api.sandbox.midtrans.com", "");
    struct ex_cmd cmd = fx_cmd(EX_OP_CHARGE, "QRIS", 27500000, NULL, 0);
    struct ex_result r;
    struct ks_err e;
    char want[2048];

    cmd.order_id = "order03";
    KT_INTEQ(fx_build(M, 0, &c, &cmd, 0, NULL, out, sizeof(out), &e), KS_OK);
    snprintf(want, sizeof(want),
             "POST https://api.sandbox.midtrans.com/v2/charge\n%s"
             "application/json\n"
             "{\"payment_type\":\"qris\",\"transaction_details\":{\"order_id\":\"order03\","
             "\"gross_amount\":275000}}",
             fx_auth);
    KT_STREQ(out, want);
    fx_parse(M, 0, &cmd, 0, 200,
             "{\"status_code\":\"201\",\"status_message\":\"QRIS transaction is created\","
             "\"transaction_id\":\"0d8178e1-c6c7-4ab4-81a6-893be9d924ab\",\"order_id\":"
             "\"order03\",\"merchant_id\":\"M099098\",\"gross_amount\":\"275000.00\","
             "\"currency\":\"IDR\",\"payment_type\":\"qris\",\"transaction_time\":\"2021-06-23 "
             "15:31:18\",\"transaction_status\":\"pending\",\"fraud_status\":\"accept\","
             "\"actions\":[{\"name\":\"generate-qr-code\",\"method\":\"GET\",\"url\":"
             "\"https://api.sandbox.midtrans.com/v2/qris/0d8178e1-c6c7-4ab4-81a6-893be9d924ab/"
             "qr-code\"}],\"qr_string\":\"00020101021226620014COM.GO-JEK.WWW011993600914318011"
             "2345678\",\"acquirer\":\"gopay\",\"expiry_time\":\"2021-06-23 15:46:18\"}", &r);
    KT_INTEQ(r.verdict, EX_PENDING_CUSTOMER);
    KT_STREQ(fx_next(&r, "qr_string"), "00020101021226620014COM.GO-JEK.WWW0119936009143180112345678");
    KT_STREQ(fx_next(&r, "redirect_url"), "");
    KT_STREQ(fx_next(&r, "expires_at"), "2021-06-23T08:46:18Z");
    /* without a qr_string the QR image's URL is the next action */
    fx_parse(M, 0, &cmd, 0, 200,
             "{\"status_code\":\"201\",\"transaction_id\":\"t\",\"gross_amount\":\"275000.00\","
             "\"payment_type\":\"qris\",\"transaction_status\":\"pending\",\"actions\":[{\"name\":"
             "\"generate-qr-code\",\"method\":\"GET\",\"url\":\"https://api.sandbox.midtrans.com/"
             "v2/qris/t/qr-code\"}]}", &r);
    KT_INTEQ(r.verdict, EX_PENDING_CUSTOMER);
    KT_STREQ(fx_next(&r, "redirect_url"), "https://api.sandbox.midtrans.com/v2/qris/t/qr-code");
    /* a status answer without the actions: the charge waits, but not a way to pay */
    fx_parse(M, 1, &cmd, 0, 200,
             "{\"status_code\":\"201\",\"transaction_id\":\"t\",\"gross_amount\":\"275000.00\","
             "\"payment_type\":\"qris\",\"transaction_status\":\"pending\",\"expiry_time\":"
             "\"2021-06-23 15:46:18\"}", &r);
    KT_INTEQ(r.verdict, EX_PENDING);
    KT_INTEQ(r.n_next_action, 0);
}

/* GoPay guide: {"payment_type":"gopay","transaction_details":{"order_id":"order-102",
 * "gross_amount":44000}} and its answer (actions deeplink-redirect, generate-qr-code). */
KT_TEST(charge_gopay)
{
    struct ex_conf c = fx_conf("https://api.sandbox.midtrans.com", "");
    const struct ex_kv d[] = {{"ewallet_channel", "GOPAY"}};
    struct ex_cmd cmd = fx_cmd(EX_OP_CHARGE, "EWALLET", 4400000, d, 1);
    struct ex_result r;
    struct ks_err e;
    char want[2048];

    cmd.order_id = "order-102";
    KT_INTEQ(fx_build(M, 0, &c, &cmd, 0, NULL, out, sizeof(out), &e), KS_OK);
    snprintf(want, sizeof(want),
             "POST https://api.sandbox.midtrans.com/v2/charge\n%s"
             "application/json\n"
             "{\"payment_type\":\"gopay\",\"transaction_details\":{\"order_id\":\"order-102\","
             "\"gross_amount\":44000}}",
             fx_auth);
    KT_STREQ(out, want);
    fx_parse(M, 0, &cmd, 0, 200,
             "{\"status_code\":\"201\",\"status_message\":\"GoPay transaction is created\","
             "\"transaction_id\":\"231c79c5-e39e-4993-86da-cadcaee56c1d\",\"order_id\":"
             "\"order-102\",\"gross_amount\":\"44000.00\",\"currency\":\"IDR\",\"payment_type\":"
             "\"gopay\",\"transaction_time\":\"2019-10-23 16:52:50\",\"transaction_status\":"
             "\"pending\",\"fraud_status\":\"accept\",\"actions\":[{\"name\":\"generate-qr-code\","
             "\"method\":\"GET\",\"url\":\"https://api.sandbox.veritrans.co.id/v2/gopay/"
             "231c79c5-e39e-4993-86da-cadcaee56c1d/qr-code\"},{\"name\":\"deeplink-redirect\","
             "\"method\":\"GET\",\"url\":\"https://simulator.sandbox.midtrans.com/gopay/partner/"
             "app/payment-pin?id=d6a88ece-0b8b-4c5e-a7e2-e2d7a0bd56b2\"},{\"name\":\"get-status\","
             "\"method\":\"GET\",\"url\":\"https://api.sandbox.veritrans.co.id/v2/"
             "231c79c5-e39e-4993-86da-cadcaee56c1d/status\"},{\"name\":\"cancel\",\"method\":"
             "\"POST\",\"url\":\"https://api.sandbox.veritrans.co.id/v2/"
             "231c79c5-e39e-4993-86da-cadcaee56c1d/cancel\"}]}", &r);
    KT_INTEQ(r.verdict, EX_PENDING_CUSTOMER);
    KT_STREQ(fx_next(&r, "redirect_url"),
             "https://simulator.sandbox.midtrans.com/gopay/partner/app/payment-pin?id="
             "d6a88ece-0b8b-4c5e-a7e2-e2d7a0bd56b2");
    const struct ex_kv ovo[] = {{"ewallet_channel", "OVO"}};
    cmd.details = ovo;
    KT_INTEQ(fx_build(M, 0, &c, &cmd, 0, NULL, out, sizeof(out), &e), KS_EINVAL);
    KT_STREQ(e.field, "details.ewallet_channel");
}

/* Status codes (code-statuses) as charge answers; status_code is read
 * before the HTTP status (Midtrans answers some errors with HTTP 200). */
KT_TEST(charge_errors)
{
    struct ex_conf c = fx_conf("https://api.sandbox.midtrans.com", "");
    struct ex_cmd cmd = fx_cmd(EX_OP_CHARGE, "QRIS", 27500000, NULL, 0);
    struct ex_result r;
    struct ks_err e;
    char want[1024];

    cmd.order_id = "order03";
    fx_parse(M, 0, &cmd, 0, 200,
             "{\"status_code\":\"202\",\"status_message\":\"Deny by Bank [MANDIRI] with code "
             "[05] and message [Do not honour]\",\"transaction_id\":\"x\",\"order_id\":"
             "\"order03\",\"gross_amount\":\"275000.00\",\"payment_type\":\"qris\","
             "\"transaction_status\":\"deny\",\"fraud_status\":\"accept\"}", &r);
    KT_INTEQ(r.verdict, EX_FAILED);
    KT_STREQ(r.failure_code, "declined");
    KT_STREQ(r.failure_message, "Deny by Bank [MANDIRI] with code [05] and message [Do not honour]");
    fx_parse(M, 0, &cmd, 0, 200,
             "{\"status_code\":\"400\",\"status_message\":\"One or more parameters in the "
             "payload is invalid.\",\"validation_messages\":[\"transaction_details.gross_amount "
             "is not equal to the sum of item_details\"]}", &r);
    KT_INTEQ(r.verdict, EX_FAILED);
    KT_STREQ(r.failure_code, "invalid_request");
    KT_STREQ(r.failure_message, "One or more parameters in the payload is invalid.: "
                                "transaction_details.gross_amount is not equal to the sum of "
                                "item_details");
    fx_parse(M, 0, &cmd, 0, 401,
             "{\"status_code\":\"401\",\"status_message\":\"Unknown Merchant server_key/id\"}", &r);
    KT_INTEQ(r.verdict, EX_RETRY);
    KT_STREQ(r.failure_code, "psp_auth");
    fx_parse(M, 0, &cmd, 0, 200,
             "{\"status_code\":\"402\",\"status_message\":\"Payment channel is not activated.\"}", &r);
    KT_INTEQ(r.verdict, EX_FAILED);
    KT_STREQ(r.failure_code, "method_not_enabled");
    fx_parse(M, 0, &cmd, 0, 200,
             "{\"status_code\":\"407\",\"status_message\":\"Success, transaction is expired\","
             "\"transaction_status\":\"expire\"}", &r);
    KT_INTEQ(r.verdict, EX_FAILED);
    KT_STREQ(r.failure_code, "expired");
    fx_parse(M, 0, &cmd, 0, 500,
             "{\"status_code\":\"500\",\"status_message\":\"Sorry, we encountered internal "
             "server error. We will fix this soon.\"}", &r);
    KT_INTEQ(r.verdict, EX_UNKNOWN);
    fx_parse(M, 0, &cmd, 0, 200,
             "{\"status_code\":\"505\",\"status_message\":\"Unable to create va_number for "
             "this transaction\"}", &r);
    KT_INTEQ(r.verdict, EX_RETRY);
    fx_parse(M, 0, &cmd, 0, 503, "<html>unavailable</html>", &r);
    KT_INTEQ(r.verdict, EX_RETRY);
    fx_parse(M, 0, &cmd, 0, 200, "{\"status_code\":", &r);
    KT_INTEQ(r.verdict, EX_UNKNOWN);

    /* 406: the order_id was charged before (an earlier attempt ran): ask its status */
    fx_parse(M, 0, &cmd, 0, 406,
             "{\"status_code\":\"406\",\"status_message\":\"The request could not be completed "
             "due to a conflict with the current state of the target resource, please try "
             "again\"}", &r);
    KT_INTEQ(r.verdict, EX_NEXT);
    KT_INTEQ(fx_build(M, 0, &c, &cmd, 1, &r, out, sizeof(out), &e), KS_OK);
    snprintf(want, sizeof(want), "GET https://api.sandbox.midtrans.com/v2/order03/status\n%s-\n",
             fx_auth);
    KT_STREQ(out, want);
}

/* "Get Transaction Status": GET /v2/{order_id}/status; 404 "Transaction doesn't exist." */
KT_TEST(charge_status)
{
    struct ex_conf c = fx_conf("https://api.sandbox.midtrans.com", "");
    struct ex_cmd cmd = fx_cmd(EX_OP_CHARGE, "QRIS", 27500000, NULL, 0);
    struct ex_result r;
    struct ks_err e;
    char want[1024];

    cmd.order_id = "order03";
    KT_INTEQ(fx_build(M, 1, &c, &cmd, 0, NULL, out, sizeof(out), &e), KS_OK);
    snprintf(want, sizeof(want), "GET https://api.sandbox.midtrans.com/v2/order03/status\n%s-\n",
             fx_auth);
    KT_STREQ(out, want);
    fx_parse(M, 1, &cmd, 0, 200,
             "{\"status_code\":\"200\",\"status_message\":\"Success, transaction is found\","
             "\"transaction_id\":\"0d8178e1-c6c7-4ab4-81a6-893be9d924ab\",\"order_id\":"
             "\"order03\",\"gross_amount\":\"275000.00\",\"currency\":\"IDR\",\"payment_type\":"
             "\"qris\",\"transaction_time\":\"2021-06-23 15:31:18\",\"transaction_status\":"
             "\"settlement\",\"fraud_status\":\"accept\",\"settlement_time\":\"2021-06-23 "
             "15:32:00\"}", &r);
    KT_INTEQ(r.verdict, EX_SUCCEEDED);
    KT_STREQ(r.psp_reference, "0d8178e1-c6c7-4ab4-81a6-893be9d924ab");
    fx_parse(M, 1, &cmd, 0, 404,
             "{\"status_code\":\"404\",\"status_message\":\"Transaction doesn't exist.\"}", &r);
    KT_INTEQ(r.verdict, EX_ABSENT);
    /* Midtrans may say it with HTTP 200 */
    fx_parse(M, 1, &cmd, 0, 200,
             "{\"status_code\":\"404\",\"status_message\":\"Transaction doesn't exist.\"}", &r);
    KT_INTEQ(r.verdict, EX_ABSENT);
    const char *states[][3] = {
        {"201", "pending", "PC"}, {"200", "capture", "S"},   {"202", "deny", "F"},
        {"200", "cancel", "F"},   {"407", "expire", "F"},    {"200", "refund", "S"},
        {"200", "partial_refund", "S"}, {"202", "failure", "F"}, {"200", "mystery", "U"},
        {"200", "chargeback", "S"}, {"200", "partial_chargeback", "S"},
    };
    for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
        char body[512];
        enum ex_verdict want_v = states[i][2][0] == 'S' ? EX_SUCCEEDED
                                 : states[i][2][0] == 'F' ? EX_FAILED
                                 : states[i][2][0] == 'U' ? EX_UNKNOWN
                                                          : EX_PENDING_CUSTOMER;
        snprintf(body, sizeof(body),
                 "{\"status_code\":\"%s\",\"transaction_id\":\"t\",\"order_id\":\"order03\","
                 "\"gross_amount\":\"275000.00\",\"payment_type\":\"qris\",\"transaction_status\":"
                 "\"%s\",\"fraud_status\":\"accept\",\"qr_string\":\"000201\"}",
                 states[i][0], states[i][1]);
        fx_parse(M, 1, &cmd, 0, 200, body, &r);
        KT_CHECK_MSG(r.verdict == want_v, "%s: %d", states[i][1], r.verdict);
    }
    /* an order_id the PSP holds with another amount is not ours to report */
    cmd.amount_minor = 100;
    fx_parse(M, 1, &cmd, 0, 200,
             "{\"status_code\":\"200\",\"transaction_id\":\"t\",\"gross_amount\":\"275000.00\","
             "\"payment_type\":\"qris\",\"transaction_status\":\"settlement\"}", &r);
    KT_INTEQ(r.verdict, EX_UNKNOWN);
    KT_STREQ(r.failure_code, "reference_conflict");
}

/* "Refund Transaction": POST /v2/{order_id}/refund {"refund_key":"reference1","amount":5000,
 * "reason":"for some reason"} and its answer. */
KT_TEST(refund)
{
    struct ex_conf c = fx_conf("https://api.sandbox.midtrans.com", "");
    const struct ex_kv d[] = {{"reason", "for some reason"}};
    struct ex_cmd cmd = fx_cmd(EX_OP_REFUND, "EWALLET", 500000, d, 1);
    struct ex_result r;
    struct ks_err e;
    char want[2048];

    cmd.order_id = "ORDER-101";
    cmd.idem_key = "reference1";
    KT_INTEQ(fx_build(M, 0, &c, &cmd, 0, NULL, out, sizeof(out), &e), KS_OK);
    snprintf(want, sizeof(want),
             "POST https://api.sandbox.midtrans.com/v2/ORDER-101/refund\n%s"
             "application/json\n"
             "{\"refund_key\":\"reference1\",\"amount\":5000,\"reason\":\"for some reason\"}",
             fx_auth);
    KT_STREQ(out, want);
    fx_parse(M, 0, &cmd, 0, 200,
             "{\"status_code\":\"200\",\"status_message\":\"Success, refund request is "
             "approved\",\"transaction_id\":\"447e846a-403e-47db-a5da-d7f3f06375d6\","
             "\"order_id\":\"ORDER-101\",\"gross_amount\":\"10000.00\",\"currency\":\"IDR\","
             "\"payment_type\":\"gopay\",\"transaction_time\":\"2020-06-15 13:36:14\","
             "\"transaction_status\":\"partial_refund\",\"refund_chargeback_id\":1,"
             "\"refund_amount\":\"5000.00\",\"refund_key\":\"reference1\"}", &r);
    KT_INTEQ(r.verdict, EX_SUCCEEDED);
    KT_STREQ(r.psp_reference, "1");
    KT_INTEQ(r.amount_minor, 500000);
    fx_parse(M, 0, &cmd, 0, 412,
             "{\"status_code\":\"412\",\"status_message\":\"Merchant cannot modify the status of "
             "the transaction\"}", &r);
    KT_INTEQ(r.verdict, EX_FAILED);
    KT_STREQ(r.failure_code, "refund_not_allowed");
    fx_parse(M, 0, &cmd, 0, 200,
             "{\"status_code\":\"414\",\"status_message\":\"Refund amount is greater than the "
             "refundable amount\"}", &r);
    KT_INTEQ(r.verdict, EX_FAILED);
    KT_STREQ(r.failure_code, "refund_exceeds_charge");
    /* refund_key: "alphabets, numbers, dash (-), and underscore (_)" */
    cmd.idem_key = "ref 1/2";
    KT_INTEQ(fx_build(M, 0, &c, &cmd, 0, NULL, out, sizeof(out), &e), KS_EINVAL);
    KT_STREQ(e.field, "psp_idempotency_key");
    cmd.idem_key = "reference1";
    /* no order id: the charge's transaction_id names the transaction */
    cmd.order_id = "";
    cmd.charge_ref = "447e846a-403e-47db-a5da-d7f3f06375d6";
    KT_INTEQ(fx_build(M, 0, &c, &cmd, 0, NULL, out, sizeof(out), &e), KS_OK);
    KT_CHECK_MSG(strstr(out, "/v2/447e846a-403e-47db-a5da-d7f3f06375d6/refund\n"), "%s", out);
}

/* A refund's unknown outcome: the status's refunds list names each refund_key; without
 * a list, the refund is sent again with its refund_key (Midtrans answers the first). */
KT_TEST(refund_status)
{
    struct ex_conf c = fx_conf("https://api.sandbox.midtrans.com", "");
    struct ex_cmd cmd = fx_cmd(EX_OP_REFUND, "QRIS", 500000, NULL, 0);
    struct ex_result r;
    struct ks_err e;
    char refund[2048];

    cmd.order_id = "ORDER-101";
    cmd.idem_key = "reference1";
    KT_INTEQ(fx_build(M, 1, &c, &cmd, 0, NULL, out, sizeof(out), &e), KS_OK);
    KT_CHECK_MSG(strncmp(out, "GET https://api.sandbox.midtrans.com/v2/ORDER-101/status\n", 57) == 0,
                 "%s", out);
    fx_parse(M, 1, &cmd, 0, 200,
             "{\"status_code\":\"200\",\"transaction_id\":\"t\",\"order_id\":\"ORDER-101\","
             "\"gross_amount\":\"10000.00\",\"payment_type\":\"qris\",\"transaction_status\":"
             "\"partial_refund\",\"refund_amount\":\"5000.00\",\"refunds\":[{"
             "\"refund_chargeback_id\":7,\"refund_amount\":\"5000.00\",\"created_at\":\"2020-06-15 "
             "13:40:00\",\"reason\":\"for some reason\",\"refund_key\":\"reference1\"}]}", &r);
    KT_INTEQ(r.verdict, EX_SUCCEEDED);
    KT_STREQ(r.psp_reference, "7");
    fx_parse(M, 1, &cmd, 0, 200,
             "{\"status_code\":\"200\",\"transaction_id\":\"t\",\"gross_amount\":\"10000.00\","
             "\"payment_type\":\"qris\",\"transaction_status\":\"partial_refund\",\"refunds\":[{"
             "\"refund_chargeback_id\":8,\"refund_amount\":\"5000.00\",\"refund_key\":\"other\"}]}",
             &r);
    KT_INTEQ(r.verdict, EX_ABSENT);
    fx_parse(M, 1, &cmd, 0, 200,
             "{\"status_code\":\"200\",\"transaction_id\":\"t\",\"gross_amount\":\"10000.00\","
             "\"payment_type\":\"qris\",\"transaction_status\":\"settlement\"}", &r);
    KT_INTEQ(r.verdict, EX_ABSENT);
    fx_parse(M, 1, &cmd, 0, 200,
             "{\"status_code\":\"200\",\"transaction_id\":\"t\",\"gross_amount\":\"10000.00\","
             "\"payment_type\":\"qris\",\"transaction_status\":\"refund\"}", &r);
    KT_INTEQ(r.verdict, EX_NEXT);
    KT_INTEQ(fx_build(M, 1, &c, &cmd, 1, &r, out, sizeof(out), &e), KS_OK);
    KT_INTEQ(fx_build(M, 0, &c, &cmd, 0, NULL, refund, sizeof(refund), &e), KS_OK);
    KT_STREQ(out, refund);
    fx_parse(M, 1, &cmd, 1, 200,
             "{\"status_code\":\"200\",\"transaction_status\":\"refund\",\"refund_chargeback_id\""
             ":9,\"refund_amount\":\"5000.00\",\"refund_key\":\"reference1\"}", &r);
    KT_INTEQ(r.verdict, EX_SUCCEEDED);
    fx_parse(M, 1, &cmd, 0, 404,
             "{\"status_code\":\"404\",\"status_message\":\"Transaction doesn't exist.\"}", &r);
    KT_INTEQ(r.verdict, EX_ABSENT);
}

/* Iris "Create Payouts": POST /api/v1/payouts (Basic auth with the creator key,
 * X-Idempotency-Key) {"payouts":[{"beneficiary_name":"Jon Snow","beneficiary_account":
 * "1172993826","beneficiary_bank":"bni","amount":"100000.00","notes":"Payout April 17"}]},
 * answer 201 {"payouts":[{"status":"queued","reference_no":"..."}]}. */
static const struct ex_kv payout_details[] = {{"bank_code", "BNI"},
                                              {"account_holder", "Jon Snow"},
                                              {"destination_account", "1172993826"}};

KT_TEST(iris_payout)
{
    struct ex_conf c = fx_conf("https://api.sandbox.midtrans.com", "");
    struct ex_cmd cmd = fx_cmd(EX_OP_PAYOUT, "BANK_TRANSFER", 10000000, payout_details, 3);
    struct ex_result r;
    struct ks_err e;
    char want[2048];

    c.payout_base_url = "https://app.sandbox.midtrans.com/iris";
    cmd.payout_id = "Payout April 17";
    KT_INTEQ(fx_build(M, 0, &c, &cmd, 0, NULL, out, sizeof(out), &e), KS_OK);
    snprintf(want, sizeof(want),
             "POST https://app.sandbox.midtrans.com/iris/api/v1/payouts\n%s"
             "X-Idempotency-Key: idem_0190f3c2-7b1e-7cc3-9d5e-3f1a2b4c5d6e\n"
             "application/json\n"
             "{\"payouts\":[{\"beneficiary_name\":\"Jon Snow\",\"beneficiary_account\":"
             "\"1172993826\",\"beneficiary_bank\":\"bni\",\"amount\":\"100000.00\",\"notes\":"
             "\"Payout April 17\"}]}",
             fx_payout_auth);
    KT_STREQ(out, want);
    /* the server key is not the Iris key */
    KT_CHECK(strstr(out, fx_auth) == NULL);
    fx_parse(M, 0, &cmd, 0, 201,
             "{\"payouts\":[{\"status\":\"queued\",\"reference_no\":\"1d4f8c4e8e43bbd1ee\"}]}", &r);
    KT_INTEQ(r.verdict, EX_PENDING);
    KT_STREQ(r.psp_reference, "1d4f8c4e8e43bbd1ee");
    fx_parse(M, 0, &cmd, 0, 400,
             "{\"error_message\":\"An error occured when creating payouts\",\"errors\":{\"0\":"
             "[\"Beneficiary account can't be blank\"]}}", &r);
    KT_INTEQ(r.verdict, EX_FAILED);
    KT_STREQ(r.failure_message, "An error occured when creating payouts: Beneficiary account can't be blank");
    fx_parse(M, 0, &cmd, 0, 401, "{\"error_message\":\"Unauthorized\"}", &r);
    KT_INTEQ(r.verdict, EX_RETRY);
    /* the key was used with another body: a payout may exist, never "failed" */
    fx_parse(M, 0, &cmd, 0, 409, "{\"error_message\":\"X-Idempotency-Key has been used\"}", &r);
    KT_INTEQ(r.verdict, EX_UNKNOWN);
    fx_parse(M, 0, &cmd, 0, 500, "", &r);
    KT_INTEQ(r.verdict, EX_UNKNOWN);
    c.payout_secret = "";
    KT_INTEQ(fx_build(M, 0, &c, &cmd, 0, NULL, out, sizeof(out), &e), KS_ECONFIG);
    c.payout_secret = fx_payout_secret;
    cmd.n_details = 2;
    KT_INTEQ(fx_build(M, 0, &c, &cmd, 0, NULL, out, sizeof(out), &e), KS_EINVAL);
    KT_STREQ(e.field, "details.destination_account");
}

/* Iris "Get Payout Details": GET /api/v1/payouts/{reference_no}; without a reference_no
 * the create is sent again with the same X-Idempotency-Key. */
KT_TEST(iris_status)
{
    struct ex_conf c = fx_conf("https://api.sandbox.midtrans.com", "");
    struct ex_cmd cmd = fx_cmd(EX_OP_PAYOUT, "BANK_TRANSFER", 20000000, payout_details, 3);
    struct ex_result prev, r;
    struct ks_err e;
    char want[1024], create[2048];

    cmd.payout_id = "po_1";
    ex_result_clear(&prev);
    snprintf(prev.psp_reference, sizeof(prev.psp_reference), "83hgf882");
    KT_INTEQ(fx_build(M, 1, &c, &cmd, 0, &prev, out, sizeof(out), &e), KS_OK);
    snprintf(want, sizeof(want), "GET https://api.sandbox.midtrans.com/api/v1/payouts/83hgf882\n%s-\n",
             fx_payout_auth);
    KT_STREQ(out, want);
    prev.psp_reference[0] = '\0';
    KT_INTEQ(fx_build(M, 1, &c, &cmd, 0, &prev, out, sizeof(out), &e), KS_OK);
    KT_INTEQ(fx_build(M, 0, &c, &cmd, 0, NULL, create, sizeof(create), &e), KS_OK);
    KT_STREQ(out, create);
    const char *states[][2] = {{"queued", "P"}, {"approved", "P"}, {"processed", "P"},
                               {"completed", "S"}, {"failed", "F"}, {"rejected", "F"}};
    for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
        char body[600];
        enum ex_verdict want_v = states[i][1][0] == 'S'   ? EX_SUCCEEDED
                                 : states[i][1][0] == 'F' ? EX_FAILED
                                                          : EX_PENDING;
        snprintf(body, sizeof(body),
                 "{\"amount\":\"200000.00\",\"beneficiary_name\":\"Ryan Renolds\","
                 "\"beneficiary_account\":\"33287352\",\"bank\":\"Bank Central Asia ( BCA )\","
                 "\"reference_no\":\"83hgf882\",\"notes\":\"Payout June 17\","
                 "\"beneficiary_email\":\"beneficiary@example.com\",\"status\":\"%s\","
                 "\"created_by\":\"John Doe\",\"created_at\":\"2017-01-11T00:00:00Z\","
                 "\"updated_at\":\"2017-01-11T00:00:00Z\"}",
                 states[i][0]);
        fx_parse(M, 1, &cmd, 0, 200, body, &r);
        KT_CHECK_MSG(r.verdict == want_v, "%s: %d", states[i][0], r.verdict);
        KT_STREQ(r.psp_reference, "83hgf882");
        KT_INTEQ(r.amount_minor, 20000000);
    }
    fx_parse(M, 1, &cmd, 0, 404, "{\"error_message\":\"Payout not found\"}", &r);
    KT_INTEQ(r.verdict, EX_ABSENT);
}

KT_MAIN(keys, supports_matrix, charge_bank_transfer_request, charge_bank_transfer_answers,
        charge_qris, charge_gopay, charge_errors, charge_status, refund, refund_status,
        iris_payout, iris_status)
