/* adapter_midtrans.c - Midtrans Core API charges (bank_transfer VA, qris, gopay), status and
 * refunds, and Iris payouts, as https://docs.midtrans.com describes them: Core API
 * /reference/charge-api, /reference/get-transaction-status, /reference/refund-transaction,
 * status codes /reference/code-statuses, transaction statuses
 * /en/after-payment/status-cycle; Iris /reference/create-payouts and
 * /reference/get-payout-details. ADAPTERS.md has the tables.
 *
 * Core API: Basic auth with the server key as user name, JSON bodies, gross_amount in whole
 * rupiah, the order_id (Kasir's order id) unique at Midtrans: it is the idempotency of a
 * charge (a second charge is status 406) and the key of the status query. A refund carries
 * refund_key = the refund's idempotency key. Answers carry status_code, which mirrors an
 * HTTP status and is read first (Midtrans may answer HTTP 200 with an error status_code).
 * Iris: Basic auth with the creator key, X-Idempotency-Key, amounts as "100000.00". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "consumers/executor/adapter_util.h"
#include "lib/jsonw.h"
#include "lib/banned.h"

enum mkind { MK_NONE, MK_VA, MK_QRIS, MK_GOPAY, MK_REFUND, MK_PAYOUT };

static enum mkind kind_of(enum ex_op op, const char *method)
{
    if (op == EX_OP_CHARGE && strcmp(method, "VIRTUAL_ACCOUNT") == 0)
        return MK_VA;
    if (op == EX_OP_CHARGE && strcmp(method, "QRIS") == 0)
        return MK_QRIS;
    if (op == EX_OP_CHARGE && strcmp(method, "EWALLET") == 0)
        return MK_GOPAY;
    /* Midtrans refunds QRIS and GoPay through the API; bank transfers cannot be refunded */
    if (op == EX_OP_REFUND && (strcmp(method, "QRIS") == 0 || strcmp(method, "EWALLET") == 0))
        return MK_REFUND;
    if (op == EX_OP_PAYOUT && strcmp(method, "BANK_TRANSFER") == 0)
        return MK_PAYOUT;
    return MK_NONE;
}

static int supports(enum ex_op op, const char *method, const char *currency)
{
    return method && currency && strcmp(currency, "IDR") == 0 && kind_of(op, method) != MK_NONE;
}

/* --- requests ------------------------------------------------------------------------ */

static const char *const va_banks[] = {"bca", "bni", "bri", "permata", "cimb"};

/* Midtrans' bank codes are lower case (bca); Kasir's upper case (BCA). -1 when s does not
 * fit out. */
static int lower(const char *s, char *out, size_t cap)
{
    size_t n = strlen(s);

    if (n >= cap)
        return -1;
    for (size_t i = 0; i <= n; i++)
        out[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] - 'A' + 'a' : s[i]);
    return 0;
}

/* bank_code (BCA) -> Midtrans' bank (bca), into out; -1 when not a Core API VA bank */
static int va_bank(const char *code, char *out, size_t cap)
{
    if (!*code || lower(code, out, cap) != 0)
        return -1;
    for (size_t i = 0; i < sizeof(va_banks) / sizeof(va_banks[0]); i++)
        if (strcmp(out, va_banks[i]) == 0)
            return 0;
    return -1;
}

/* The order at Midtrans: Kasir's order id (a refund may name the charge's transaction_id
 * when the order id is missing). */
static const char *order_ref(const struct ex_cmd *cmd)
{
    return *cmd->order_id ? cmd->order_id : cmd->charge_ref;
}

static enum ks_code build_charge(const struct ex_conf *conf, const struct ex_cmd *cmd,
                                 enum mkind k, struct ex_req *req, struct ks_err *err)
{
    char bank[16];
    struct ks_jw w;
    int64_t whole;
    enum ks_code rc;

