/* adapter_xendit.c - Xendit: fixed virtual accounts and QR codes (v1) for charges,
 * disbursements for payouts (https://archive.developers.xendit.co/api-reference/ :
 * "Virtual Accounts", "QR Codes", "Disbursements"; errors
 * https://docs.xendit.co/id/xendisburse/disbursement-errors). ADAPTERS.md has the tables.
 *
 * Basic auth with the secret key as user name, JSON bodies, amounts in whole rupiah,
 * X-IDEMPOTENCY-KEY = the command's key, external_id = Kasir's id (the order for charges,
 * the payout for payouts), errors {"error_code","message"}. Refunds are not run here:
 * neither VAs nor v1 QR codes have a refund API. */
#include <stdio.h>
#include <string.h>

#include "consumers/executor/adapter_util.h"
#include "lib/jsonw.h"
#include "lib/banned.h"

enum xkind { XK_NONE, XK_VA, XK_QR, XK_DISB };

static enum xkind kind_of(enum ex_op op, const char *method)
{
    if (op == EX_OP_CHARGE && strcmp(method, "VIRTUAL_ACCOUNT") == 0)
        return XK_VA;
    if (op == EX_OP_CHARGE && strcmp(method, "QRIS") == 0)
        return XK_QR;
    if (op == EX_OP_PAYOUT && strcmp(method, "BANK_TRANSFER") == 0)
        return XK_DISB;
    return XK_NONE;
}

static int supports(enum ex_op op, const char *method, const char *currency)
{
    return method && currency && strcmp(currency, "IDR") == 0 && kind_of(op, method) != XK_NONE;
}

/* --- requests ------------------------------------------------------------------------ */

static const char *external_id(const struct ex_cmd *cmd, enum xkind k)
{
    return k == XK_DISB ? cmd->payout_id : cmd->order_id;
}

/* An upper-case bank code of letters, digits and '_' (BCA, SAHABAT_SAMPOERNA); which banks
 * the account has enabled is Xendit's to say (BANK_NOT_SUPPORTED_ERROR). */
static enum ks_code check_bank(const char *bank, struct ks_err *err)
{
    if (!*bank)
        return ks_err_set(err, KS_EINVAL, 0, "details.bank_code", "is required");
    if (strlen(bank) > 32 || strspn(bank, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != strlen(bank))
        return ks_err_set(err, KS_EINVAL, 0, "details.bank_code",
                          "must be an upper-case Xendit bank code such as BCA");
    return KS_OK;
}

/* The create request of the operation: the same bytes on every attempt, so the PSP's
 * idempotency record sees the same request. */
static enum ks_code build_create(const struct ex_conf *conf, const struct ex_cmd *cmd,
                                 enum xkind k, struct ex_req *req, struct ks_err *err)
{
    const char *ext = external_id(cmd, k), *bank = ex_cmd_detail(cmd, "bank_code");
    struct ks_jw w;
    int64_t whole;
    enum ks_code rc;

