/* test_executor_xendit.c - the Xendit adapter against Xendit's API reference: each request
 * built byte for byte, each documented answer and error read to its verdict.
 *
 * Reference: https://archive.developers.xendit.co/api-reference/ (sections named at each
 * test); disbursement errors https://docs.xendit.co/id/xendisburse/disbursement-errors.
 * The fixtures' values are the reference's examples; the secret key is made at run time. */
#define FX_XENDIT
#include "tests/unit/executor_adapter_test.h"

static const struct ex_adapter *X = &ex_adapter_xendit;
static char out[4096];

KT_TEST(keys)
{
    fx_keys("xnd_development_", "unused_");
    KT_CHECK(strlen(fx_secret) > 16);
}

KT_TEST(supports_matrix)
{
    KT_CHECK(X->supports(EX_OP_CHARGE, "VIRTUAL_ACCOUNT", "IDR"));
    KT_CHECK(X->supports(EX_OP_CHARGE, "QRIS", "IDR"));
    KT_CHECK(X->supports(EX_OP_PAYOUT, "BANK_TRANSFER", "IDR"));
    KT_CHECK(!X->supports(EX_OP_CHARGE, "CARD", "IDR"));
    KT_CHECK(!X->supports(EX_OP_CHARGE, "EWALLET", "IDR"));
    KT_CHECK(!X->supports(EX_OP_CHARGE, "BANK_TRANSFER", "IDR"));
    KT_CHECK(!X->supports(EX_OP_CHARGE, "VIRTUAL_ACCOUNT", "USD"));
    KT_CHECK(!X->supports(EX_OP_PAYOUT, "EWALLET", "IDR"));
    /* neither fixed VAs nor v1 QR codes have a refund API */
    KT_CHECK(!X->supports(EX_OP_REFUND, "VIRTUAL_ACCOUNT", "IDR"));
    KT_CHECK(!X->supports(EX_OP_REFUND, "QRIS", "IDR"));
    KT_CHECK(ex_adapter_find("xendit") == X);
}

/* "Virtual Accounts" > "Create Fixed Virtual Account": POST /callback_virtual_accounts,
 * example external_id=demo-1475804036622, bank_code=BNI, name='Rika Sutanto' (Basic auth
 * with the secret key as user name), plus expected_amount, is_closed and is_single_use of
 * the parameter table. */
static const struct ex_kv va_details[] = {{"bank_code", "BNI"}, {"customer_name", "Rika Sutanto"}};

KT_TEST(va_create_request)
{
    struct ex_conf c = fx_conf("https://api.xendit.co", "");
    struct ex_cmd cmd = fx_cmd(EX_OP_CHARGE, "VIRTUAL_ACCOUNT", 15000000, va_details, 2);
    struct ks_err e;
    char want[2048];

    cmd.order_id = "demo-1475804036622";
    KT_INTEQ(fx_build(X, 0, &c, &cmd, 0, NULL, out, sizeof(out), &e), KS_OK);
    snprintf(want, sizeof(want),
             "POST https://api.xendit.co/callback_virtual_accounts\n%s"
             "X-IDEMPOTENCY-KEY: idem_0190f3c2-7b1e-7cc3-9d5e-3f1a2b4c5d6e\n"
             "application/json\n"
             "{\"external_id\":\"demo-1475804036622\",\"bank_code\":\"BNI\",\"name\":\"Rika "
             "Sutanto\",\"expected_amount\":150000,\"is_closed\":true,\"is_single_use\":true}",
             fx_auth);
    KT_STREQ(out, want);

    /* an expiry from the command is passed on (parameter expiration_date, ISO 8601) */
    const struct ex_kv d2[] = {{"bank_code", "BCA"}, {"expires_at", "2026-12-03T10:00:00Z"}};
    cmd = fx_cmd(EX_OP_CHARGE, "VIRTUAL_ACCOUNT", 10000, d2, 2);
    cmd.order_id = "ord_1";
    KT_INTEQ(fx_build(X, 0, &c, &cmd, 0, NULL, out, sizeof(out), &e), KS_OK);
    KT_CHECK_MSG(strstr(out, "\"name\":\"Kasir Customer\",\"expected_amount\":100,\"is_closed\":"
                             "true,\"is_single_use\":true,\"expiration_date\":\"2026-12-03T10:"
                             "00:00Z\"}"),
                 "%s", out);
}

