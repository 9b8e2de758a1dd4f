/* adapter_sandbox.c - kasir-psp-sandbox's own API (deploy/psp-sandbox/native.c, README
 * "its own API"): JSON bodies with decimal-string amounts, Bearer auth, an Idempotency-Key
 * header as the IETF draft has it (same key and body: the saved answer again).
 *
 *   charge   POST /sandbox/v1/charges  {reference: order_id, amount, currency, method, ...}
 *   refund   POST /sandbox/v1/refunds  {charge, amount, reference: refund_id}
 *   payout   POST /sandbox/v1/payouts  {reference: payout_id, amount, currency, bank_code,
 *                                       account_number, account_name}
 *   status   charge: GET /sandbox/v1/charges/{id}, or ?reference= when no id is known;
 *            refund and payout have no lookup by reference, so their status is the same
 *            POST with the same key: the sandbox replays the saved answer of a call that
 *            ran, and runs one that never did (which the key makes safe). */
#include <stdio.h>
#include <string.h>
#include <jansson.h>

#include "consumers/executor/adapter.h"
#include "consumers/executor/adapter_util.h"
#include "lib/money.h"
#include "lib/banned.h"

static const char *const METHODS[][2] = {
    {"CARD", "card"}, {"VIRTUAL_ACCOUNT", "virtual_account"}, {"QRIS", "qris"},
    {"EWALLET", "ewallet"}, {"BANK_TRANSFER", "bank_transfer"},
};

static const char *method_name(const char *method)
{
    for (size_t i = 0; i < sizeof(METHODS) / sizeof(METHODS[0]); i++)
        if (strcmp(METHODS[i][0], method) == 0)
            return METHODS[i][1];
    return NULL;
}

static int supports(enum ex_op op, const char *method, const char *currency)
{
    if (ks_money_exponent(currency) < 0)
        return 0;
    if (op == EX_OP_PAYOUT)
        return strcmp(method, "BANK_TRANSFER") == 0 || strcmp(method, "EWALLET") == 0;
    return method_name(method) != NULL;
}

static void headers(const struct ex_conf *conf, const struct ex_cmd *cmd, struct ex_req *req,
                    int idem)
{
    ks_buf_printf(&req->headers, "Authorization: Bearer %s\n", conf->secret);
    if (idem)
        ks_buf_printf(&req->headers, "Idempotency-Key: %s\n", cmd->idem_key);
}

static enum ks_code build(const struct ex_conf *conf, const struct ex_cmd *cmd, int step,
                          const struct ex_result *prev, struct ex_req *req, struct ks_err *err)
{
    struct ks_money m = {cmd->amount_minor, ""};
    char amount[40];
    struct ks_jw w;
    const char *path = NULL;
    enum ks_code rc = KS_OK;

    (void)prev;
    if (step != 0)
        return ks_err_set(err, KS_EINVAL, 0, NULL, "sandbox operations have one step");
    if (cmd->amount_minor <= 0)
        return ks_err_set(err, KS_EINVAL, 0, "amount_minor", "amount must be positive");
    if (ks_money_exponent(cmd->currency) < 0)
        return ks_err_set(err, KS_EINVAL, 0, "currency", "unknown currency");
    snprintf(m.currency, sizeof(m.currency), "%s", cmd->currency);
    ks_money_format(&m, amount, sizeof(amount));
    ks_jw_init(&w, NULL, 0);
    ks_jw_open(&w, NULL);
    switch (cmd->op) {
    case EX_OP_CHARGE: {
        const char *method = method_name(cmd->method);
        const char *tok = ex_cmd_detail(cmd, "payment_token");
        const char *bank = ex_cmd_detail(cmd, "bank_code");
        const char *wallet = ex_cmd_detail(cmd, "ewallet_channel");
        if (!method) {
            rc = ks_err_set(err, KS_EINVAL, 0, "method", "the sandbox has no method %s",
                            cmd->method);
            goto out;
        }
        if (strcmp(method, "card") == 0 && !*tok) {
            rc = ks_err_set(err, KS_EINVAL, 0, "details.payment_token",
                            "a card charge needs a payment_token");
            goto out;
        }
        ks_jw_str(&w, "reference", cmd->order_id);
        ks_jw_str(&w, "amount", amount);
        ks_jw_str(&w, "currency", cmd->currency);
        ks_jw_str(&w, "method", method);
        if (*tok)
            ks_jw_str(&w, "payment_token", tok);
        if (*bank)
            ks_jw_str(&w, "bank_code", bank);
        if (*wallet)
            ks_jw_str(&w, "ewallet_channel", wallet);
        path = "/sandbox/v1/charges";
        break;
    }
    case EX_OP_REFUND:
        if (!*cmd->charge_ref) {
            rc = ks_err_set(err, KS_EINVAL, 0, "charge_ref",
                            "a refund needs the PSP reference of the charge");
            goto out;
        }
        ks_jw_str(&w, "charge", cmd->charge_ref);
        ks_jw_str(&w, "amount", amount);
        ks_jw_str(&w, "reference", cmd->refund_id);
        path = "/sandbox/v1/refunds";
        break;
    case EX_OP_PAYOUT: {
        const char *acct = ex_cmd_detail(cmd, "destination_account");
        const char *bank = *ex_cmd_detail(cmd, "bank_code") ? ex_cmd_detail(cmd, "bank_code")
                                                         : ex_cmd_detail(cmd, "ewallet_channel");
        const char *holder = ex_cmd_detail(cmd, "account_holder");
        if (!*acct) {
            rc = ks_err_set(err, KS_EINVAL, 0, "details.destination_account",
                            "a payout needs a destination_account");
            goto out;
        }
        if (!*bank) {
            rc = ks_err_set(err, KS_EINVAL, 0, "details.bank_code",
                            "a payout needs a bank_code or ewallet_channel");
            goto out;
        }
        ks_jw_str(&w, "reference", cmd->payout_id);
        ks_jw_str(&w, "amount", amount);
        ks_jw_str(&w, "currency", cmd->currency);
        ks_jw_str(&w, "bank_code", bank);
        ks_jw_str(&w, "account_number", acct);
        ks_jw_str(&w, "account_name", *holder ? holder : "-");
        path = "/sandbox/v1/payouts";
        break;
    }
    }
    ks_jw_close(&w, '}');
    req->method = "POST";
    ks_buf_printf(&req->url, "%s%s", conf->base_url, path);
    if ((rc = ex_req_json(req, &w, err)) == KS_OK)
        headers(conf, cmd, req, 1);
out:
    ks_jw_free(&w);
    return rc;
}

