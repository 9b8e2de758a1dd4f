/* test_executor_sandbox.c - the adapter for kasir-psp-sandbox's own API against the shapes
 * deploy/psp-sandbox/native.c answers (README "its own API"): requests built, answers read,
 * the status lookup by reference. The key is a made-up placeholder. */
#include <stdlib.h>
#include <string.h>

#include "consumers/executor/adapter.c"
#include "consumers/executor/adapter_util.c"
#include "consumers/executor/adapter_sandbox.c"
#include "tests/unit/ktest.h"

const struct ex_adapter ex_adapter_stripe = {.name = "stripe"};
const struct ex_adapter ex_adapter_xendit = {.name = "xendit"};
const struct ex_adapter ex_adapter_midtrans = {.name = "midtrans"};

static const struct ex_conf CONF = {"http://127.0.0.1:8091", "sbx_placeholder", "", "", ""};
static const struct ex_kv CARD[] = {{"payment_token", "pm_card_visa"}};
static const struct ex_kv VA[] = {{"bank_code", "BNI"}};
static const struct ex_kv PAYOUT[] = {{"bank_code", "BCA"}, {"destination_account", "1234567890"},
                                      {"account_holder", "Siti"}};

static struct ex_cmd cmd(enum ex_op op, const char *method, const struct ex_kv *d, size_t n)
{
    struct ex_cmd c = {op, "cmd_1", "pt_1", "pay_1", "ord_1", "rf_1", "po_1", "idk_1",
                       15000050, "IDR", method, d, n, "sbch_1"};
    return c;
}

static const char *request(struct ex_cmd c, struct ex_req *req, enum ks_code want)
{
    struct ks_err err = {0};
    ex_req_reset(req);
    KT_INTEQ(ex_adapter_sandbox.build(&CONF, &c, 0, NULL, req, &err), want);
    return ks_buf_str(&req->body);
}

KT_TEST(test_requests)
{
    struct ex_req req;

    ex_req_init(&req);
    KT_STREQ(request(cmd(EX_OP_CHARGE, "CARD", CARD, 1), &req, KS_OK),
             "{\"reference\":\"ord_1\",\"amount\":\"150000.50\",\"currency\":\"IDR\","
             "\"method\":\"card\",\"payment_token\":\"pm_card_visa\"}");
    KT_STREQ(req.method, "POST");
    KT_STREQ(req.content_type, "application/json");
    KT_STREQ(ks_buf_str(&req.url), "http://127.0.0.1:8091/sandbox/v1/charges");
    KT_STREQ(ks_buf_str(&req.headers), "Authorization: Bearer sbx_placeholder\nIdempotency-Key: idk_1\n");
    KT_STREQ(request(cmd(EX_OP_CHARGE, "VIRTUAL_ACCOUNT", VA, 1), &req, KS_OK),
             "{\"reference\":\"ord_1\",\"amount\":\"150000.50\",\"currency\":\"IDR\","
             "\"method\":\"virtual_account\",\"bank_code\":\"BNI\"}");
    KT_STREQ(request(cmd(EX_OP_REFUND, "CARD", NULL, 0), &req, KS_OK),
             "{\"charge\":\"sbch_1\",\"amount\":\"150000.50\",\"reference\":\"rf_1\"}");
    KT_STREQ(ks_buf_str(&req.url), "http://127.0.0.1:8091/sandbox/v1/refunds");
    KT_STREQ(request(cmd(EX_OP_PAYOUT, "BANK_TRANSFER", PAYOUT, 3), &req, KS_OK),
             "{\"reference\":\"po_1\",\"amount\":\"150000.50\",\"currency\":\"IDR\","
             "\"bank_code\":\"BCA\",\"account_number\":\"1234567890\",\"account_name\":\"Siti\"}");
    /* bad command data is refused, naming the field */
    request(cmd(EX_OP_CHARGE, "CARD", NULL, 0), &req, KS_EINVAL);
    request(cmd(EX_OP_PAYOUT, "BANK_TRANSFER", VA, 1), &req, KS_EINVAL);
    {
        struct ex_cmd c = cmd(EX_OP_REFUND, "CARD", NULL, 0);
        struct ks_err err = {0};
        c.charge_ref = "";
        KT_INTEQ(ex_adapter_sandbox.build(&CONF, &c, 0, NULL, &req, &err), KS_EINVAL);
        KT_STREQ(err.field, "charge_ref");
    }
    KT_CHECK(ex_adapter_sandbox.supports(EX_OP_CHARGE, "QRIS", "IDR"));
    KT_CHECK(!ex_adapter_sandbox.supports(EX_OP_PAYOUT, "CARD", "IDR"));
    KT_CHECK(!ex_adapter_sandbox.supports(EX_OP_CHARGE, "CARD", "XXX"));
    ex_req_release(&req);
}

static struct ex_result answer(enum ex_op op, long status, const char *body, int st)
{
    struct ex_cmd c = cmd(op, "CARD", CARD, 1);
    struct ex_result r;

    ex_result_clear(&r);
    (st ? ex_adapter_sandbox.parse_status : ex_adapter_sandbox.parse)(&CONF, &c, 0, status, body,
                                                                      strlen(body), &r);
    return r;
}