KT_TEST(va_bad_commands)
{
    struct ex_conf c = fx_conf("https://api.xendit.co", "");
    struct ex_cmd cmd = fx_cmd(EX_OP_CHARGE, "VIRTUAL_ACCOUNT", 15000050, va_details, 2);
    struct ks_err e;

    cmd.order_id = "ord_1";
    /* Xendit takes whole rupiah: 150000.50 cannot be sent */
    KT_INTEQ(fx_build(X, 0, &c, &cmd, 0, NULL, out, sizeof(out), &e), KS_EINVAL);
    KT_STREQ(e.field, "amount_minor");
    cmd.amount_minor = 15000000;
    cmd.n_details = 0;
    KT_INTEQ(fx_build(X, 0, &c, &cmd, 0, NULL, out, sizeof(out), &e), KS_EINVAL);
    KT_STREQ(e.field, "details.bank_code");
    const struct ex_kv lower[] = {{"bank_code", "bni"}};
    cmd.details = lower;
    cmd.n_details = 1;
    KT_INTEQ(fx_build(X, 0, &c, &cmd, 0, NULL, out, sizeof(out), &e), KS_EINVAL);
    KT_STREQ(e.field, "details.bank_code");
    cmd = fx_cmd(EX_OP_CHARGE, "VIRTUAL_ACCOUNT", 15000000, va_details, 2);
    KT_INTEQ(fx_build(X, 0, &c, &cmd, 0, NULL, out, sizeof(out), &e), KS_EINVAL);
    KT_STREQ(e.field, "order_id");
    cmd.order_id = "ord_1";
    cmd.currency = "USD";
    KT_INTEQ(fx_build(X, 0, &c, &cmd, 0, NULL, out, sizeof(out), &e), KS_EINVAL);
    cmd = fx_cmd(EX_OP_REFUND, "VIRTUAL_ACCOUNT", 15000000, va_details, 2);
    cmd.order_id = "ord_1";
    KT_INTEQ(fx_build(X, 0, &c, &cmd, 0, NULL, out, sizeof(out), &e), KS_EINVAL);
    /* no key set: a configuration problem, nothing is sent */
    cmd = fx_cmd(EX_OP_CHARGE, "VIRTUAL_ACCOUNT", 15000000, va_details, 2);
    cmd.order_id = "ord_1";
    c.secret = "";
    KT_INTEQ(fx_build(X, 0, &c, &cmd, 0, NULL, out, sizeof(out), &e), KS_ECONFIG);
    KT_INTEQ(fx_build(X, 1, &c, &cmd, 0, NULL, out, sizeof(out), &e), KS_ECONFIG);
    c.secret = fx_secret;
    /* an idempotency key cannot split a header line */
    cmd = fx_cmd(EX_OP_CHARGE, "VIRTUAL_ACCOUNT", 15000000, va_details, 2);
    cmd.order_id = "ord_1";
    cmd.idem_key = "k\r\nX-Evil: 1";
    KT_INTEQ(fx_build(X, 0, &c, &cmd, 0, NULL, out, sizeof(out), &e), KS_EINVAL);
    KT_STREQ(e.field, "psp_idempotency_key");
}

/* "Create Fixed Virtual Account", example response (status PENDING: usable at once). */
static const char va_response[] =
    "{\"owner_id\":\"57b4e5181473eeb61c11f9b9\",\"external_id\":\"demo-1475804036622\","
    "\"bank_code\":\"BNI\",\"merchant_code\":\"8808\",\"name\":\"Rika Sutanto\","
    "\"account_number\":\"88082548\",\"is_single_use\":false,\"status\":\"PENDING\","
    "\"expiration_date\":\"2051-01-01T00:00:00.000Z\",\"is_closed\":false,"
    "\"id\":\"57f6fbf26b9f064272622aa6\"}";