    if (!*ext)
        return ks_err_set(err, KS_EINVAL, 0, k == XK_DISB ? "payout_id" : "order_id",
                          "is required");
    if (!*cmd->idem_key)
        return ks_err_set(err, KS_EINVAL, 0, "psp_idempotency_key", "is required");
    if ((rc = ex_whole_units(cmd, &whole, err)) != KS_OK)
        return rc;
    ks_jw_init(&w, NULL, 0);
    ks_jw_open(&w, NULL);
    ks_jw_str(&w, "external_id", ext);
    if (k == XK_VA) {
        const char *name = ex_cmd_detail(cmd, "customer_name");
        const char *exp = ex_cmd_detail(cmd, "expires_at");
        if ((rc = check_bank(bank, err)) != KS_OK)
            goto out;
        ex_req_url(req, conf->base_url, "/callback_virtual_accounts");
        ks_jw_str(&w, "bank_code", bank);
        /* Xendit shows this name to the payer; commands carry no buyer name today */
        ks_jw_str(&w, "name", *name ? name : "Kasir Customer");
        /* one order, one payment of exactly its amount */
        ks_jw_int(&w, "expected_amount", whole);
        ks_jw_json(&w, "is_closed", "true");
        ks_jw_json(&w, "is_single_use", "true");
        if (*exp)
            ks_jw_str(&w, "expiration_date", exp);
    } else if (k == XK_QR) {
        if (!*conf->notify_url) {
            rc = ks_err_set(err, KS_ECONFIG, 0, "notify_url",
                            "xendit QR codes need a callback URL and none is set");
            goto out;
        }
        ex_req_url(req, conf->base_url, "/qr_codes");
        ks_jw_str(&w, "type", "DYNAMIC");
        ks_jw_str(&w, "callback_url", conf->notify_url);
        ks_jw_int(&w, "amount", whole);
    } else {
        const char *holder = ex_cmd_detail(cmd, "account_holder");
        const char *acct = ex_cmd_detail(cmd, "destination_account");
        const char *desc = ex_cmd_detail(cmd, "description");
        if ((rc = check_bank(bank, err)) != KS_OK)
            goto out;
        if (!*holder || !*acct) {
            rc = ks_err_set(err, KS_EINVAL, 0,
                            !*holder ? "details.account_holder" : "details.destination_account",
                            "is required for a Xendit disbursement");
            goto out;
        }
        ex_req_url(req, conf->base_url, "/disbursements");
        ks_jw_int(&w, "amount", whole);
        ks_jw_str(&w, "bank_code", bank);
        ks_jw_str(&w, "account_holder_name", holder);
        ks_jw_str(&w, "account_number", acct);
        /* required by Xendit; the payout id when the partner gave no text */
        if (*desc) {
            ks_jw_str(&w, "description", desc);
        } else {
            char d[96];
            snprintf(d, sizeof(d), "Payout %s", ext);
            ks_jw_str(&w, "description", d);
        }
    }
    ks_jw_close(&w, '}');
    rc = ex_req_post_json(req, conf->secret, "X-IDEMPOTENCY-KEY", cmd->idem_key,
                          "psp_idempotency_key", &w, err);
out:
    ks_jw_free(&w);
    return rc;
}

/* Where the operation can be found by Kasir's id (QR codes, disbursements). */
static enum ks_code build_lookup(const struct ex_conf *conf, const struct ex_cmd *cmd,
                                 enum xkind k, struct ex_req *req, struct ks_err *err)
{
    const char *ext = external_id(cmd, k);

    if (!*ext)
        return ks_err_set(err, KS_EINVAL, 0, k == XK_DISB ? "payout_id" : "order_id",
                          "is required");
    ex_req_url(req, conf->base_url, k == XK_QR ? "/qr_codes/" : "/disbursements?external_id=");
    ex_req_url_escape(req, ext);
    req->method = "GET";
    ex_req_basic_auth(req, conf->secret);
    return req->url.oom || req->headers.oom
               ? ks_err_set(err, KS_ENOMEM, 1, NULL, "could not build the request")
               : KS_OK;
}

static enum ks_code build(const struct ex_conf *conf, const struct ex_cmd *cmd, int step,
                          const struct ex_result *prev, struct ex_req *req, struct ks_err *err)
{
    enum xkind k = kind_of(cmd->op, cmd->method);
    (void)prev;

    if (k == XK_NONE || strcmp(cmd->currency, "IDR") != 0)
        return ks_err_set(err, KS_EINVAL, 0, "method",
                          "xendit cannot run this operation for %s in %s", cmd->method,
                          cmd->currency);
    if (!*conf->secret)
        return ks_err_set(err, KS_ECONFIG, 0, "secret", "the xendit secret key is not set");
    if (step == 0)
        return build_create(conf, cmd, k, req, err);
    /* step 1 follows a duplicate answer: find the first request's result */
    if (step == 1 && k != XK_VA)
        return build_lookup(conf, cmd, k, req, err);
    return ks_err_set(err, KS_EINVAL, 0, NULL, "xendit has no step %d for this operation", step);
}

/* A VA can only be read by Xendit's id. Without it (the create's answer was lost) the
 * create is sent again with the same key and body: Xendit answers the first VA again
 * (ADAPTERS.md). QR codes and disbursements are found by external_id. */
static enum ks_code build_status(const struct ex_conf *conf, const struct ex_cmd *cmd, int step,
                                 const struct ex_result *prev, struct ex_req *req,
                                 struct ks_err *err)
{
    enum xkind k = kind_of(cmd->op, cmd->method);

