/* stripe.c - the part of Stripe's API the executor uses, as https://docs.stripe.com/api
 * describes it: PaymentIntents (create, retrieve, confirm, cancel) and Refunds (create,
 * retrieve), form-encoded requests, Bearer or Basic auth with the secret key, idempotency
 * keys (https://docs.stripe.com/api/idempotent_requests), the error object
 * (https://docs.stripe.com/api/errors), the test payment methods of
 * https://docs.stripe.com/testing, and signed events (https://docs.stripe.com/webhooks). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deploy/psp-sandbox/sandbox.h"
#include "lib/jsonw.h"
#include "lib/banned.h"

#define API_VERSION "2024-06-20"

/* Test payment methods (https://docs.stripe.com/testing#declined-payments). */
static const struct test_pm {
    const char *id, *brand, *last4, *code, *decline_code, *message;
} test_pms[] = {
    {"pm_card_visa", "visa", "4242", NULL, NULL, NULL},
    {"pm_card_visa_debit", "visa", "5556", NULL, NULL, NULL},
    {"pm_card_mastercard", "mastercard", "4444", NULL, NULL, NULL},
    {"pm_card_amex", "amex", "8431", NULL, NULL, NULL},
    {"pm_card_jcb", "jcb", "0000", NULL, NULL, NULL},
    {"pm_card_chargeDeclined", "visa", "0002", "card_declined", "generic_decline",
     "Your card was declined."},
    {"pm_card_chargeDeclinedInsufficientFunds", "visa", "9995", "card_declined",
     "insufficient_funds", "Your card has insufficient funds."},
    {"pm_card_chargeDeclinedLostCard", "visa", "9987", "card_declined", "lost_card",
     "Your card was declined."},
    {"pm_card_chargeDeclinedStolenCard", "visa", "9979", "card_declined", "stolen_card",
     "Your card was declined."},
    {"pm_card_chargeDeclinedFraudulent", "visa", "0019", "card_declined", "fraudulent",
     "Your card was declined."},
    {"pm_card_chargeDeclinedExpiredCard", "visa", "0069", "expired_card", "expired_card",
     "Your card has expired."},
    {"pm_card_chargeDeclinedIncorrectCvc", "visa", "0127", "incorrect_cvc", "incorrect_cvc",
     "Your card's security code is incorrect."},
    {"pm_card_chargeDeclinedProcessingError", "visa", "0119", "processing_error",
     "processing_error", "An error occurred while processing your card. Try again in a little bit."},
};

static const struct test_pm generic_decline = {NULL, NULL, NULL, "card_declined",
                                               "generic_decline", "Your card was declined."};

static const struct test_pm *find_pm(const char *id)
{
    size_t i;

    for (i = 0; id && i < sizeof(test_pms) / sizeof(test_pms[0]); i++)
        if (strcmp(test_pms[i].id, id) == 0)
            return &test_pms[i];
    return NULL;
}

static json_t *error_obj(const char *type, const char *code, const char *param, const char *fmt,
                         ...) __attribute__((format(printf, 4, 5)));
static json_t *error_obj(const char *type, const char *code, const char *param, const char *fmt,
                         ...)
{
    char msg[512], doc[160];
    va_list ap;
    json_t *e;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* a message cut to fit may end in part of a character: leave that part out */
    e = json_pack("{s:s%}", "message", msg, ks_utf8_uncut(msg));
    if (code) {
        json_object_set_new(e, "code", json_string(code));
        snprintf(doc, sizeof(doc), "https://stripe.com/docs/error-codes/%s", code);
        for (char *p = doc + 36; *p; p++)
            if (*p == '_')
                *p = '-';
        json_object_set_new(e, "doc_url", json_string(doc));
    }
    if (param)
        json_object_set_new(e, "param", json_string(param));
    json_object_set_new(e, "type", json_string(type));
    return e;
}

static void respond_error(struct sb_resp *r, int status, json_t *err)
{
    sb_respond_json(r, status, json_pack("{s:o}", "error", err));
}