KT_TEST(test_answers)
{
    struct ex_result r;

    r = answer(EX_OP_CHARGE, 201, "{\"id\":\"sbch_9\",\"object\":\"charge\",\"reference\":\"ord_1\","
                                  "\"amount\":\"150000.50\",\"currency\":\"IDR\",\"method\":\"card\","
                                  "\"status\":\"succeeded\"}", 0);
    KT_INTEQ(r.verdict, EX_SUCCEEDED);
    KT_STREQ(r.psp_reference, "sbch_9");
    KT_INTEQ(r.amount_minor, 15000050);
    r = answer(EX_OP_CHARGE, 201, "{\"id\":\"sbch_8\",\"object\":\"charge\",\"status\":\"failed\","
                                  "\"failure_code\":\"card_declined\"}", 0);
    KT_INTEQ(r.verdict, EX_FAILED);
    KT_STREQ(r.failure_code, "card_declined");
    r = answer(EX_OP_CHARGE, 201, "{\"id\":\"sbch_7\",\"object\":\"charge\",\"status\":\"pending\","
                                  "\"next_action\":{\"type\":\"virtual_account\",\"bank_code\":"
                                  "\"BCA\",\"va_number\":\"8808123\",\"expires_at\":"
                                  "\"2026-01-02T00:00:00Z\"}}", 0);
    KT_INTEQ(r.verdict, EX_PENDING_CUSTOMER);
    KT_INTEQ(r.n_next_action, 3);
    KT_STREQ(r.next_action[0].name, "va_number");
    KT_STREQ(r.next_action[0].value, "8808123");
    KT_STREQ(r.next_action[2].name, "expires_at");
    r = answer(EX_OP_PAYOUT, 201, "{\"id\":\"sbpo_1\",\"object\":\"payout\",\"status\":\"pending\"}", 0);
    KT_INTEQ(r.verdict, EX_PENDING);
    r = answer(EX_OP_REFUND, 409, "{\"error\":{\"code\":\"refund_exceeds_charge\",\"field\":\"amount\","
                                  "\"message\":\"the refund is more than what is left\"}}", 0);
    KT_INTEQ(r.verdict, EX_FAILED);
    KT_STREQ(r.failure_code, "refund_exceeds_charge");
    KT_INTEQ(answer(EX_OP_CHARGE, 422, "{\"error\":{\"code\":\"idempotency_key_reused\"}}", 0).verdict,
             EX_UNKNOWN);
    /* 503 before the API ran: not processed; 500 or garbage: unknown */
    KT_INTEQ(answer(EX_OP_CHARGE, 503, "{\"error\":{\"code\":\"unavailable\"}}", 0).verdict, EX_RETRY);
    KT_INTEQ(answer(EX_OP_CHARGE, 500, "{}", 0).verdict, EX_UNKNOWN);
    KT_INTEQ(answer(EX_OP_CHARGE, 201, "{\"id\":", 0).verdict, EX_UNKNOWN);
}

KT_TEST(test_status)
{
    struct ex_cmd c = cmd(EX_OP_CHARGE, "CARD", CARD, 1);
    struct ex_req req;
    struct ex_result prev;
    struct ks_err err = {0};

    ex_req_init(&req);
    ex_result_clear(&prev);
    KT_INTEQ(ex_adapter_sandbox.build_status(&CONF, &c, 0, &prev, &req, &err), KS_OK);
    KT_STREQ(req.method, "GET");
    KT_STREQ(ks_buf_str(&req.url), "http://127.0.0.1:8091/sandbox/v1/charges?reference=ord_1");
    KT_CHECK(strstr(ks_buf_str(&req.headers), "Idempotency-Key") == NULL);
    ex_req_reset(&req);
    snprintf(prev.psp_reference, sizeof(prev.psp_reference), "sbch_9");
    KT_INTEQ(ex_adapter_sandbox.build_status(&CONF, &c, 0, &prev, &req, &err), KS_OK);
    KT_STREQ(ks_buf_str(&req.url), "http://127.0.0.1:8091/sandbox/v1/charges/sbch_9");
    KT_INTEQ(answer(EX_OP_CHARGE, 200, "{\"data\":[]}", 1).verdict, EX_ABSENT);
    KT_INTEQ(answer(EX_OP_CHARGE, 404, "{}", 1).verdict, EX_ABSENT);
    KT_INTEQ(answer(EX_OP_CHARGE, 503, "{}", 1).verdict, EX_UNKNOWN);
    KT_INTEQ(answer(EX_OP_CHARGE, 200, "{\"data\":[{\"id\":\"sbch_9\",\"status\":\"succeeded\","
                                       "\"amount\":\"1.00\",\"currency\":\"IDR\"}]}", 1).verdict,
             EX_SUCCEEDED);
    /* refunds and payouts have no lookup: the same POST with the same key */
    {
        struct ex_cmd rc = cmd(EX_OP_REFUND, "CARD", NULL, 0);
        ex_req_reset(&req);
        KT_INTEQ(ex_adapter_sandbox.build_status(&CONF, &rc, 0, &prev, &req, &err), KS_OK);
        KT_STREQ(req.method, "POST");
        KT_CHECK(strstr(ks_buf_str(&req.headers), "Idempotency-Key: idk_1\n") != NULL);
    }
    ex_req_release(&req);
}

KT_MAIN(test_requests, test_answers, test_status)