KT_TEST(va_answers)
{
    struct ex_cmd cmd = fx_cmd(EX_OP_CHARGE, "VIRTUAL_ACCOUNT", 15000000, va_details, 2);
    struct ex_result r;

    cmd.order_id = "demo-1475804036622";
    fx_parse(X, 0, &cmd, 0, 200, va_response, &r);
    KT_INTEQ(r.verdict, EX_PENDING_CUSTOMER);
    KT_STREQ(r.psp_reference, "57f6fbf26b9f064272622aa6");
    KT_STREQ(fx_next(&r, "va_number"), "88082548");
    KT_STREQ(fx_next(&r, "bank_code"), "BNI");
    KT_STREQ(fx_next(&r, "expires_at"), "2051-01-01T00:00:00.000Z");

    /* "Errors" of Create Fixed Virtual Account */
    fx_parse(X, 0, &cmd, 0, 400,
             "{\"error_code\":\"BANK_NOT_SUPPORTED_ERROR\",\"message\":\"That bank code is not "
             "currently supported\"}", &r);
    KT_INTEQ(r.verdict, EX_FAILED);
    KT_STREQ(r.failure_code, "bank_not_supported");
    KT_STREQ(r.failure_message, "BANK_NOT_SUPPORTED_ERROR: That bank code is not currently supported");
    fx_parse(X, 0, &cmd, 0, 400,
             "{\"error_code\":\"API_VALIDATION_ERROR\",\"message\":\"\\\"name\\\" is required\"}", &r);
    KT_INTEQ(r.verdict, EX_FAILED);
    KT_STREQ(r.failure_code, "invalid_request");
    fx_parse(X, 0, &cmd, 0, 401,
             "{\"error_code\":\"INVALID_API_KEY\",\"message\":\"API key is not authorized for "
             "this API service\"}", &r);
    KT_INTEQ(r.verdict, EX_RETRY);
    KT_STREQ(r.failure_code, "psp_auth");
    fx_parse(X, 0, &cmd, 0, 500,
             "{\"error_code\":\"SERVER_ERROR\",\"message\":\"An unexpected error occured\"}", &r);
    KT_INTEQ(r.verdict, EX_UNKNOWN);
    /* the key was used with another body: a VA exists that cannot be found by external_id */
    fx_parse(X, 0, &cmd, 0, 409,
             "{\"error_code\":\"DUPLICATE_TRANSACTION_ERROR\",\"message\":\"Idempotency key has "
             "been used before\"}", &r);
    KT_INTEQ(r.verdict, EX_UNKNOWN);
    fx_parse(X, 0, &cmd, 0, 503, "<html>Service Unavailable</html>", &r);
    KT_INTEQ(r.verdict, EX_RETRY);
    fx_parse(X, 0, &cmd, 0, 200, "{\"id\":", &r);
    KT_INTEQ(r.verdict, EX_UNKNOWN);
    fx_parse(X, 0, &cmd, 0, 502, "", &r);
    KT_INTEQ(r.verdict, EX_UNKNOWN);
}

/* "Get Fixed Virtual Account": GET /callback_virtual_accounts/{id}; without the id the
 * create is sent again under the same key (Xendit answers the first VA). */