static json_t *pm_object(const struct test_pm *pm, const char *id)
{
    return json_pack("{s:s, s:s, s:{s:s, s:s, s:s, s:i, s:i, s:s}, s:I, s:b, s:s}", "id", id,
                     "object", "payment_method", "card", "brand", pm->brand, "country", "US",
                     "last4", pm->last4, "exp_month", 12, "exp_year", 2034, "funding", "credit",
                     "created", (json_int_t)time(NULL), "livemode", 0, "type", "card");
}

/* Queues event type for obj (copied) to the Stripe endpoint. */
static void send_event(const char *type, json_t *obj, const char *idem_key,
                       const struct sb_hook_opts *o, int order)
{
    char id[48], req[48];
    json_t *ev;

    sb_new_id("evt_", id, sizeof(id));
    sb_new_id("req_", req, sizeof(req));
    ev = json_pack("{s:s, s:s, s:s, s:I, s:{s:O}, s:b, s:i, s:{s:s, s:s?}, s:s}", "id", id,
                   "object", "event", "api_version", API_VERSION, "created",
                   (json_int_t)time(NULL), "data", "object", obj, "livemode", 0,
                   "pending_webhooks", 1, "request", "id", req, "idempotency_key", idem_key,
                   "type", type);
    sb_hook_emit("stripe", type, json_string_value(json_object_get(obj, "id")), NULL, ev, o, order);
    json_decref(ev);
}

static const char *pi_reference(json_t *pi)
{
    json_t *md = json_object_get(pi, "metadata");
    const char *ref = json_string_value(json_object_get(md, "order_id"));

    return ref ? ref : json_string_value(json_object_get(pi, "id"));
}

/* Runs the charge of a PaymentIntent with pm_id: success, or a decline answered as 402
 * with the card error. */
static void confirm(const struct sb_call *c, json_t *pi, const char *pm_id, const char *idem_key,
                    struct sb_resp *r)
{
    const struct test_pm *pm = find_pm(pm_id);
    char ch[48], idbuf[48];
    json_t *err, *pmo;
    const struct test_pm *dec;

    sb_new_id("ch_", ch, sizeof(ch));
    sb_ref_put("charge", ch, json_string_value(json_object_get(pi, "id")));
    json_object_set_new(pi, "payment_method", json_string(pm_id));
    json_object_set_new(pi, "latest_charge", json_string(ch));
    dec = pm->code ? pm : c->force_decline ? &generic_decline : NULL;
    if (!dec) {
        json_int_t amount = json_integer_value(json_object_get(pi, "amount"));
        json_object_set_new(pi, "status", json_string("succeeded"));
        json_object_set_new(pi, "amount_received", json_integer(amount));
        json_object_set_new(pi, "last_payment_error", json_null());
        sb_ledger_add("stripe", "charge", json_string_value(json_object_get(pi, "id")),
                      pi_reference(pi), idem_key, amount,
                      json_string_value(json_object_get(pi, "currency")), "card");
        send_event("payment_intent.succeeded", pi, idem_key, NULL, 0);
        sb_respond_json(r, 200, json_incref(pi));
        return;
    }
    snprintf(idbuf, sizeof(idbuf), "%s", pm_id);
    pmo = pm_object(pm, idbuf);
    err = error_obj("card_error", dec->code, NULL, "%s", dec->message);
    json_object_set_new(err, "decline_code", json_string(dec->decline_code));
    json_object_set_new(err, "charge", json_string(ch));
    json_object_set_new(err, "payment_method", json_incref(pmo));
    json_object_set_new(pi, "status", json_string("requires_payment_method"));
    json_object_set_new(pi, "last_payment_error", json_deep_copy(err));
    json_object_set_new(pi, "payment_method", json_null());
    json_object_set_new(err, "payment_intent", json_deep_copy(pi));
    json_decref(pmo);
    send_event("payment_intent.payment_failed", pi, idem_key, NULL, 0);
    respond_error(r, 402, err);
}