    if (!*cmd->order_id)
        return ks_err_set(err, KS_EINVAL, 0, "order_id", "is required");
    /* Midtrans takes order_id up to 50 characters */
    if (strlen(cmd->order_id) > 50)
        return ks_err_set(err, KS_EINVAL, 0, "order_id", "longer than the 50 characters Midtrans takes");
    if ((rc = ex_whole_units(cmd, &whole, err)) != KS_OK)
        return rc;
    if (k == MK_VA && va_bank(ex_cmd_detail(cmd, "bank_code"), bank, sizeof(bank)) != 0)
        return ks_err_set(err, KS_EINVAL, 0, "details.bank_code",
                          "must be one of BCA, BNI, BRI, PERMATA, CIMB for a Midtrans VA");
    if (k == MK_GOPAY && strcasecmp(ex_cmd_detail(cmd, "ewallet_channel"), "GOPAY") != 0)
        return ks_err_set(err, KS_EINVAL, 0, "details.ewallet_channel",
                          "midtrans runs the GOPAY e-wallet only");
    ks_jw_init(&w, NULL, 0);
    ks_jw_open(&w, NULL);
    ks_jw_str(&w, "payment_type", k == MK_VA ? "bank_transfer" : k == MK_QRIS ? "qris" : "gopay");
    ks_jw_open(&w, "transaction_details");
    ks_jw_str(&w, "order_id", cmd->order_id);
    ks_jw_int(&w, "gross_amount", whole);
    ks_jw_close(&w, '}');
    if (k == MK_VA) {
        ks_jw_open(&w, "bank_transfer");
        ks_jw_str(&w, "bank", bank);
        ks_jw_close(&w, '}');
    }
    ks_jw_close(&w, '}');
    ex_req_url(req, conf->base_url, "/v2/charge");
    /* notifications of this charge go to Kasir's URL instead of the dashboard's */
    rc = ex_req_post_json(req, conf->secret, "X-Override-Notification", conf->notify_url,
                          "notify_url", &w, err);
    ks_jw_free(&w);
    return rc;
}

static enum ks_code build_refund(const struct ex_conf *conf, const struct ex_cmd *cmd,
                                 struct ex_req *req, struct ks_err *err)
{
    const char *reason = ex_cmd_detail(cmd, "reason");
    struct ks_jw w;
    int64_t whole;
    enum ks_code rc;

    if (!*order_ref(cmd))
        return ks_err_set(err, KS_EINVAL, 0, "order_id", "is required");
    if (!*cmd->idem_key)
        return ks_err_set(err, KS_EINVAL, 0, "psp_idempotency_key", "is required");
    /* the reference: "alphabets, numbers, dash (-), and underscore (_)" */
    if (strspn(cmd->idem_key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") !=
        strlen(cmd->idem_key))
        return ks_err_set(err, KS_EINVAL, 0, "psp_idempotency_key",
                          "a Midtrans refund_key takes letters, digits, '-' and '_' only");
    if ((rc = ex_whole_units(cmd, &whole, err)) != KS_OK)
        return rc;
    ks_jw_init(&w, NULL, 0);
    ks_jw_open(&w, NULL);
    /* the same refund_key is the same refund: Midtrans answers the first one again */
    ks_jw_str(&w, "refund_key", cmd->idem_key);
    ks_jw_int(&w, "amount", whole);
    if (*reason)
        ks_jw_str(&w, "reason", reason);
    ks_jw_close(&w, '}');
    ex_req_url(req, conf->base_url, "/v2/");
    ex_req_url_escape(req, order_ref(cmd));
    ks_buf_adds(&req->url, "/refund");
    rc = ex_req_post_json(req, conf->secret, NULL, "", NULL, &w, err);
    ks_jw_free(&w);
    return rc;
}

static const char *iris_base(const struct ex_conf *conf)
{
    return *conf->payout_base_url ? conf->payout_base_url : conf->base_url;
}

static enum ks_code build_payout(const struct ex_conf *conf, const struct ex_cmd *cmd,
                                 struct ex_req *req, struct ks_err *err)
{
    const char *holder = ex_cmd_detail(cmd, "account_holder");
    const char *acct = ex_cmd_detail(cmd, "destination_account");
    const char *bank = ex_cmd_detail(cmd, "bank_code");
    char lbank[32], amount[40];
    struct ks_jw w;
    int64_t whole;
    enum ks_code rc;