KT_TEST(va_status)
{
    struct ex_conf c = fx_conf("https://api.xendit.co/", "");
    struct ex_cmd cmd = fx_cmd(EX_OP_CHARGE, "VIRTUAL_ACCOUNT", 15000000, va_details, 2);
    struct ex_result prev, r;
    struct ks_err e;
    char want[2048], create[4096];

    cmd.order_id = "demo-1475804036622";
    ex_result_clear(&prev);
    snprintf(prev.psp_reference, sizeof(prev.psp_reference), "57f6fbf26b9f064272622aa6");
    KT_INTEQ(fx_build(X, 1, &c, &cmd, 0, &prev, out, sizeof(out), &e), KS_OK);
    snprintf(want, sizeof(want),
             "GET https://api.xendit.co/callback_virtual_accounts/57f6fbf26b9f064272622aa6\n%s-\n",
             fx_auth);
    KT_STREQ(out, want);
    prev.psp_reference[0] = '\0';
    KT_INTEQ(fx_build(X, 1, &c, &cmd, 0, &prev, out, sizeof(out), &e), KS_OK);
    KT_INTEQ(fx_build(X, 0, &c, &cmd, 0, NULL, create, sizeof(create), &e), KS_OK);
    KT_STREQ(out, create);
    KT_INTEQ(fx_build(X, 1, &c, &cmd, 1, &prev, out, sizeof(out), &e), KS_EINVAL);

    /* the account as GET shows it: ACTIVE */
    fx_parse(X, 1, &cmd, 0, 200,
             "{\"id\":\"57f6fbf26b9f064272622aa6\",\"owner_id\":\"57b4e5181473eeb61c11f9b9\","
             "\"external_id\":\"demo-1475804036622\",\"bank_code\":\"BNI\",\"merchant_code\":"
             "\"8808\",\"name\":\"Rika Sutanto\",\"account_number\":\"88082548\","
             "\"expected_amount\":150000,\"is_single_use\":true,\"is_closed\":true,"
             "\"status\":\"ACTIVE\",\"expiration_date\":\"2051-01-01T00:00:00.000Z\"}", &r);
    KT_INTEQ(r.verdict, EX_PENDING_CUSTOMER);
    KT_INTEQ(r.amount_minor, 15000000);
    KT_STREQ(fx_next(&r, "va_number"), "88082548");
    fx_parse(X, 1, &cmd, 0, 200,
             "{\"id\":\"57f6fbf26b9f064272622aa6\",\"status\":\"INACTIVE\",\"account_number\":"
             "\"88082548\"}", &r);
    KT_INTEQ(r.verdict, EX_PENDING);
    fx_parse(X, 1, &cmd, 0, 404,
             "{\"error_code\":\"CALLBACK_VIRTUAL_ACCOUNT_NOT_FOUND_ERROR\",\"message\":\"Could "
             "not find callback virtual account\"}", &r);
    KT_INTEQ(r.verdict, EX_ABSENT);
}

/* "QR Codes" > "Create QR Code": POST /qr_codes with external_id=testing_id_123,
 * type=DYNAMIC, callback_url=https://yourwebsite.com/callback, amount=1500 (the reference's
 * example is form-encoded; Xendit takes the same parameters as JSON). */
static const char qr_response[] =
    "{\"id\":\"qr_8182837te-87st-49ing-8696-1239bd4d759c\",\"external_id\":\"testing_id_123\","
    "\"amount\":1500,\"qr_string\":\"0002010102##########CO.XENDIT.WWW011893600#######14220002"
    "152#####414220010303TTT####015CO.XENDIT.WWW02180000000000000000000TTT52045######ID5911Xen"
    "ditQRIS6007Jakarta6105121606##########3k1mOnF73h11111111#3k1mOnF73h6v53033605401163040BDB"
    "\",\"callback_url\":\"https://yourwebsite.com/callback\",\"type\":\"DYNAMIC\",\"status\":"
    "\"ACTIVE\",\"created\":\"2020-01-08T18:18:18.661Z\",\"updated\":\"2020-01-08T18:18:18.661Z\"}";

KT_TEST(qr_create)
{
    struct ex_conf c = fx_conf("https://api.xendit.co", "https://yourwebsite.com/callback");
    struct ex_cmd cmd = fx_cmd(EX_OP_CHARGE, "QRIS", 150000, NULL, 0);
    struct ex_result r;
    struct ks_err e;
    char want[2048];

    cmd.order_id = "testing_id_123";
    KT_INTEQ(fx_build(X, 0, &c, &cmd, 0, NULL, out, sizeof(out), &e), KS_OK);
    snprintf(want, sizeof(want),
             "POST https://api.xendit.co/qr_codes\n%s"
             "X-IDEMPOTENCY-KEY: idem_0190f3c2-7b1e-7cc3-9d5e-3f1a2b4c5d6e\n"
             "application/json\n"
             "{\"external_id\":\"testing_id_123\",\"type\":\"DYNAMIC\",\"callback_url\":"
             "\"https://yourwebsite.com/callback\",\"amount\":1500}",
             fx_auth);
    KT_STREQ(out, want);
    fx_parse(X, 0, &cmd, 0, 201, qr_response, &r);
    KT_INTEQ(r.verdict, EX_PENDING_CUSTOMER);
    KT_STREQ(r.psp_reference, "qr_8182837te-87st-49ing-8696-1239bd4d759c");
    KT_CHECK(strncmp(fx_next(&r, "qr_string"), "0002010102", 10) == 0);
    KT_INTEQ(r.amount_minor, 150000);

    /* no callback URL: the setting is missing, nothing is sent */
    c.notify_url = "";
    KT_INTEQ(fx_build(X, 0, &c, &cmd, 0, NULL, out, sizeof(out), &e), KS_ECONFIG);
    fx_parse(X, 0, &cmd, 0, 400,
             "{\"error_code\":\"API_VALIDATION_ERROR\",\"message\":\"\\\"amount\\\" must be at "
             "least 1500\"}", &r);
    KT_INTEQ(r.verdict, EX_FAILED);
    KT_STREQ(r.failure_code, "invalid_request");
}