static int parse_amount(json_t *v, json_int_t *out)
{
    const char *s = json_string_value(v);
    char *end;
    long long n;

    if (!s || !*s || *s == '-' || *s == '+')
        return -1;
    n = strtoll(s, &end, 10);
    if (*end || n <= 0 || n > 99999999999LL)
        return -1;
    *out = n;
    return 0;
}

static const char *const pi_params[] = {
    "amount", "currency", "payment_method", "confirm", "metadata", "description",
    "payment_method_types", "customer", "receipt_email", "statement_descriptor",
    "statement_descriptor_suffix", "return_url", "off_session", "setup_future_usage", "expand",
    "automatic_payment_methods", "capture_method", "confirmation_method",
    "payment_method_options", "shipping", "error_on_requires_action", "use_stripe_sdk", NULL};

static const char *unknown_param(json_t *params, const char *const *allowed)
{
    const char *k;
    json_t *v;

    json_object_foreach(params, k, v) {
        int ok = 0;
        for (const char *const *a = allowed; *a; a++)
            if (strcmp(*a, k) == 0)
                ok = 1;
        if (!ok)
            return k;
    }
    return NULL;
}

static void create_pi(const struct sb_call *c, json_t *p, const char *idem_key, struct sb_resp *r)
{
    json_int_t amount;
    const char *cur = json_string_value(json_object_get(p, "currency"));
    const char *pm = json_string_value(json_object_get(p, "payment_method"));
    const char *confirm_s = json_string_value(json_object_get(p, "confirm"));
    const char *bad = unknown_param(p, pi_params);
    json_t *md = json_object_get(p, "metadata"), *types = json_object_get(p, "payment_method_types");
    char id[48], secret[128], curl[4];
    json_t *pi;
    int i;

    if (bad) {
        respond_error(r, 400, error_obj("invalid_request_error", "parameter_unknown", bad,
                                        "Received unknown parameter: %s", bad));
        return;
    }
    if (!json_object_get(p, "amount")) {
        respond_error(r, 400, error_obj("invalid_request_error", "parameter_missing", "amount",
                                        "Missing required param: amount."));
        return;
    }
    if (parse_amount(json_object_get(p, "amount"), &amount) != 0) {
        respond_error(r, 400, error_obj("invalid_request_error", "parameter_invalid_integer",
                                        "amount", "Invalid integer: %s",
                                        json_string_value(json_object_get(p, "amount"))
                                            ? json_string_value(json_object_get(p, "amount"))
                                            : "(not a string)"));
        return;
    }
    if (!cur) {
        respond_error(r, 400, error_obj("invalid_request_error", "parameter_missing", "currency",
                                        "Missing required param: currency."));
        return;
    }
    for (i = 0; i < 3 && cur[i]; i++)
        curl[i] = (char)(cur[i] >= 'A' && cur[i] <= 'Z' ? cur[i] + 32 : cur[i]);
    curl[i] = '\0';
    if (strlen(cur) != 3 || sb_currency_exp(curl) < 0) {
        respond_error(r, 400, error_obj("invalid_request_error", "parameter_invalid_string",
                                        "currency", "Invalid currency: %s.", cur));
        return;
    }
    if (md && !json_is_object(md)) {
        respond_error(r, 400, error_obj("invalid_request_error", "parameter_invalid_string",
                                        "metadata", "Invalid object"));
        return;
    }
    if (pm && !find_pm(pm)) {
        respond_error(r, 400, error_obj("invalid_request_error", "resource_missing",
                                        "payment_method", "No such PaymentMethod: '%s'", pm));
        return;
    }
    if (confirm_s && strcmp(confirm_s, "true") == 0 && !pm) {
        respond_error(r, 400, error_obj("invalid_request_error", "parameter_missing",
                                        "payment_method",
                                        "You cannot confirm this PaymentIntent because it's "
                                        "missing a payment method."));
        return;
    }
    sb_new_id("pi_", id, sizeof(id));
    snprintf(secret, sizeof(secret), "%s_secret_%s", id, id + 3);
    pi = json_pack("{s:s, s:s, s:I, s:i, s:i, s:n, s:n, s:s, s:s, s:s, s:I, s:s, s:n, s:s?, "
                   "s:n, s:n, s:b, s:O, s:n, s:s?, s:O, s:n, s:s}",
                   "id", id, "object", "payment_intent", "amount", amount, "amount_capturable", 0,
                   "amount_received", 0, "canceled_at", "cancellation_reason", "capture_method",
                   "automatic", "client_secret", secret, "confirmation_method", "automatic",
                   "created", (json_int_t)time(NULL), "currency", curl, "customer", "description",
                   json_string_value(json_object_get(p, "description")), "last_payment_error",
                   "latest_charge", "livemode", 0, "metadata", md ? md : json_object(),
                   "next_action", "payment_method", pm, "payment_method_types",
                   types && json_is_array(types) ? types : json_pack("[s]", "card"),
                   "receipt_email", "status",
                   pm ? "requires_confirmation" : "requires_payment_method");
    if (!md)
        json_decref(json_object_get(pi, "metadata")); /* O took a second reference */
    if (!(types && json_is_array(types)))
        json_decref(json_object_get(pi, "payment_method_types"));
    sb_obj_put("payment_intent", id, pi);
    if (confirm_s && strcmp(confirm_s, "true") == 0) {
        confirm(c, pi, pm, idem_key, r);
        return;
    }
    sb_respond_json(r, 200, json_incref(pi));
}

