/* adapter_stripe.c - Stripe: PaymentIntents and Refunds (https://docs.stripe.com/api).
 *
 * Bodies are form-encoded (a[b]=c nesting), auth is "Authorization: Bearer <secret key>",
 * and every POST carries the command's Idempotency-Key.
 *
 *   charge  POST /v1/payment_intents  amount, currency, payment_method=<token>,
 *           payment_method_types[0]=card, confirm=true, metadata[order_id] ...: created and
 *           confirmed in one call, so the card is charged (or declined, 402) by it.
 *   refund  POST /v1/refunds  payment_intent=<the charge's pi_...>, amount,
 *           metadata[refund_id] ...
 *   status  GET /v1/payment_intents/{id} or /v1/refunds/{id} when the id is known. When it
 *           is not (the answer to the create never came), Stripe cannot be asked by
 *           metadata without the Search API; the documented way to learn the outcome is
 *           to send the SAME request with the SAME Idempotency-Key: Stripe answers the
 *           saved result of a call that ran (Idempotent-Replayed: true) and runs one that
 *           never did, which the key makes safe
 *           (https://docs.stripe.com/api/idempotent_requests).
 *
 * Answers: 200 with the object; 402 card_error (a decline, the PaymentIntent inside the
 * error); 400 invalid_request_error (a refusal, or idempotency_error when the key was used
 * with other parameters); 401 bad key; 409 a concurrent request with the same key still
 * running (unknown: that one may charge); 429 rate limited; 500 api_error, which Stripe documents as "the request may have been processed". */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <jansson.h>

#include "consumers/executor/adapter.h"
#include "consumers/executor/adapter_util.h"
#include "lib/money.h"
#include "lib/banned.h"

static int supports(enum ex_op op, const char *method, const char *currency)
{
    if (ks_money_exponent(currency) < 0 || strcmp(method, "CARD") != 0)
        return 0;
    return op == EX_OP_CHARGE || op == EX_OP_REFUND;
}

static void auth(const struct ex_conf *conf, struct ex_req *req)
{
    ks_buf_printf(&req->headers, "Authorization: Bearer %s\n", conf->secret);
}

static enum ks_code build(const struct ex_conf *conf, const struct ex_cmd *cmd, int step,
                          const struct ex_result *prev, struct ex_req *req, struct ks_err *err)
{
    char amount[24], cur[4] = "";
    struct ks_buf *f = &req->body;

    (void)prev;
    if (step != 0)
        return ks_err_set(err, KS_EINVAL, 0, NULL, "stripe operations have one step");
    if (cmd->amount_minor <= 0)
        return ks_err_set(err, KS_EINVAL, 0, "amount_minor", "amount must be positive");
    if (strlen(cmd->currency) != 3 || ks_money_exponent(cmd->currency) < 0)
        return ks_err_set(err, KS_EINVAL, 0, "currency", "unknown currency");
    for (int i = 0; i < 3; i++) /* Stripe's currency codes are lower case */
        cur[i] = (char)tolower((unsigned char)cmd->currency[i]);
    snprintf(amount, sizeof(amount), "%" PRId64, cmd->amount_minor);
    switch (cmd->op) {
    case EX_OP_CHARGE: {
        const char *tok = ex_detail(cmd, "payment_token");
        if (strcmp(cmd->method, "CARD") != 0)
            return ks_err_set(err, KS_EINVAL, 0, "method", "stripe takes card payments only");
        if (!*tok)
            return ks_err_set(err, KS_EINVAL, 0, "details.payment_token",
                              "a card charge needs a payment_token (a PaymentMethod id)");
        ex_form_add(f, "amount", amount);
        ex_form_add(f, "currency", cur);
        ex_form_add(f, "payment_method", tok);
        ex_form_add(f, "payment_method_types[0]", "card");
        ex_form_add(f, "confirm", "true");
        ex_form_add(f, "metadata[order_id]", cmd->order_id);
        ex_form_add(f, "metadata[payment_id]", cmd->payment_id);
        ks_buf_printf(&req->url, "%s/v1/payment_intents", conf->base_url);
        break;
    }
    case EX_OP_REFUND:
        if (!*cmd->charge_ref)
            return ks_err_set(err, KS_EINVAL, 0, "charge_ref",
                              "a refund needs the PaymentIntent of the charge");
        ex_form_add(f, "payment_intent", cmd->charge_ref);
        ex_form_add(f, "amount", amount);
        ex_form_add(f, "metadata[refund_id]", cmd->refund_id);
        ex_form_add(f, "metadata[order_id]", cmd->order_id);
        ks_buf_printf(&req->url, "%s/v1/refunds", conf->base_url);
        break;
    case EX_OP_PAYOUT:
        return ks_err_set(err, KS_EINVAL, 0, "kind", "stripe payouts are not supported");
    }
    req->method = "POST";
    req->content_type = "application/x-www-form-urlencoded";
    auth(conf, req);
    ks_buf_printf(&req->headers, "Idempotency-Key: %s\n", cmd->idem_key);
    if (req->url.oom || req->body.oom || req->headers.oom)
        return ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
    return KS_OK;
}