/* A QR code's external_id is unique (409 DUPLICATE_ERROR): the first one is found with
 * "Get QR Code by external_id", GET /qr_codes/{external_id}. */
KT_TEST(qr_duplicate_and_status)
{
    struct ex_conf c = fx_conf("https://api.xendit.co", "https://yourwebsite.com/callback");
    struct ex_cmd cmd = fx_cmd(EX_OP_CHARGE, "QRIS", 150000, NULL, 0);
    struct ex_result r;
    struct ks_err e;
    char want[1024];

    cmd.order_id = "testing_id_123";
    fx_parse(X, 0, &cmd, 0, 409,
             "{\"error_code\":\"DUPLICATE_ERROR\",\"message\":\"The external_id has already been "
             "used\"}", &r);
    KT_INTEQ(r.verdict, EX_NEXT);
    KT_INTEQ(fx_build(X, 0, &c, &cmd, 1, &r, out, sizeof(out), &e), KS_OK);
    snprintf(want, sizeof(want), "GET https://api.xendit.co/qr_codes/testing_id_123\n%s-\n", fx_auth);
    KT_STREQ(out, want);
    KT_INTEQ(fx_build(X, 1, &c, &cmd, 0, NULL, out, sizeof(out), &e), KS_OK);
    KT_STREQ(out, want);
    fx_parse(X, 0, &cmd, 1, 200, qr_response, &r);
    KT_INTEQ(r.verdict, EX_PENDING_CUSTOMER);
    fx_parse(X, 1, &cmd, 0, 200, qr_response, &r);
    KT_INTEQ(r.verdict, EX_PENDING_CUSTOMER);
    /* a code of another amount under our external_id is not ours to report */
    cmd.amount_minor = 250000;
    fx_parse(X, 1, &cmd, 0, 200, qr_response, &r);
    KT_INTEQ(r.verdict, EX_UNKNOWN);
    KT_STREQ(r.failure_code, "reference_conflict");
    cmd.amount_minor = 150000;
    fx_parse(X, 1, &cmd, 0, 404, "{\"error_code\":\"DATA_NOT_FOUND\",\"message\":\"QR code not found\"}", &r);
    KT_INTEQ(r.verdict, EX_ABSENT);
    /* in the step sequence a lookup that finds nothing contradicts the 409: unknown */
    fx_parse(X, 0, &cmd, 1, 404, "{\"error_code\":\"DATA_NOT_FOUND\",\"message\":\"QR code not found\"}", &r);
    KT_INTEQ(r.verdict, EX_UNKNOWN);
    /* an id that could change the path is escaped */
    cmd.order_id = "a/b?c";
    KT_INTEQ(fx_build(X, 1, &c, &cmd, 0, NULL, out, sizeof(out), &e), KS_OK);
    KT_CHECK_MSG(strncmp(out, "GET https://api.xendit.co/qr_codes/a%2Fb%3Fc\n", 45) == 0, "%s", out);
}

/* "Using Disbursements" (https://docs.xendit.co/xendisburse/apis/using-disbursement/) and
 * the API reference's "Disbursements" > "Create Disbursement": X-IDEMPOTENCY-KEY,
 * external_id=demo_1475459775872, amount=17000, bank_code=BCA, account_holder_name='Bob
 * Jones', account_number=1231241231, description 'Reimbursement for shoes'; the answer is
 * the guide's example (status PENDING). */
static const struct ex_kv disb_details[] = {{"bank_code", "BCA"},
                                            {"account_holder", "Bob Jones"},
                                            {"destination_account", "1231241231"},
                                            {"description", "Reimbursement for shoes"}};