static json_t *get_pi(const char *id, struct sb_resp *r)
{
    json_t *pi = sb_obj_get("payment_intent", id);

    if (!pi)
        respond_error(r, 404, error_obj("invalid_request_error", "resource_missing", "intent",
                                        "No such payment_intent: '%s'", id));
    return pi;
}

/* 400 payment_intent_unexpected_state for verb ("confirm", "cancel"), with the intent. */
static void unexpected_state(struct sb_resp *r, json_t *pi, const char *verb, const char *allowed)
{
    json_t *e = error_obj("invalid_request_error", "payment_intent_unexpected_state", NULL,
                          "You cannot %s this PaymentIntent because it has a status of %s. "
                          "Only a PaymentIntent with one of the following statuses may be %sed: "
                          "%s.", verb, json_string_value(json_object_get(pi, "status")), verb,
                          allowed);

    json_object_set_new(e, "payment_intent", json_deep_copy(pi));
    respond_error(r, 400, e);
}

static void confirm_pi(const struct sb_call *c, const char *id, json_t *p, const char *idem_key,
                       struct sb_resp *r)
{
    json_t *pi = get_pi(id, r);
    const char *st, *pm;

    if (!pi)
        return;
    st = json_string_value(json_object_get(pi, "status"));
    if (strcmp(st, "requires_confirmation") != 0 && strcmp(st, "requires_payment_method") != 0 &&
        strcmp(st, "requires_action") != 0) {
        unexpected_state(r, pi, "confirm",
                         "requires_confirmation, requires_payment_method, requires_action");
        return;
    }
    pm = json_string_value(json_object_get(p, "payment_method"));
    if (!pm)
        pm = json_string_value(json_object_get(pi, "payment_method"));
    if (!pm) {
        respond_error(r, 400, error_obj("invalid_request_error", "parameter_missing",
                                        "payment_method",
                                        "You cannot confirm this PaymentIntent because it's "
                                        "missing a payment method."));
        return;
    }
    if (!find_pm(pm)) {
        respond_error(r, 400, error_obj("invalid_request_error", "resource_missing",
                                        "payment_method", "No such PaymentMethod: '%s'", pm));
        return;
    }
    confirm(c, pi, pm, idem_key, r);
}

static void cancel_pi(const char *id, const char *reason, struct sb_resp *r,
                      const struct sb_hook_opts *o)
{
    json_t *pi = get_pi(id, r);
    const char *st;

    if (!pi)
        return;
    st = json_string_value(json_object_get(pi, "status"));
    if (strcmp(st, "succeeded") == 0 || strcmp(st, "canceled") == 0) {
        unexpected_state(r, pi, "cancel",
                         "requires_payment_method, requires_capture, requires_confirmation, "
                         "requires_action, processing");
        return;
    }
    json_object_set_new(pi, "status", json_string("canceled"));
    json_object_set_new(pi, "canceled_at", json_integer((json_int_t)time(NULL)));
    json_object_set_new(pi, "cancellation_reason", reason ? json_string(reason) : json_null());
    send_event("payment_intent.canceled", pi, NULL, o, 0);
    sb_respond_json(r, 200, json_incref(pi));
}