/* next_action of a pending charge: {type, va_number, bank_code, qr_string, url, expires_at} */
static void next_action(json_t *na, struct ex_result *res)
{
    static const char *const names[][2] = {{"va_number", "va_number"}, {"bank_code", "bank_code"},
                                           {"qr_string", "qr_string"}, {"url", "redirect_url"},
                                           {"expires_at", "expires_at"}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const char *v = json_string_value(json_object_get(na, names[i][0]));
        if (v)
            ex_result_add_next(res, names[i][1], v);
    }
}

/* 1 when o is the sandbox's object for cmd: its merchant reference, amount and currency
 * are the command's. An answer for another order, amount or currency (a broken proxy or
 * PSP, a mixed-up connection) says nothing about ours: read as unknown, never as success
 * or failure. */
static int is_ours(const struct ex_cmd *cmd, json_t *o)
{
    const char *ref = json_string_value(json_object_get(o, "reference"));
    const char *amt = json_string_value(json_object_get(o, "amount"));
    const char *cur = json_string_value(json_object_get(o, "currency"));
    const char *want = cmd->op == EX_OP_CHARGE   ? cmd->order_id
                       : cmd->op == EX_OP_REFUND ? cmd->refund_id
                                                 : cmd->payout_id;
    struct ks_money m;
    struct ks_err e = {0};

    if (!ref || strcmp(ref, want) != 0 || !cur || strcmp(cur, cmd->currency) != 0 || !amt)
        return 0;
    return ks_money_parse(amt, cur, "amount", &m, &e) == KS_OK && m.minor == cmd->amount_minor;
}

/* An object the sandbox answered (charge, refund, payout) into res. */
static void read_object(const struct ex_cmd *cmd, json_t *o, struct ex_result *res)
{
    const char *st = json_string_value(json_object_get(o, "status"));
    const char *id = json_string_value(json_object_get(o, "id"));
    const char *amt = json_string_value(json_object_get(o, "amount"));
    const char *cur = json_string_value(json_object_get(o, "currency"));
    struct ks_money m;
    struct ks_err e = {0};

    if (!st || !id || !is_ours(cmd, o)) {
        res->verdict = EX_UNKNOWN;
        return;
    }
    snprintf(res->psp_reference, sizeof(res->psp_reference), "%s", id);
    if (amt && cur && ks_money_parse(amt, cur, "amount", &m, &e) == KS_OK)
        res->amount_minor = m.minor;
    if (strcmp(st, "succeeded") == 0 || strcmp(st, "paid") == 0) {
        res->verdict = EX_SUCCEEDED;
    } else if (strcmp(st, "failed") == 0 || strcmp(st, "expired") == 0) {
        const char *code = json_string_value(json_object_get(o, "failure_code"));
        res->verdict = EX_FAILED;
        snprintf(res->failure_code, sizeof(res->failure_code), "%s",
                 code ? code : strcmp(st, "expired") == 0 ? "expired" : "failed");
        snprintf(res->failure_message, sizeof(res->failure_message), "sandbox %s %s",
                 json_string_value(json_object_get(o, "object")), st);
    } else if (strcmp(st, "pending") == 0) {
        if (cmd->op == EX_OP_CHARGE) {
            res->verdict = EX_PENDING_CUSTOMER;
            next_action(json_object_get(o, "next_action"), res);
        } else {
            res->verdict = EX_PENDING;
        }
    } else {
        res->verdict = EX_UNKNOWN;
    }
}