static const char disb_response[] =
    "{\"id\":\"57f1ca56bb1a631a65eee65e\",\"updated\":\"2016-10-03T03:02:46.239Z\","
    "\"created\":\"2016-10-03T03:02:46.239Z\",\"user_id\":\"57b4e5181473eeb61c11f9b9\","
    "\"external_id\":\"demo_1475459775872\",\"amount\":17000,\"bank_code\":\"BCA\","
    "\"account_holder_name\":\"Bob Jones\",\"disbursement_description\":\"Reimbursement "
    "for shoes\",\"status\":\"PENDING\"}";

KT_TEST(disbursement_create)
{
    struct ex_conf c = fx_conf("https://api.xendit.co", "");
    struct ex_cmd cmd = fx_cmd(EX_OP_PAYOUT, "BANK_TRANSFER", 1700000, disb_details, 4);
    struct ex_result r;
    struct ks_err e;
    char want[2048];

    cmd.payout_id = "demo_1475459775872";
    KT_INTEQ(fx_build(X, 0, &c, &cmd, 0, NULL, out, sizeof(out), &e), KS_OK);
    snprintf(want, sizeof(want),
             "POST https://api.xendit.co/disbursements\n%s"
             "X-IDEMPOTENCY-KEY: idem_0190f3c2-7b1e-7cc3-9d5e-3f1a2b4c5d6e\n"
             "application/json\n"
             "{\"external_id\":\"demo_1475459775872\",\"amount\":17000,\"bank_code\":\"BCA\","
             "\"account_holder_name\":\"Bob Jones\",\"account_number\":\"1231241231\","
             "\"description\":\"Reimbursement for shoes\"}",
             fx_auth);
    KT_STREQ(out, want);
    /* the result comes by callback: accepted is pending */
    fx_parse(X, 0, &cmd, 0, 200, disb_response, &r);
    KT_INTEQ(r.verdict, EX_PENDING);
    KT_STREQ(r.psp_reference, "57f1ca56bb1a631a65eee65e");
    KT_INTEQ(r.amount_minor, 1700000);

    cmd.n_details = 1;
    KT_INTEQ(fx_build(X, 0, &c, &cmd, 0, NULL, out, sizeof(out), &e), KS_EINVAL);
    KT_STREQ(e.field, "details.account_holder");
    /* without a description the payout id is the text Xendit requires */
    const struct ex_kv d3[] = {{"bank_code", "BCA"}, {"account_holder", "Bob Jones"},
                               {"destination_account", "1231241231"}};
    cmd.details = d3;
    cmd.n_details = 3;
    KT_INTEQ(fx_build(X, 0, &c, &cmd, 0, NULL, out, sizeof(out), &e), KS_OK);
    KT_CHECK_MSG(strstr(out, "\"description\":\"Payout demo_1475459775872\"}"), "%s", out);
}

/* Disbursement errors (https://docs.xendit.co/id/xendisburse/disbursement-errors) and
 * "Get Disbursement by External ID": GET /disbursements?external_id= answers a list. */