static const char *const refund_params[] = {"payment_intent", "charge", "amount", "reason",
                                            "metadata", "expand", "instructions_email", NULL};

static void create_refund(json_t *p, const char *idem_key, struct sb_resp *r)
{
    const char *pid = json_string_value(json_object_get(p, "payment_intent"));
    const char *chg = json_string_value(json_object_get(p, "charge"));
    const char *reason = json_string_value(json_object_get(p, "reason"));
    const char *bad = unknown_param(p, refund_params), *ref;
    json_t *pi = NULL, *md = json_object_get(p, "metadata"), *re;
    json_int_t amount, received, refunded;
    char id[48], have[40], want[40], bt[48];
    const char *cur;

    if (bad) {
        respond_error(r, 400, error_obj("invalid_request_error", "parameter_unknown", bad,
                                        "Received unknown parameter: %s", bad));
        return;
    }
    if (!pid && chg) /* a charge id: refund its PaymentIntent */
        pid = sb_ref_get("charge", chg);
    if (!pid) {
        respond_error(r, 400, error_obj("invalid_request_error", "parameter_missing", NULL,
                                        "One of the following params should be provided for "
                                        "this request: payment_intent or charge."));
        return;
    }
    pi = sb_obj_get("payment_intent", pid);
    if (!pi) {
        respond_error(r, 400, error_obj("invalid_request_error", "resource_missing",
                                        "payment_intent", "No such payment_intent: '%s'", pid));
        return;
    }
    if (reason && strcmp(reason, "duplicate") != 0 && strcmp(reason, "fraudulent") != 0 &&
        strcmp(reason, "requested_by_customer") != 0) {
        respond_error(r, 400, error_obj("invalid_request_error", "parameter_invalid_string",
                                        "reason", "Invalid reason: must be one of duplicate, "
                                        "fraudulent, or requested_by_customer"));
        return;
    }
    if (strcmp(json_string_value(json_object_get(pi, "status")), "succeeded") != 0) {
        respond_error(r, 400, error_obj("invalid_request_error", "charge_not_refundable",
                                        "payment_intent",
                                        "This PaymentIntent (%s) does not have a successful "
                                        "charge to refund.", pid));
        return;
    }
    received = json_integer_value(json_object_get(pi, "amount_received"));
    refunded = sb_ledger_refunded("stripe", pid);
    cur = json_string_value(json_object_get(pi, "currency"));
    if (refunded >= received) {
        respond_error(r, 400, error_obj("invalid_request_error", "charge_already_refunded", NULL,
                                        "Charge %s has already been refunded.",
                                        json_string_value(json_object_get(pi, "latest_charge"))));
        return;
    }
    amount = received - refunded;
    if (json_object_get(p, "amount") && parse_amount(json_object_get(p, "amount"), &amount) != 0) {
        respond_error(r, 400, error_obj("invalid_request_error", "parameter_invalid_integer",
                                        "amount", "Invalid positive integer"));
        return;
    }
    if (amount > received - refunded) {
        sb_amount_str(amount, cur, want, sizeof(want));
        sb_amount_str(received - refunded, cur, have, sizeof(have));
        respond_error(r, 400, error_obj("invalid_request_error", "amount_too_large", "amount",
                                        "Refund amount (%s) is greater than unrefunded amount on "
                                        "charge (%s)", want, have));
        return;
    }
    sb_new_id("re_", id, sizeof(id));
    sb_new_id("txn_", bt, sizeof(bt));
    re = json_pack("{s:s, s:s, s:I, s:s, s:s, s:I, s:s, s:O, s:s, s:s?, s:n, s:s}", "id", id,
                   "object", "refund", "amount", amount, "balance_transaction", bt, "charge",
                   json_string_value(json_object_get(pi, "latest_charge")), "created",
                   (json_int_t)time(NULL), "currency", cur, "metadata",
                   md ? md : json_object(), "payment_intent", pid, "reason", reason,
                   "receipt_number", "status", "succeeded");
    if (!md)
        json_decref(json_object_get(re, "metadata"));
    sb_obj_put("refund", id, re);
    ref = json_string_value(json_object_get(md, "refund_id"));
    sb_ledger_add_refund("stripe", pid, id, ref ? ref : id, idem_key, amount, cur, "card");
    send_event("refund.created", re, idem_key, NULL, 0);
    sb_respond_json(r, 200, json_incref(re));
}