    if (k == XK_NONE)
        return ks_err_set(err, KS_EINVAL, 0, "method", "xendit cannot run this operation");
    if (!*conf->secret)
        return ks_err_set(err, KS_ECONFIG, 0, "secret", "the xendit secret key is not set");
    if (step != 0)
        return ks_err_set(err, KS_EINVAL, 0, NULL, "xendit status has one step");
    if (k != XK_VA)
        return build_lookup(conf, cmd, k, req, err);
    if (!prev || !prev->psp_reference[0])
        return build_create(conf, cmd, k, req, err);
    ex_req_url(req, conf->base_url, "/callback_virtual_accounts/");
    ex_req_url_escape(req, prev->psp_reference);
    req->method = "GET";
    ex_req_basic_auth(req, conf->secret);
    return KS_OK;
}

/* --- answers ------------------------------------------------------------------------- */

/* Xendit's error codes (API reference "Errors" of each API; disbursement errors page) and
 * what they mean for the operation. */
static const struct {
    const char *code;
    enum ex_verdict verdict;
    const char *kasir;
} errors[] = {
    {"API_VALIDATION_ERROR", EX_FAILED, "invalid_request"},
    {"INVALID_JSON_FORMAT", EX_FAILED, "invalid_request"},
    {"EXPIRATION_DATE_INVALID_ERROR", EX_FAILED, "invalid_request"},
    {"BANK_NOT_SUPPORTED_ERROR", EX_FAILED, "bank_not_supported"},
    {"BANK_CODE_NOT_SUPPORTED_ERROR", EX_FAILED, "bank_not_supported"},
    {"VIRTUAL_ACCOUNT_NUMBER_OUTSIDE_RANGE", EX_FAILED, "invalid_request"},
    {"DUPLICATE_CALLBACK_VIRTUAL_ACCOUNT_ERROR", EX_FAILED, "duplicate_reference"},
    {"MINIMUM_EXPECTED_AMOUNT_ERROR", EX_FAILED, "amount_out_of_range"},
    {"MAXIMUM_EXPECTED_AMOUNT_ERROR", EX_FAILED, "amount_out_of_range"},
    {"RECIPIENT_AMOUNT_ERROR", EX_FAILED, "amount_out_of_range"},
    {"MAXIMUM_TRANSFER_LIMIT_ERROR", EX_FAILED, "amount_out_of_range"},
    {"RECIPIENT_ACCOUNT_NUMBER_ERROR", EX_FAILED, "invalid_destination"},
    {"INVALID_DESTINATION", EX_FAILED, "invalid_destination"},
    /* Kasir's float at Xendit, not the seller's fault: try again later, DLQ at the end */
    {"INSUFFICIENT_BALANCE", EX_RETRY, "insufficient_balance"},
    /* our credentials: nothing ran, and failing the buyer's order would be wrong */
    {"INVALID_API_KEY", EX_RETRY, "psp_auth"},
    {"REQUEST_FORBIDDEN_ERROR", EX_RETRY, "psp_auth"},
    {"RATE_LIMIT_EXCEEDED", EX_RETRY, "rate_limited"},
    {"SERVER_ERROR", EX_UNKNOWN, "psp_error"},
};

/* A disbursement's failure_code (disbursement errors page) -> Kasir's code. */
static const struct {
    const char *code, *kasir;
} disb_failures[] = {
    {"INSUFFICIENT_BALANCE", "insufficient_balance"},
    {"INVALID_DESTINATION", "invalid_destination"},
    {"REJECTED_BY_BANK", "rejected_by_bank"},
    {"UNKNOWN_BANK_NETWORK_ERROR", "bank_network_error"},
    {"TEMPORARY_BANK_NETWORK_ERROR", "bank_network_error"},
    {"SWITCHING_NETWORK_ERROR", "bank_network_error"},
    {"TRANSFER_ERROR", "transfer_error"},
    {"TEMPORARY_TRANSFER_ERROR", "transfer_error"},
};

static void fail_msg(struct ex_result *res, enum ex_verdict v, const char *kasir,
                     const char *xcode, const char *msg)
{
    char m[sizeof(res->failure_message)];
    snprintf(m, sizeof(m), "%s%s%s", xcode, *xcode && *msg ? ": " : "", msg);
    ex_result_fail(res, v, kasir, m);
}

/* An answer that is not a 2xx. in_status: a status query, where "not found" is ABSENT.
 * A duplicate of a QR code or disbursement means the first request ran: EX_NEXT, and
 * step 1 finds it by external_id. */
static void parse_error(enum xkind k, int lookup, int in_status, long http, json_t *j,
                        struct ex_result *res)
{
    const char *code = ex_json_str(j, "error_code"), *msg = ex_json_str(j, "message");