KT_TEST(disbursement_errors_and_status)
{
    struct ex_conf c = fx_conf("https://api.xendit.co", "");
    struct ex_cmd cmd = fx_cmd(EX_OP_PAYOUT, "BANK_TRANSFER", 1700000, disb_details, 4);
    struct ex_result r;
    struct ks_err e;
    char want[1024];

    cmd.payout_id = "demo_1475459775872";
    /* a reused key is "already done", not a failure: find it by external_id */
    fx_parse(X, 0, &cmd, 0, 409,
             "{\"error_code\":\"DUPLICATE_TRANSACTION_ERROR\",\"message\":\"Idempotency key has "
             "been used before. Use a unique idempotency key and try again\"}", &r);
    KT_INTEQ(r.verdict, EX_NEXT);
    KT_INTEQ(fx_build(X, 0, &c, &cmd, 1, &r, out, sizeof(out), &e), KS_OK);
    snprintf(want, sizeof(want),
             "GET https://api.xendit.co/disbursements?external_id=demo_1475459775872\n%s-\n", fx_auth);
    KT_STREQ(out, want);
    KT_INTEQ(fx_build(X, 1, &c, &cmd, 0, NULL, out, sizeof(out), &e), KS_OK);
    KT_STREQ(out, want);
    fx_parse(X, 0, &cmd, 1, 200,
             "[{\"id\":\"57f1ca56bb1a631a65eee65e\",\"user_id\":\"57b4e5181473eeb61c11f9b9\","
             "\"external_id\":\"demo_1475459775872\",\"amount\":17000,\"bank_code\":\"BCA\","
             "\"account_holder_name\":\"Bob Jones\",\"disbursement_description\":\"Reimbursement "
             "for shoes\",\"status\":\"COMPLETED\"}]", &r);
    KT_INTEQ(r.verdict, EX_SUCCEEDED);
    KT_STREQ(r.psp_reference, "57f1ca56bb1a631a65eee65e");
    fx_parse(X, 1, &cmd, 0, 200,
             "[{\"id\":\"a\",\"external_id\":\"demo_1475459775872\",\"amount\":17000,\"status\":"
             "\"FAILED\",\"failure_code\":\"INVALID_DESTINATION\"},{\"id\":\"b\",\"external_id\":"
             "\"demo_1475459775872\",\"amount\":17000,\"status\":\"PENDING\"}]", &r);
    KT_INTEQ(r.verdict, EX_PENDING);
    KT_STREQ(r.psp_reference, "b");
    fx_parse(X, 1, &cmd, 0, 200,
             "[{\"id\":\"a\",\"external_id\":\"demo_1475459775872\",\"amount\":17000,\"status\":"
             "\"FAILED\",\"failure_code\":\"INVALID_DESTINATION\"}]", &r);
    KT_INTEQ(r.verdict, EX_FAILED);
    KT_STREQ(r.failure_code, "invalid_destination");
    fx_parse(X, 1, &cmd, 0, 200, "[]", &r);
    KT_INTEQ(r.verdict, EX_ABSENT);
    fx_parse(X, 1, &cmd, 0, 404,
             "{\"error_code\":\"DIRECT_DISBURSEMENT_NOT_FOUND_ERROR\",\"message\":\"Could not "
             "find direct disbursement\"}", &r);
    KT_INTEQ(r.verdict, EX_ABSENT);

    fx_parse(X, 0, &cmd, 0, 400,
             "{\"error_code\":\"RECIPIENT_AMOUNT_ERROR\",\"message\":\"The transfer amount "
             "requested is lower than the minimum\"}", &r);
    KT_INTEQ(r.verdict, EX_FAILED);
    KT_STREQ(r.failure_code, "amount_out_of_range");
    fx_parse(X, 0, &cmd, 0, 400,
             "{\"error_code\":\"RECIPIENT_ACCOUNT_NUMBER_ERROR\",\"message\":\"For transfers to "
             "this bank, account_number must be 10 digits\"}", &r);
    KT_STREQ(r.failure_code, "invalid_destination");
    fx_parse(X, 0, &cmd, 0, 400,
             "{\"error_code\":\"INSUFFICIENT_BALANCE\",\"message\":\"The balance in your account "
             "is insufficient to make the disbursement\"}", &r);
    KT_INTEQ(r.verdict, EX_RETRY);
    fx_parse(X, 0, &cmd, 0, 400,
             "{\"error_code\":\"BANK_CODE_NOT_SUPPORTED_ERROR\",\"message\":\"Destination bank "
             "code is not supported\"}", &r);
    KT_INTEQ(r.verdict, EX_FAILED);
    KT_STREQ(r.failure_code, "bank_not_supported");
    /* the disbursement callback's failure codes, as GET shows them */
    fx_parse(X, 1, &cmd, 0, 200,
             "[{\"id\":\"a\",\"amount\":17000,\"status\":\"FAILED\",\"failure_code\":"
             "\"REJECTED_BY_BANK\"}]", &r);
    KT_STREQ(r.failure_code, "rejected_by_bank");
    fx_parse(X, 1, &cmd, 0, 200,
             "[{\"id\":\"a\",\"amount\":17000,\"status\":\"FAILED\",\"failure_code\":"
             "\"TEMPORARY_BANK_NETWORK_ERROR\"}]", &r);
    KT_STREQ(r.failure_code, "bank_network_error");
}

KT_MAIN(keys, supports_matrix, va_create_request, va_bad_commands, va_answers, va_status, qr_create,
        qr_duplicate_and_status, disbursement_create, disbursement_errors_and_status)