    if (!*cmd->payout_id)
        return ks_err_set(err, KS_EINVAL, 0, "payout_id", "is required");
    if (!*cmd->idem_key)
        return ks_err_set(err, KS_EINVAL, 0, "psp_idempotency_key", "is required");
    if (!*conf->payout_secret)
        return ks_err_set(err, KS_ECONFIG, 0, "payout_secret",
                          "midtrans payouts need the Iris creator key and none is set");
    if ((rc = ex_whole_units(cmd, &whole, err)) != KS_OK)
        return rc;
    if (!*holder || !*acct || !*bank)
        return ks_err_set(err, KS_EINVAL, 0,
                          !*holder ? "details.account_holder"
                          : !*acct ? "details.destination_account"
                                   : "details.bank_code",
                          "is required for an Iris payout");
    /* Iris bank codes are lower case too (bca, bni, mandiri) */
    if (lower(bank, lbank, sizeof(lbank)) != 0)
        return ks_err_set(err, KS_EINVAL, 0, "details.bank_code", "too long");
    snprintf(amount, sizeof(amount), "%lld.00", (long long)whole);
    ks_jw_init(&w, NULL, 0);
    ks_jw_open(&w, NULL);
    ks_jw_open_array(&w, "payouts");
    ks_jw_open(&w, NULL);
    ks_jw_str(&w, "beneficiary_name", holder);
    ks_jw_str(&w, "beneficiary_account", acct);
    ks_jw_str(&w, "beneficiary_bank", lbank);
    ks_jw_str(&w, "amount", amount);
    /* the payout id: what a person (and recon) finds the payout by in the Iris dashboard */
    ks_jw_str(&w, "notes", cmd->payout_id);
    ks_jw_close(&w, '}');
    ks_jw_close(&w, ']');
    ks_jw_close(&w, '}');
    ex_req_url(req, iris_base(conf), "/api/v1/payouts");
    rc = ex_req_post_json(req, conf->payout_secret, "X-Idempotency-Key", cmd->idem_key,
                          "psp_idempotency_key", &w, err);
    ks_jw_free(&w);
    return rc;
}

static enum ks_code build_get_status(const struct ex_conf *conf, const struct ex_cmd *cmd,
                                     struct ex_req *req, struct ks_err *err)
{
    if (!*order_ref(cmd))
        return ks_err_set(err, KS_EINVAL, 0, "order_id", "is required");
    req->method = "GET";
    ex_req_url(req, conf->base_url, "/v2/");
    ex_req_url_escape(req, order_ref(cmd));
    ks_buf_adds(&req->url, "/status");
    ex_req_basic_auth(req, conf->secret);
    return KS_OK;
}

static enum ks_code build_create(const struct ex_conf *conf, const struct ex_cmd *cmd,
                                 enum mkind k, struct ex_req *req, struct ks_err *err)
{
    if (k == MK_REFUND)
        return build_refund(conf, cmd, req, err);
    if (k == MK_PAYOUT)
        return build_payout(conf, cmd, req, err);
    return build_charge(conf, cmd, k, req, err);
}

static enum ks_code build(const struct ex_conf *conf, const struct ex_cmd *cmd, int step,
                          const struct ex_result *prev, struct ex_req *req, struct ks_err *err)
{
    enum mkind k = kind_of(cmd->op, cmd->method);
    (void)prev;

    if (k == MK_NONE || strcmp(cmd->currency, "IDR") != 0)
        return ks_err_set(err, KS_EINVAL, 0, "method",
                          "midtrans cannot run this operation for %s in %s", cmd->method,
                          cmd->currency);
    if (k != MK_PAYOUT && !*conf->secret)
        return ks_err_set(err, KS_ECONFIG, 0, "secret", "the midtrans server key is not set");
    if (step == 0)
        return build_create(conf, cmd, k, req, err);
    /* step 1 follows a 406 (the order_id was charged before): ask its status */
    if (step == 1 && k != MK_REFUND && k != MK_PAYOUT)
        return build_get_status(conf, cmd, req, err);
    return ks_err_set(err, KS_EINVAL, 0, NULL, "midtrans has no step %d for this operation", step);
}

/* Charges: GET /v2/{order_id}/status. Refunds: the same, and when it cannot tell whether
 * this refund ran (no refunds list), step 1 sends the refund again with its refund_key,
 * which Midtrans answers with the first refund. Payouts: GET by reference_no, or without
 * one, the create again with the same X-Idempotency-Key, which Iris answers with the first
 * payout. */
static enum ks_code build_status(const struct ex_conf *conf, const struct ex_cmd *cmd, int step,
                                 const struct ex_result *prev, struct ex_req *req,
                                 struct ks_err *err)
{
    enum mkind k = kind_of(cmd->op, cmd->method);