    if (http == 404 && (in_status || lookup)) {
        /* after a duplicate answer "not found" contradicts the PSP: an operator looks */
        res->verdict = in_status ? EX_ABSENT : EX_UNKNOWN;
        return;
    }
    if (strcmp(code, "DUPLICATE_TRANSACTION_ERROR") == 0 || strcmp(code, "DUPLICATE_ERROR") == 0) {
        /* the same key (or a QR's external_id) was used: the first request ran. A VA cannot
         * be found without its id, so it stays unknown (an operator looks) */
        if (k == XK_VA || in_status)
            fail_msg(res, EX_UNKNOWN, "idempotency_conflict", code, msg);
        else
            fail_msg(res, EX_NEXT, "", code, msg);
        return;
    }
    for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++)
        if (strcmp(code, errors[i].code) == 0) {
            fail_msg(res, errors[i].verdict, errors[i].kasir, code, msg);
            return;
        }
    if (http == 429 || http == 503)
        fail_msg(res, EX_RETRY, http == 429 ? "rate_limited" : "psp_unavailable", code, msg);
    else if (http >= 500 || !j)
        fail_msg(res, EX_UNKNOWN, "psp_error", code, msg);
    else if (http >= 400)
        fail_msg(res, EX_FAILED, "psp_rejected", code, msg);
    else
        res->verdict = EX_UNKNOWN;
}

static void va_answer(json_t *j, const char *currency, struct ex_result *res)
{
    const char *st = ex_json_str(j, "status");

    ex_result_ref(res, ex_json_str(j, "id"));
    res->amount_minor = ex_units_to_minor(json_integer_value(json_object_get(j, "expected_amount")),
                                          currency);
    if (strcmp(st, "PENDING") == 0 || strcmp(st, "ACTIVE") == 0) {
        res->verdict = EX_PENDING_CUSTOMER;
        if (ex_result_add_next(res, "va_number", ex_json_str(j, "account_number")) ||
            ex_result_add_next(res, "bank_code", ex_json_str(j, "bank_code")) ||
            (*ex_json_str(j, "expiration_date") &&
             ex_result_add_next(res, "expires_at", ex_json_str(j, "expiration_date"))) ||
            !*ex_json_str(j, "account_number"))
            res->verdict = EX_UNKNOWN;
    } else if (strcmp(st, "INACTIVE") == 0) {
        /* paid (single use) or expired: the VA callback tells which */
        res->verdict = EX_PENDING;
    } else if (strcmp(st, "FAILED") == 0) {
        ex_result_fail(res, EX_FAILED, "va_creation_failed", "the virtual account was not created");
    }
}

static void qr_answer(json_t *j, const char *currency, struct ex_result *res)
{
    const char *st = ex_json_str(j, "status");

    ex_result_ref(res, ex_json_str(j, "id"));
    res->amount_minor = ex_units_to_minor(json_integer_value(json_object_get(j, "amount")), currency);
    if (strcmp(st, "ACTIVE") == 0 && *ex_json_str(j, "qr_string")) {
        res->verdict = EX_PENDING_CUSTOMER;
        if (ex_result_add_next(res, "qr_string", ex_json_str(j, "qr_string")))
            res->verdict = EX_UNKNOWN;
    } else if (strcmp(st, "INACTIVE") == 0) {
        /* a DYNAMIC code turns inactive once paid: the qr.payment callback tells */
        res->verdict = EX_PENDING;
    }
}