static void copy(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

/* A PaymentIntent or a Refund object into res. */
static void read_object(json_t *o, struct ex_result *res)
{
    const char *obj = json_string_value(json_object_get(o, "object"));
    const char *st = json_string_value(json_object_get(o, "status"));
    int refund = obj && strcmp(obj, "refund") == 0;

    res->verdict = EX_UNKNOWN;
    if (!obj || !st || !json_string_value(json_object_get(o, "id")))
        return;
    copy(res->psp_reference, sizeof(res->psp_reference), json_string_value(json_object_get(o, "id")));
    res->amount_minor = json_integer_value(json_object_get(o, refund ? "amount" : "amount_received"));
    if (!res->amount_minor)
        res->amount_minor = json_integer_value(json_object_get(o, "amount"));
    if (strcmp(st, "succeeded") == 0) {
        res->verdict = EX_SUCCEEDED;
    } else if (refund && (strcmp(st, "pending") == 0 || strcmp(st, "requires_action") == 0)) {
        res->verdict = EX_PENDING;
    } else if (strcmp(st, "processing") == 0) {
        res->verdict = EX_PENDING; /* the result comes by webhook */
    } else if (strcmp(st, "requires_action") == 0) {
        json_t *na = json_object_get(json_object_get(o, "next_action"), "redirect_to_url");
        const char *url = json_string_value(json_object_get(na, "url"));
        res->verdict = EX_PENDING_CUSTOMER;
        if (url)
            ex_result_add_next(res, "redirect_url", url);
    } else if (strcmp(st, "requires_payment_method") == 0 || strcmp(st, "canceled") == 0 ||
               strcmp(st, "failed") == 0) {
        json_t *e = json_object_get(o, "last_payment_error");
        const char *code = json_string_value(json_object_get(e, "decline_code"));
        if (!code)
            code = json_string_value(json_object_get(e, "code"));
        if (!code)
            code = json_string_value(json_object_get(o, refund ? "failure_reason" : "cancellation_reason"));
        res->verdict = EX_FAILED;
        copy(res->failure_code, sizeof(res->failure_code), code ? code : st);
        copy(res->failure_message, sizeof(res->failure_message),
             json_string_value(json_object_get(e, "message")));
    }
    /* requires_confirmation, requires_capture: not states this adapter leaves an intent in */
}

static void parse(const struct ex_conf *conf, const struct ex_cmd *cmd, int step,
                  long http_status, const char *body, size_t len, struct ex_result *res)
{
    json_t *b = json_loadb(body, len, 0, NULL), *e = json_object_get(b, "error");
    const char *type = json_string_value(json_object_get(e, "type"));

    (void)conf;
    (void)cmd;
    (void)step;
    res->verdict = EX_UNKNOWN;
    if (http_status == 200 && json_is_object(b)) {
        read_object(b, res);
    } else if (http_status == 401 || http_status == 403 || http_status == 429) {
        /* not run: a bad key (our configuration, retried for an operator), or rate
         * limiting */
        res->verdict = EX_RETRY;
    } else if ((http_status == 402 || http_status == 400 || http_status == 404) && type &&
               strcmp(type, "idempotency_error") != 0) {
        /* a decline (card_error) or a refusal of the request: final */
        const char *code = json_string_value(json_object_get(e, "decline_code"));
        json_t *pi = json_object_get(e, "payment_intent");
        if (!code)
            code = json_string_value(json_object_get(e, "code"));
        res->verdict = EX_FAILED;
        copy(res->failure_code, sizeof(res->failure_code), code ? code : type);
        copy(res->failure_message, sizeof(res->failure_message),
             json_string_value(json_object_get(e, "message")));
        copy(res->psp_reference, sizeof(res->psp_reference),
             json_string_value(json_object_get(pi, "id")));
    }
    /* 409: another request with this key is running at Stripe - ours did not, but that
     * one may be charging, so nothing may go elsewhere; idempotency_error (the key ran with
     * other parameters), 500 api_error (may have run), anything unreadable: unknown,
     * resolved before any resend */
    json_decref(b);
}

static enum ks_code build_status(const struct ex_conf *conf, const struct ex_cmd *cmd, int step,
                                 const struct ex_result *prev, struct ex_req *req,
                                 struct ks_err *err)
{
    if (step != 0)
        return ks_err_set(err, KS_EINVAL, 0, NULL, "stripe status has one step");
    if (!prev || !*prev->psp_reference)
        return build(conf, cmd, 0, NULL, req, err); /* same request, same key: a replay */
    req->method = "GET";
    ks_buf_printf(&req->url, "%s/v1/%s/", conf->base_url,
                  cmd->op == EX_OP_REFUND ? "refunds" : "payment_intents");
    ex_url_escape(&req->url, prev->psp_reference);
    auth(conf, req);
    if (req->url.oom || req->headers.oom)
        return ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
    return KS_OK;
}

static void parse_status(const struct ex_conf *conf, const struct ex_cmd *cmd, int step,
                         long http_status, const char *body, size_t len, struct ex_result *res)
{
    /* a replayed create reads as a create; a retrieve answers the object as a create does,
     * except that a 404 there means Stripe has no such object */
    if (http_status == 404) {
        ex_result_clear(res);
        res->verdict = EX_ABSENT;
        return;
    }
    parse(conf, cmd, step, http_status, body, len, res);
}

const struct ex_adapter ex_adapter_stripe = {
    .name = "stripe",
    .supports = supports,
    .build = build,
    .parse = parse,
    .build_status = build_status,
    .parse_status = parse_status,
};