    if (k == MK_NONE)
        return ks_err_set(err, KS_EINVAL, 0, "method", "midtrans cannot run this operation");
    if (k != MK_PAYOUT && !*conf->secret)
        return ks_err_set(err, KS_ECONFIG, 0, "secret", "the midtrans server key is not set");
    if (k == MK_PAYOUT && !*conf->payout_secret)
        return ks_err_set(err, KS_ECONFIG, 0, "payout_secret",
                          "midtrans payouts need the Iris creator key and none is set");
    if (k == MK_PAYOUT && step == 0) {
        if (!prev || !prev->psp_reference[0])
            return build_payout(conf, cmd, req, err);
        req->method = "GET";
        ex_req_url(req, iris_base(conf), "/api/v1/payouts/");
        ex_req_url_escape(req, prev->psp_reference);
        ex_req_basic_auth(req, conf->payout_secret);
        return KS_OK;
    }
    if (k != MK_PAYOUT && step == 0)
        return build_get_status(conf, cmd, req, err);
    if (k == MK_REFUND && step == 1)
        return build_refund(conf, cmd, req, err);
    return ks_err_set(err, KS_EINVAL, 0, NULL, "midtrans status has no step %d", step);
}

/* --- answers ------------------------------------------------------------------------- */

/* status_code (https://docs.midtrans.com/reference/code-statuses) when it is not
 * a 2xx success, and what it means for the operation. 406 and 404 depend on the context
 * and are read before this table. */
static const struct {
    int code;
    enum ex_verdict verdict;
    const char *kasir;
} codes[] = {
    {202, EX_FAILED, "declined"},
    {400, EX_FAILED, "invalid_request"},
    {401, EX_RETRY, "psp_auth"},
    {402, EX_FAILED, "method_not_enabled"},
    {403, EX_RETRY, "psp_auth"},
    {405, EX_FAILED, "invalid_request"},
    {407, EX_FAILED, "expired"},
    {408, EX_FAILED, "invalid_request"},
    {410, EX_RETRY, "psp_auth"},
    {411, EX_FAILED, "invalid_request"},
    {412, EX_FAILED, "refund_not_allowed"},
    {413, EX_FAILED, "invalid_request"},
    {414, EX_FAILED, "refund_exceeds_charge"},
    {429, EX_RETRY, "rate_limited"},
    {500, EX_UNKNOWN, "psp_error"},
    {501, EX_FAILED, "method_not_enabled"},
    {502, EX_UNKNOWN, "psp_error"},
    /* the bank or Midtrans is unavailable: the charge was not created */
    {503, EX_RETRY, "psp_unavailable"},
    {504, EX_UNKNOWN, "psp_error"},
    /* "unable to create the VA number, retry later" */
    {505, EX_RETRY, "psp_unavailable"},
};

/* Midtrans writes "2026-12-02 15:04:05" in GMT+7; next_action wants RFC 3339 UTC. 0, or -1
 * when t is not that form. */
static int utc_from_wib(const char *t, char *out, size_t cap)
{
    int y, mo, d, h, mi, s, n = 0;
    long long days;

    if (strlen(t) != 19 ||
        sscanf(t, "%4d-%2d-%2d %2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &s, &n) != 6 || n != 19 ||
        y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 ||
        mi > 59 || s < 0 || s > 60)
        return -1;
    /* days from the civil date (proleptic Gregorian), minus 7 hours, back to a date */
    {
        int yy = mo <= 2 ? y - 1 : y;
        long long era = (yy >= 0 ? yy : yy - 399) / 400;
        long long yoe = yy - era * 400;
        long long doy = (153LL * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
        long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        days = era * 146097 + doe - 719468;
    }
    h -= 7;
    if (h < 0) {
        h += 24;
        days--;
    }
    {
        long long z = days + 719468;
        long long era = (z >= 0 ? z : z - 146096) / 146097;
        long long doe = z - era * 146097;
        long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        long long mp = (5 * doy + 2) / 153;
        d = (int)(doy - (153 * mp + 2) / 5 + 1);
        mo = (int)(mp < 10 ? mp + 3 : mp - 9);
        y = (int)(yoe + era * 400 + (mo <= 2));
    }
    snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02dZ", y, mo, d, h, mi, s);
    return 0;
}

static int status_code_of(json_t *j, long http)
{
    const char *sc = ex_json_str(j, "status_code");
    char *end;
    long v;

    if (!*sc)
        return (int)http;
    v = strtol(sc, &end, 10);
    return *end || v < 100 || v > 599 ? (int)http : (int)v;
}

/* The message Midtrans gives, with the first validation message when there is one. */
static void fail_mt(struct ex_result *res, enum ex_verdict v, const char *kasir, json_t *j)
{
    char m[sizeof(res->failure_message)];
    const char *vm = json_string_value(json_array_get(json_object_get(j, "validation_messages"), 0));

    snprintf(m, sizeof(m), "%s%s%s", ex_json_str(j, "status_message"), vm ? ": " : "",
             vm ? vm : "");
    ex_result_fail(res, v, kasir, m);
}

/* The buyer's next step of a pending charge, from a charge answer or a status answer. */
static void next_action(json_t *j, struct ex_result *res)
{
    json_t *va = json_array_get(json_object_get(j, "va_numbers"), 0), *a;
    const char *type = ex_json_str(j, "payment_type");
    char exp[80], bank[16];
    size_t i;
    int bad = 0;

    if (strcmp(type, "bank_transfer") == 0) {
        const char *num = va ? ex_json_str(va, "va_number") : ex_json_str(j, "permata_va_number");
        const char *b = va ? ex_json_str(va, "bank") : "permata";
        size_t n = strlen(b) < sizeof(bank) - 1 ? strlen(b) : sizeof(bank) - 1;
        /* Kasir's bank codes are upper case (BCA), as the payment request had them */
        for (i = 0; i < n; i++)
            bank[i] = (char)(b[i] >= 'a' && b[i] <= 'z' ? b[i] - 'a' + 'A' : b[i]);
        bank[n] = '\0';
        bad |= !*num || ex_result_add_next(res, "va_number", num) ||
               ex_result_add_next(res, "bank_code", bank);
    } else {
        if (*ex_json_str(j, "qr_string"))
            bad |= ex_result_add_next(res, "qr_string", ex_json_str(j, "qr_string"));
        /* GoPay: the app deeplink; QRIS without a qr_string: the QR image */
        json_array_foreach(json_object_get(j, "actions"), i, a) {
            const char *name = ex_json_str(a, "name");
            if (strcmp(name, "deeplink-redirect") == 0 ||
                (strcmp(name, "generate-qr-code") == 0 && !*ex_json_str(j, "qr_string") &&
                 strcmp(type, "qris") == 0))
                bad |= ex_result_add_next(res, "redirect_url", ex_json_str(a, "url"));
        }
    }
    if (utc_from_wib(ex_json_str(j, "expiry_time"), exp, sizeof(exp)) == 0)
        bad |= ex_result_add_next(res, "expires_at", exp);
    /* the charge exists and waits for the buyer, but this answer does not say how to pay
     * (a status answer may leave the actions out): pending, the notification ends it */
    if (bad || res->n_next_action == 0 ||
        (strcmp(type, "bank_transfer") != 0 && res->n_next_action == 1 &&
         strcmp(res->next_action[0].name, "expires_at") == 0)) {
        res->n_next_action = 0;
        res->verdict = EX_PENDING;
    }
}

/* transaction_status of a charge (charge answer, status answer). */
static void charge_state(json_t *j, struct ex_result *res)
{
    const char *ts = ex_json_str(j, "transaction_status");
    const char *fraud = ex_json_str(j, "fraud_status");

    ex_result_ref(res, ex_json_str(j, "transaction_id"));
    res->amount_minor = ex_decimal_to_minor(ex_json_str(j, "gross_amount"), "IDR");
    if (strcmp(ts, "pending") == 0) {
        res->verdict = EX_PENDING_CUSTOMER;
        next_action(j, res);
    } else if (strcmp(ts, "settlement") == 0 ||
               (strcmp(ts, "capture") == 0 && strcmp(fraud, "challenge") != 0) ||
               /* refunded or charged back later: the charge itself took the money */
               strcmp(ts, "refund") == 0 || strcmp(ts, "partial_refund") == 0 ||
               strcmp(ts, "chargeback") == 0 || strcmp(ts, "partial_chargeback") == 0) {
        res->verdict = EX_SUCCEEDED;
    } else if (strcmp(ts, "capture") == 0 || strcmp(ts, "authorize") == 0) {
        res->verdict = EX_PENDING; /* a fraud challenge, decided later by notification */
    } else if (strcmp(ts, "deny") == 0) {
        fail_mt(res, EX_FAILED, "declined", j);
    } else if (strcmp(ts, "cancel") == 0) {
        fail_mt(res, EX_FAILED, "cancelled", j);
    } else if (strcmp(ts, "expire") == 0) {
        fail_mt(res, EX_FAILED, "expired", j);
    } else if (strcmp(ts, "failure") == 0) {
        fail_mt(res, EX_FAILED, "psp_failure", j);
    }
}

/* A refund answer: status_code 200 with refund_amount (POST /v2/{id}/refund). */
static void refund_state(json_t *j, struct ex_result *res)
{
    json_t *cb = json_object_get(j, "refund_chargeback_id");
    const char *ts = ex_json_str(j, "transaction_status");
    char id[40];

    if (strcmp(ts, "refund") != 0 && strcmp(ts, "partial_refund") != 0)
        return;
    if (json_is_integer(cb))
        snprintf(id, sizeof(id), "%lld", (long long)json_integer_value(cb));
    else
        snprintf(id, sizeof(id), "%.39s", json_is_string(cb) ? json_string_value(cb)
                                                             : ex_json_str(j, "refund_key"));
    ex_result_ref(res, id);
    res->amount_minor = ex_decimal_to_minor(ex_json_str(j, "refund_amount"), "IDR");
    res->verdict = EX_SUCCEEDED;
}

/* A status answer for a refund: the refunds list names each refund_key. Without a list
 * (or a transaction not refunded at all) the answer decides only what it can. */
static void refund_in_status(const struct ex_cmd *cmd, json_t *j, struct ex_result *res)
{
    const char *ts = ex_json_str(j, "transaction_status");
    json_t *list = json_object_get(j, "refunds"), *r;
    size_t i;

    json_array_foreach(list, i, r) {
        if (strcmp(ex_json_str(r, "refund_key"), cmd->idem_key) == 0) {
            json_t *cb = json_object_get(r, "refund_chargeback_id");
            char id[40];
            snprintf(id, sizeof(id), "%lld", (long long)json_integer_value(cb));
            ex_result_ref(res, json_is_integer(cb) ? id : cmd->idem_key);
            res->amount_minor = ex_decimal_to_minor(ex_json_str(r, "refund_amount"), "IDR");
            res->verdict = EX_SUCCEEDED;
            return;
        }
    }
    if (strcmp(ts, "refund") != 0 && strcmp(ts, "partial_refund") != 0)
        res->verdict = EX_ABSENT; /* never refunded */
    else if (json_is_array(list))
        res->verdict = EX_ABSENT; /* refunded, but not by this refund_key */
    else
        res->verdict = EX_NEXT; /* refunded, by whom it does not say: ask with the key */
}

/* Core API answers. mode: 0 the operation's own answer, 1 a lookup after a 406 (step 1),
 * 2 a status query. */
static void parse_core(const struct ex_cmd *cmd, enum mkind k, int mode, long http,
                       const char *body, size_t len, struct ex_result *res)
{
    json_t *j = ex_json_load(body, len);
    int sc;

    res->verdict = EX_UNKNOWN;
    if (!json_is_object(j)) {
        if (http == 429 || http == 503)
            ex_result_fail(res, EX_RETRY, http == 429 ? "rate_limited" : "psp_unavailable", "");
        goto out;
    }
    sc = status_code_of(j, http);
    if (sc == 404 && mode == 2) {
        res->verdict = EX_ABSENT;
    } else if (sc == 406 && mode == 0 && k != MK_REFUND) {
        /* this order_id was charged before (an earlier attempt ran): ask its status */
        fail_mt(res, EX_NEXT, "", j);
    } else if (sc == 200 || sc == 201 || (sc == 202 && *ex_json_str(j, "transaction_status"))) {
        if (k == MK_REFUND && mode == 2)
            refund_in_status(cmd, j, res);
        else if (k == MK_REFUND)
            refund_state(j, res);
        else
            charge_state(j, res);
        if (k != MK_REFUND && mode != 0 && res->verdict != EX_UNKNOWN &&
            res->amount_minor != cmd->amount_minor)
            ex_result_fail(res, EX_UNKNOWN, "reference_conflict",
                           "the PSP holds this order_id with another amount");
    } else {
        for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
            if (codes[i].code == sc) {
                fail_mt(res, codes[i].verdict, codes[i].kasir, j);
                goto out;
            }
        if (sc >= 500)
            fail_mt(res, EX_UNKNOWN, "psp_error", j);
        else if (sc >= 400)
            fail_mt(res, EX_FAILED, "psp_rejected", j);
    }
out:
    json_decref(j);
}

/* Iris payout statuses (get-payout-details): queued, approved and processed wait for the
 * bank; completed paid; failed and rejected did not. */
static void iris_state(json_t *p, struct ex_result *res)
{
    const char *st = ex_json_str(p, "status");

    if (*ex_json_str(p, "reference_no"))
        ex_result_ref(res, ex_json_str(p, "reference_no"));
    if (*ex_json_str(p, "amount"))
        res->amount_minor = ex_decimal_to_minor(ex_json_str(p, "amount"), "IDR");
    if (strcmp(st, "queued") == 0 || strcmp(st, "approved") == 0 ||
        strcmp(st, "processed") == 0)
        res->verdict = EX_PENDING;
    else if (strcmp(st, "completed") == 0)
        res->verdict = EX_SUCCEEDED;
    else if (strcmp(st, "failed") == 0 || strcmp(st, "rejected") == 0)
        ex_result_fail(res, EX_FAILED, strcmp(st, "failed") == 0 ? "transfer_error" : "rejected",
                       *ex_json_str(p, "error_message") ? ex_json_str(p, "error_message") : st);
}

static void parse_iris(int in_status, long http, const char *body, size_t len,
                       struct ex_result *res)
{
    json_t *j = ex_json_load(body, len), *errs;
    char m[sizeof(res->failure_message)];

    res->verdict = EX_UNKNOWN;
    if (http >= 200 && http < 300 && json_is_object(j)) {
        json_t *list = json_object_get(j, "payouts");
        /* create answers {"payouts":[...]} (one payout sent); get answers the payout */
        iris_state(json_is_array(list) && json_array_size(list) == 1 ? json_array_get(list, 0)
                                                                      : j,
                   res);
        goto out;
    }
    if (http == 404 && in_status) {
        res->verdict = EX_ABSENT;
        goto out;
    }
    errs = json_object_get(j, "errors");
    {
        /* errors is a list, or an object of lists per payout index */
        const char *first = json_string_value(json_array_get(errs, 0));
        if (!first && json_is_object(errs)) {
            const char *key;
            json_t *v;
            json_object_foreach(errs, key, v) {
                first = json_string_value(json_is_array(v) ? json_array_get(v, 0) : v);
                if (first)
                    break;
            }
        }
        snprintf(m, sizeof(m), "%s%s%s", ex_json_str(j, "error_message"), first ? ": " : "",
                 first ? first : "");
    }
    if (http == 409)
        /* the key was used with another body: a payout may exist under it */
        ex_result_fail(res, EX_UNKNOWN, "idempotency_conflict", m);
    else if (http == 401 || http == 403)
        ex_result_fail(res, EX_RETRY, "psp_auth", m);
    else if (http == 429 || http == 503)
        ex_result_fail(res, EX_RETRY, http == 429 ? "rate_limited" : "psp_unavailable", m);
    else if (http >= 400 && http < 500 && json_is_object(j))
        ex_result_fail(res, EX_FAILED, "invalid_request", m);
    else if (http >= 500)
        ex_result_fail(res, EX_UNKNOWN, "psp_error", m);
out:
    json_decref(j);
}

static void parse(const struct ex_conf *conf, const struct ex_cmd *cmd, int step, long http,
                  const char *body, size_t len, struct ex_result *res)
{
    enum mkind k = kind_of(cmd->op, cmd->method);
    (void)conf;

    if (k == MK_PAYOUT)
        parse_iris(0, http, body, len, res);
    else
        parse_core(cmd, k, step > 0, http, body, len, res);
}

static void parse_status(const struct ex_conf *conf, const struct ex_cmd *cmd, int step,
                         long http, const char *body, size_t len, struct ex_result *res)
{
    enum mkind k = kind_of(cmd->op, cmd->method);
    (void)conf;

    if (k == MK_PAYOUT)
        parse_iris(1, http, body, len, res);
    else if (k == MK_REFUND && step == 1)
        parse_core(cmd, k, 0, http, body, len, res); /* the refund sent again */
    else
        parse_core(cmd, k, 2, http, body, len, res);
}

const struct ex_adapter ex_adapter_midtrans = {
    .name = "midtrans",
    .supports = supports,
    .build = build,
    .parse = parse,
    .build_status = build_status,
    .parse_status = parse_status,
};