static void disb_answer(json_t *j, const char *currency, struct ex_result *res)
{
    const char *st = ex_json_str(j, "status"), *fc = ex_json_str(j, "failure_code");

    ex_result_ref(res, ex_json_str(j, "id"));
    res->amount_minor = ex_units_to_minor(json_integer_value(json_object_get(j, "amount")), currency);
    if (strcmp(st, "PENDING") == 0) {
        res->verdict = EX_PENDING;
    } else if (strcmp(st, "COMPLETED") == 0) {
        res->verdict = EX_SUCCEEDED;
    } else if (strcmp(st, "FAILED") == 0) {
        const char *kasir = "transfer_error";
        for (size_t i = 0; i < sizeof(disb_failures) / sizeof(disb_failures[0]); i++)
            if (strcmp(fc, disb_failures[i].code) == 0)
                kasir = disb_failures[i].kasir;
        fail_msg(res, EX_FAILED, kasir, fc, ex_json_str(j, "failure_message"));
    }
}

/* GET /disbursements?external_id= answers a list: a completed one wins, then a pending
 * one; every one failed is the failure. An empty list is no disbursement. */
static void disb_list(json_t *j, const char *currency, int in_status, struct ex_result *res)
{
    json_t *pick = NULL, *v;
    size_t i;
    int rank = 0;

    json_array_foreach(j, i, v) {
        const char *st = ex_json_str(v, "status");
        int r = strcmp(st, "COMPLETED") == 0 ? 3 : strcmp(st, "PENDING") == 0 ? 2 : 1;
        if (r > rank) {
            rank = r;
            pick = v;
        }
    }
    if (pick)
        disb_answer(pick, currency, res);
    else
        res->verdict = in_status ? EX_ABSENT : EX_UNKNOWN;
}

/* A found operation (by external_id) must be the one Kasir asked for. */
static void check_amount(const struct ex_cmd *cmd, struct ex_result *res)
{
    if (res->verdict != EX_UNKNOWN && res->verdict != EX_ABSENT &&
        res->amount_minor != cmd->amount_minor)
        ex_result_fail(res, EX_UNKNOWN, "reference_conflict",
                       "the PSP holds this reference with another amount");
}

static void parse_any(const struct ex_cmd *cmd, enum xkind k, int lookup, int in_status,
                      long http, const char *body, size_t len, struct ex_result *res)
{
    json_t *j = ex_json_load(body, len);

    res->verdict = EX_UNKNOWN;
    if (http < 200 || http >= 300) {
        parse_error(k, lookup, in_status, http, json_is_object(j) ? j : NULL, res);
    } else if (k == XK_DISB && lookup && json_is_array(j)) {
        disb_list(j, cmd->currency, in_status, res);
        check_amount(cmd, res);
    } else if (json_is_object(j)) {
        if (k == XK_VA)
            va_answer(j, cmd->currency, res);
        else if (k == XK_QR)
            qr_answer(j, cmd->currency, res);
        else if (!lookup)
            disb_answer(j, cmd->currency, res);
        if (lookup)
            check_amount(cmd, res);
    }
    json_decref(j);
}

static void parse(const struct ex_conf *conf, const struct ex_cmd *cmd, int step, long http,
                  const char *body, size_t len, struct ex_result *res)
{
    (void)conf;
    parse_any(cmd, kind_of(cmd->op, cmd->method), step > 0, 0, http, body, len, res);
}

static void parse_status(const struct ex_conf *conf, const struct ex_cmd *cmd, int step,
                         long http, const char *body, size_t len, struct ex_result *res)
{
    enum xkind k = kind_of(cmd->op, cmd->method);
    (void)conf;
    (void)step;
    parse_any(cmd, k, k != XK_VA, 1, http, body, len, res);
}

const struct ex_adapter ex_adapter_xendit = {
    .name = "xendit",
    .supports = supports,
    .build = build,
    .parse = parse,
    .build_status = build_status,
    .parse_status = parse_status,
};