const char *sb_psp_of_path(const char *path)
{
    if (strncmp(path, "/v1/payment_intents", 19) == 0 || strncmp(path, "/v1/refunds", 11) == 0)
        return "stripe";
    if (strncmp(path, "/callback_virtual_account", 25) == 0 ||
        strncmp(path, "/qr_codes", 9) == 0 || strncmp(path, "/disbursements", 14) == 0)
        return "xendit";
    if (strncmp(path, "/sandbox/v1/", 12) == 0)
        return "sandbox";
    if (strncmp(path, "/v2/", 4) == 0 || sb_iris_path(path))
        return "midtrans";
    return NULL;
}

int sb_iris_path(const char *path)
{
    return strncmp(path, "/api/v1/payouts", 15) == 0 || strncmp(path, "/iris/api/v1/payouts", 20) == 0;
}

int sb_is_charge_call(const char *psp, const char *method, const char *path)
{
    char id[128];

    if (strcmp(method, "POST") != 0)
        return 0;
    if (strcmp(psp, "stripe") == 0)
        return strcmp(path, "/v1/payment_intents") == 0 ||
               sb_path_id(path, "/v1/payment_intents/", "/confirm", id, sizeof(id));
    if (strcmp(psp, "xendit") == 0)
        return strcmp(path, "/disbursements") == 0;
    if (strcmp(psp, "sandbox") == 0)
        return strcmp(path, "/sandbox/v1/charges") == 0 || strcmp(path, "/sandbox/v1/payouts") == 0;
    return strcmp(path, "/v2/charge") == 0 || sb_iris_path(path);
}

void sb_psp_5xx(const char *psp, struct sb_resp *r)
{
    if (strcmp(psp, "stripe") == 0) {
        char req[48];
        sb_new_id("req_", req, sizeof(req));
        respond_error(r, 500, error_obj("api_error", NULL, NULL,
                                        "An unknown error occurred (request %s)", req));
    } else if (strcmp(psp, "sandbox") == 0) {
        sb_respond_json(r, 503, json_pack("{s:{s:s, s:s}}", "error", "code", "unavailable",
                                          "message", "the sandbox PSP is unavailable"));
    } else if (strcmp(psp, "xendit") == 0) {
        sb_respond_json(r, 500, json_pack("{s:s, s:s}", "error_code", "SERVER_ERROR", "message",
                                          "An unexpected error occured, our team has been "
                                          "notified and will troubleshoot the issue."));
    } else {
        sb_respond_json(r, 500, json_pack("{s:s, s:s}", "status_code", "500", "status_message",
                                          "Sorry, we encountered internal server error. We will "
                                          "fix this soon."));
    }
}

int sb_stripe_event(const char *what, const char *id, const struct sb_hook_opts *o, char *msg,
                    size_t cap)
{
    struct sb_resp r = {0};

    if (strcmp(what, "expire") != 0 && strcmp(what, "cancel") != 0) {
        snprintf(msg, cap, "stripe events: expire (cancels a PaymentIntent)");
        return -1;
    }
    cancel_pi(id, "abandoned", &r, o);
    if (r.status != 200) {
        snprintf(msg, cap, "%s", r.body ? r.body : "could not cancel");
        free(r.body);
        return -1;
    }
    free(r.body);
    return 0;
}