/* {"error":{"code","field","message"}} of a refusal into res as FAILED. */
static void read_error(json_t *b, struct ex_result *res)
{
    json_t *e = json_object_get(b, "error");
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *msg = json_string_value(json_object_get(e, "message"));

    if (code && strcmp(code, "idempotency_key_reused") == 0) {
        /* the key ran before with another body: something happened, find out what */
        res->verdict = EX_UNKNOWN;
        return;
    }
    res->verdict = EX_FAILED;
    snprintf(res->failure_code, sizeof(res->failure_code), "%s", code ? code : "declined");
    snprintf(res->failure_message, sizeof(res->failure_message), "%s", msg ? msg : "");
}

static void parse(const struct ex_conf *conf, const struct ex_cmd *cmd, int step,
                  long http_status, const char *body, size_t len, struct ex_result *res)
{
    json_t *b = json_loadb(body, len, 0, NULL);

    (void)conf;
    (void)step;
    res->verdict = EX_UNKNOWN;
    if (http_status >= 200 && http_status < 300 && json_is_object(b))
        read_object(cmd, b, res);
    else if (http_status == 429 || http_status == 503 || http_status == 401 || http_status == 403)
        /* not run: throttled, unavailable (the sandbox answers 503 before its API runs), or
         * our credentials are wrong - failing the order for our own misconfiguration would
         * be wrong, so it is retried and dead-lettered for an operator */
        res->verdict = EX_RETRY;
    else if (http_status >= 400 && http_status < 500 && http_status != 408 && json_is_object(b))
        read_error(b, res);
    /* 408, other 5xx, an unreadable body: the call may have run */
    json_decref(b);
}

static enum ks_code build_status(const struct ex_conf *conf, const struct ex_cmd *cmd, int step,
                                 const struct ex_result *prev, struct ex_req *req,
                                 struct ks_err *err)
{
    if (step != 0)
        return ks_err_set(err, KS_EINVAL, 0, NULL, "sandbox status has one step");
    if (cmd->op != EX_OP_CHARGE)
        return build(conf, cmd, 0, NULL, req, err); /* the key replays the saved answer */
    req->method = "GET";
    if (prev && *prev->psp_reference) {
        ks_buf_printf(&req->url, "%s/sandbox/v1/charges/", conf->base_url);
        ex_url_escape(&req->url, prev->psp_reference);
    } else {
        ks_buf_printf(&req->url, "%s/sandbox/v1/charges?reference=", conf->base_url);
        ex_url_escape(&req->url, cmd->order_id);
    }
    headers(conf, cmd, req, 0);
    return req->url.oom || req->headers.oom ? ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory")
                                            : KS_OK;
}

static void parse_status(const struct ex_conf *conf, const struct ex_cmd *cmd, int step,
                         long http_status, const char *body, size_t len, struct ex_result *res)
{
    json_t *b, *data;

    if (cmd->op != EX_OP_CHARGE) {
        parse(conf, cmd, step, http_status, body, len, res);
        return;
    }
    res->verdict = EX_UNKNOWN;
    if (http_status == 404) {
        res->verdict = EX_ABSENT;
        return;
    }
    if (http_status != 200)
        return; /* still unknown: asked again on the next delivery */
    b = json_loadb(body, len, 0, NULL);
    data = json_object_get(b, "data");
    if (json_is_array(data) && json_array_size(data) == 0)
        res->verdict = EX_ABSENT;
    else if (json_is_array(data))
        read_object(cmd, json_array_get(data, 0), res);
    else if (json_is_object(b))
        read_object(cmd, b, res);
    json_decref(b);
}

const struct ex_adapter ex_adapter_sandbox = {
    .name = "sandbox",
    .supports = supports,
    .build = build,
    .parse = parse,
    .build_status = build_status,
    .parse_status = parse_status,
};