int sb_stripe_handle(const struct sb_call *c, struct sb_resp *r)
{
    char user[256], scope[400], fp[65], msg[200], id[128];
    const char *idem_key = sb_header(c, "Idempotency-Key");
    json_t *p = NULL;
    int post = strcmp(c->method, "POST") == 0;

    if (strcmp(sb_psp_of_path(c->path) ? sb_psp_of_path(c->path) : "", "stripe") != 0)
        return 0;
    sb_new_id("req_", r->request_id, sizeof(r->request_id));
    sb_auth_user(sb_header(c, "Authorization"), user, sizeof(user));
    if (!user[0]) {
        respond_error(r, 401, error_obj("invalid_request_error", NULL, NULL,
                                        "You did not provide an API key. You need to provide "
                                        "your API key in the Authorization header, using Bearer "
                                        "auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY')."));
        return 1;
    }
    if (!*SB.stripe_key || strcmp(user, SB.stripe_key) != 0) {
        respond_error(r, 401, error_obj("invalid_request_error", NULL, NULL,
                                        "Invalid API Key provided: %.8s****", user));
        return 1;
    }
    if (post) {
        p = sb_form_parse(c->body, c->len, msg, sizeof(msg));
        if (!p) {
            respond_error(r, 400, error_obj("invalid_request_error", NULL, NULL, "%s", msg));
            return 1;
        }
    } else {
        p = json_object();
    }
    if (post && idem_key) {
        if (!sb_idem_key_ok(idem_key)) {
            respond_error(r, 400, error_obj("invalid_request_error", NULL, NULL, "%s",
                                            strlen(idem_key) > 255
                                                ? "Idempotency keys must be 255 characters "
                                                  "or less."
                                                : "Idempotency keys must be valid UTF-8."));
            goto out;
        }
        switch (sb_idem_check("stripe", user, idem_key, c, p, scope, fp, r)) {
        case SB_IDEM_HIT:
            goto out;
        case SB_IDEM_MISMATCH:
            respond_error(r, 400, error_obj("idempotency_error", NULL, NULL,
                                            "Keys for idempotent requests can only be used with "
                                            "the same parameters they were first used with. Try "
                                            "using a key other than '%.255s' if you meant to "
                                            "execute a different request.", idem_key));
            goto out;
        case SB_IDEM_NEW:
            break;
        }
    }
    if (post && strcmp(c->path, "/v1/payment_intents") == 0) {
        create_pi(c, p, idem_key, r);
    } else if (post && sb_path_id(c->path, "/v1/payment_intents/", "/confirm", id, sizeof(id))) {
        confirm_pi(c, id, p, idem_key, r);
    } else if (post && sb_path_id(c->path, "/v1/payment_intents/", "/cancel", id, sizeof(id))) {
        cancel_pi(id, json_string_value(json_object_get(p, "cancellation_reason")), r, NULL);
    } else if (!post && sb_path_id(c->path, "/v1/payment_intents/", "", id, sizeof(id))) {
        json_t *pi = get_pi(id, r);
        if (pi)
            sb_respond_json(r, 200, json_incref(pi));
    } else if (post && strcmp(c->path, "/v1/refunds") == 0) {
        create_refund(p, idem_key, r);
    } else if (!post && sb_path_id(c->path, "/v1/refunds/", "", id, sizeof(id))) {
        json_t *re = sb_obj_get("refund", id);
        if (re)
            sb_respond_json(r, 200, json_incref(re));
        else
            respond_error(r, 404, error_obj("invalid_request_error", "resource_missing", "id",
                                            "No such refund: '%s'", id));
    } else {
        respond_error(r, 404, error_obj("invalid_request_error", NULL, NULL,
                                        "Unrecognized request URL (%s: %s).", c->method, c->path));
    }
    /* Stripe keeps the answer of every request whose endpoint began executing: successes
     * and card errors; validation errors (400/404) are not saved */
    if (post && idem_key && (r->status == 200 || r->status == 402))
        sb_idem_store(scope, fp, r);
out:
    json_decref(p);
    return 1;
}
