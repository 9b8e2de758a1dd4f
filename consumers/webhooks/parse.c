/* parse.c - each PSP's notifications, read into a struct wh_note (webhooks.h).
 *
 * Only what the formats say is trusted, and nothing is guessed: a reference, status or
 * amount that is missing or malformed is an error naming the field, so the notification
 * goes to the DLQ where an operator sees it. Amounts become minor units through lib/money
 * (whole-unit amounts, as Xendit sends them, are parsed as decimal strings: no double). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <jansson.h>

#include "lib/money.h"
#include "consumers/webhooks/webhooks.h"
#include "lib/banned.h"

static const char *const kind_names[] = {"", "CHARGE", "REFUND", "PAYOUT"};
static const char *const status_names[] = {"SUCCEEDED", "FAILED", "PENDING_CUSTOMER",
                                           "EXPIRED",   "REFUNDED", "PAID_OUT"};

const char *wh_kind_name(enum wh_kind k)
{
    return (unsigned)k < 4 ? kind_names[k] : "";
}

const char *wh_status_name(enum wh_status s)
{
    return (unsigned)s < 6 ? status_names[s] : "";
}

int wh_status_final(enum wh_status s)
{
    return s != WH_PENDING_CUSTOMER;
}

static const char *sget(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* nothing to report, and why */
static enum ks_code none(struct wh_note *n, const char *fmt, const char *arg)
{
    n->kind = WH_NONE;
    snprintf(n->reason, sizeof(n->reason), fmt, arg ? arg : "");
    return KS_OK;
}

static void put(char *dst, size_t cap, const char *s)
{
    snprintf(dst, cap, "%s", s ? s : "");
}

/* a reference (Kasir's or the PSP's): a string of 1 .. cap-1 characters */
static enum ks_code take_ref(char *dst, size_t cap, const char *s, const char *field,
                             const char *missing, struct ks_err *err)
{
    if (!s || !*s)
        return ks_err_set(err, KS_EINVAL, 0, field, "%s", missing);
    if (strlen(s) >= cap)
        return ks_err_set(err, KS_EINVAL, 0, field, "%s is longer than %zu characters",
                          field, cap - 1);
    memcpy(dst, s, strlen(s) + 1);
    return KS_OK;
}

/* ISO 4217 code in either case ("idr" from Stripe) into n->currency, known to lib/money */
static enum ks_code take_currency(struct wh_note *n, const char *s, const char *field,
                                  struct ks_err *err)
{
    char c[4];

    if (!s || strlen(s) != 3)
        return ks_err_set(err, KS_EINVAL, 0, field, "currency must be a 3-letter ISO 4217 code");
    for (int i = 0; i < 4; i++)
        c[i] = (char)(s[i] >= 'a' && s[i] <= 'z' ? s[i] - 32 : s[i]);
    if (ks_money_exponent(c) < 0)
        return ks_err_set(err, KS_EINVAL, 0, field, "unknown currency %s", c);
    memcpy(n->currency, c, 4);
    return KS_OK;
}

/* a decimal string ("150000.00") in n->currency */
static enum ks_code take_decimal(struct wh_note *n, const char *s, const char *field,
                                 struct ks_err *err)
{
    struct ks_money m;

    if (!s)
        return ks_err_set(err, KS_EINVAL, 0, field, "%s is missing or not a string", field);
    if (ks_money_parse(s, n->currency, field, &m, err) != KS_OK)
        return err->code;
    n->amount_minor = m.minor;
    n->has_amount = 1;
    return KS_OK;
}

/* a JSON integer of minor units (Stripe: "the smallest currency unit") */
static enum ks_code take_minor(struct wh_note *n, const json_t *v, const char *field,
                               struct ks_err *err)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return ks_err_set(err, KS_EINVAL, 0, field,
                          "%s must be a non-negative integer of minor units", field);
    n->amount_minor = (int64_t)json_integer_value(v);
    n->has_amount = 1;
    return KS_OK;
}

/* whole units of n->currency (Xendit: rupiah), a JSON integer or a string of digits */
static enum ks_code take_whole(struct wh_note *n, const json_t *v, const char *field,
                               struct ks_err *err)
{
    char buf[32];

    if (json_is_integer(v) && json_integer_value(v) >= 0)
        snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_string(v) && strlen(json_string_value(v)) < sizeof(buf) &&
             !strchr(json_string_value(v), '.'))
        snprintf(buf, sizeof(buf), "%s", json_string_value(v));
    else
        return ks_err_set(err, KS_EINVAL, 0, field,
                          "%s must be a whole number of %s (an integer)", field, n->currency);
    return take_decimal(n, buf, field, err);
}

static void next(struct wh_note *n, const char *name, const char *value)
{
    if (!value || !*value || n->n_next >= WH_MAX_NEXT)
        return;
    n->next_name[n->n_next] = name;
    put(n->next_value[n->n_next], sizeof(n->next_value[0]), value);
    n->n_next++;
}

static void failure(struct wh_note *n, const char *code, const char *msg)
{
    put(n->failure_code, sizeof(n->failure_code), code);
    put(n->failure_message, sizeof(n->failure_message), msg);
}

/* --- Stripe: Event objects (https://docs.stripe.com/api/events/object), the
 * PaymentIntent (https://docs.stripe.com/api/payment_intents/object) and Refund
 * (https://docs.stripe.com/api/refunds/object) they carry in data.object. The executor
 * sends Kasir's ids as metadata[order_id] and metadata[refund_id]. */

static enum ks_code stripe_intent(const char *ev, json_t *o, struct wh_note *n,
                                  struct ks_err *err)
{
    const json_t *md = json_object_get(o, "metadata");
    const json_t *lpe = json_object_get(o, "last_payment_error");
    const char *why;
    json_t *amt;

    if (strcmp(ev, "succeeded") == 0) {
        n->status = WH_SUCCEEDED;
    } else if (strcmp(ev, "payment_failed") == 0) {
        n->status = WH_FAILED;
        failure(n, sget(lpe, "decline_code") ? sget(lpe, "decline_code")
                   : sget(lpe, "code")       ? sget(lpe, "code")
                                             : "payment_failed",
                sget(lpe, "message"));
    } else if (strcmp(ev, "canceled") == 0) {
        /* abandoned or canceled by Stripe's own expiry: the buyer never paid */
        why = sget(o, "cancellation_reason");
        n->status = why && (strcmp(why, "abandoned") == 0 || strcmp(why, "automatic") == 0)
                        ? WH_EXPIRED
                        : WH_FAILED;
        failure(n, "canceled", why);
    } else {
        return none(n, "stripe payment_intent.%s carries no outcome", ev);
    }
    n->kind = WH_CHARGE;
    if (take_ref(n->reference, sizeof(n->reference), sget(md, "order_id"),
                 "data.object.metadata.order_id",
                 "unknown_reference: the PaymentIntent has no metadata.order_id", err) ||
        take_ref(n->psp_reference, sizeof(n->psp_reference), sget(o, "id"), "data.object.id",
                 "data.object.id is missing", err) ||
        take_currency(n, sget(o, "currency"), "data.object.currency", err))
        return err->code;
    amt = json_object_get(o, "amount");
    if (n->status == WH_SUCCEEDED && json_integer_value(json_object_get(o, "amount_received")) > 0)
        amt = json_object_get(o, "amount_received");
    return take_minor(n, amt, "data.object.amount", err);
}

static enum ks_code stripe_refund(json_t *o, struct wh_note *n, struct ks_err *err)
{
    const char *st = sget(o, "status");

    if (!st)
        return ks_err_set(err, KS_EINVAL, 0, "data.object.status", "the refund has no status");
    if (strcmp(st, "succeeded") == 0) {
        n->status = WH_REFUNDED;
    } else if (strcmp(st, "failed") == 0 || strcmp(st, "canceled") == 0) {
        n->status = WH_FAILED;
        failure(n, sget(o, "failure_reason") ? sget(o, "failure_reason") : st, NULL);
    } else {
        return none(n, "stripe refund is %s, not final", st);
    }
    n->kind = WH_REFUND;
    if (take_ref(n->reference, sizeof(n->reference),
                 sget(json_object_get(o, "metadata"), "refund_id"),
                 "data.object.metadata.refund_id",
                 "unknown_reference: the Refund has no metadata.refund_id", err) ||
        take_ref(n->psp_reference, sizeof(n->psp_reference), sget(o, "id"), "data.object.id",
                 "data.object.id is missing", err) ||
        take_currency(n, sget(o, "currency"), "data.object.currency", err))
        return err->code;
    return take_minor(n, json_object_get(o, "amount"), "data.object.amount", err);
}

static enum ks_code parse_stripe(json_t *b, struct wh_note *n, struct ks_err *err)
{
    const char *type = sget(b, "type");
    json_t *o = json_object_get(json_object_get(b, "data"), "object");

    if (!type || strcmp(sget(b, "object") ? sget(b, "object") : "", "event") != 0)
        return ks_err_set(err, KS_EINVAL, 0, "type", "not a Stripe Event object");
    if (!json_is_object(o))
        return ks_err_set(err, KS_EINVAL, 0, "data.object", "the event has no data.object");
    if (strncmp(type, "payment_intent.", 15) == 0)
        return stripe_intent(type + 15, o, n, err);
    if ((strncmp(type, "refund.", 7) == 0 || strcmp(type, "charge.refund.updated") == 0) &&
        strcmp(sget(o, "object") ? sget(o, "object") : "", "refund") == 0)
        return stripe_refund(o, n, err);
    return none(n, "stripe event type %s carries no outcome", type);
}

/* --- Xendit (https://archive.developers.xendit.co/api-reference/): the fixed VA payment
 * callback ("callback_virtual_account_id", "payment_id", "external_id", "amount"), the
 * fixed VA created/updated callback (the VA object: "account_number", "status",
 * "expiration_date"), the QR code v1 callback ("event": "qr.payment", "qr_code"), the
 * disbursement callback ("external_id", "status" COMPLETED/FAILED, "failure_code").
 * Amounts are whole rupiah; the executor sends Kasir's ids as external_id. */

static enum ks_code xendit_common(json_t *b, const char *ext, const char *ext_field,
                                  const char *ref, const char *ref_field, struct wh_note *n,
                                  struct ks_err *err)
{
    const char *cur = sget(b, "currency");

    if (take_ref(n->reference, sizeof(n->reference), ext, ext_field,
                 "unknown_reference: the callback has no external_id", err) ||
        take_ref(n->psp_reference, sizeof(n->psp_reference), ref, ref_field,
                 "the callback has no id of Xendit's", err) ||
        take_currency(n, cur ? cur : "IDR", "currency", err))
        return err->code;
    return KS_OK;
}

/* "2024-05-01T10:00:00.000Z" before or at "2024-05-01T10:00:01.000Z": both written by
 * Xendit in one form, compared to the second */
static int iso_not_after(const char *a, const char *b)
{
    return a && b && strlen(a) >= 19 && strlen(b) >= 19 && strncmp(a, b, 19) <= 0;
}

static enum ks_code xendit_va(json_t *b, struct wh_note *n, struct ks_err *err)
{
    const char *st = sget(b, "status");
    json_t *expected = json_object_get(b, "expected_amount");

    if (!st)
        return ks_err_set(err, KS_EINVAL, 0, "status", "the virtual account has no status");
    if (strcmp(st, "ACTIVE") == 0) {
        n->status = WH_PENDING_CUSTOMER;
    } else if (strcmp(st, "INACTIVE") == 0 &&
               iso_not_after(sget(b, "expiration_date"), sget(b, "updated"))) {
        n->status = WH_EXPIRED;
        failure(n, "expired", "the virtual account expired unpaid");
    } else if (strcmp(st, "INACTIVE") == 0) {
        /* a single-use VA closes when paid; the payment callback tells that */
        return none(n, "xendit virtual account inactive before its expiration date%s", NULL);
    } else {
        return none(n, "xendit virtual account is %s", st);
    }
    n->kind = WH_CHARGE;
    if (xendit_common(b, sget(b, "external_id"), "external_id", sget(b, "id"), "id", n, err))
        return err->code;
    if (n->status == WH_PENDING_CUSTOMER) {
        next(n, "va_number", sget(b, "account_number"));
        next(n, "bank_code", sget(b, "bank_code"));
        next(n, "expires_at", sget(b, "expiration_date"));
    }
    return expected ? take_whole(n, expected, "expected_amount", err) : KS_OK;
}

static enum ks_code parse_xendit(json_t *b, struct wh_note *n, struct ks_err *err)
{
    const char *st = sget(b, "status"), *ev = sget(b, "event");

    if (json_object_get(b, "callback_virtual_account_id") && json_object_get(b, "payment_id")) {
        n->kind = WH_CHARGE;
        n->status = WH_SUCCEEDED;
        if (xendit_common(b, sget(b, "external_id"), "external_id",
                          sget(b, "callback_virtual_account_id"), "callback_virtual_account_id",
                          n, err))
            return err->code;
        return take_whole(n, json_object_get(b, "amount"), "amount", err);
    }
    if (ev && strcmp(ev, "qr.payment") == 0) {
        json_t *qr = json_object_get(b, "qr_code");
        if (!st || strcmp(st, "COMPLETED") != 0)
            return none(n, "xendit qr.payment is %s, not COMPLETED", st ? st : "without status");
        n->kind = WH_CHARGE;
        n->status = WH_SUCCEEDED;
        if (xendit_common(b, sget(qr, "external_id"), "qr_code.external_id", sget(qr, "id"),
                          "qr_code.id", n, err))
            return err->code;
        return take_whole(n, json_object_get(b, "amount"), "amount", err);
    }
    if (json_object_get(b, "disbursement_description") ||
        (json_object_get(b, "account_holder_name") && json_object_get(b, "user_id"))) {
        if (!st)
            return ks_err_set(err, KS_EINVAL, 0, "status", "the disbursement has no status");
        if (strcmp(st, "COMPLETED") == 0) {
            n->status = WH_PAID_OUT;
        } else if (strcmp(st, "FAILED") == 0) {
            n->status = WH_FAILED;
            failure(n, sget(b, "failure_code") ? sget(b, "failure_code") : "FAILED", NULL);
        } else {
            return none(n, "xendit disbursement is %s, not final", st);
        }
        n->kind = WH_PAYOUT;
        if (xendit_common(b, sget(b, "external_id"), "external_id", sget(b, "id"), "id", n, err))
            return err->code;
        return take_whole(n, json_object_get(b, "amount"), "amount", err);
    }
    if (json_object_get(b, "account_number") && json_object_get(b, "owner_id"))
        return xendit_va(b, n, err);
    return none(n, "not a xendit callback kasir reads (virtual account, QR code, "
                   "disbursement)%s", NULL);
}

/* --- Midtrans HTTP notification (https://docs.midtrans.com/docs/https-notification-webhooks,
 * statuses https://docs.midtrans.com/reference/code-statuses). Only order_id, status_code
 * and gross_amount are signed (signature_key): transaction_status must agree with the
 * signed status_code, else the body may have been altered. The executor sends Kasir's
 * order id as order_id. */

/* "2024-05-01 17:00:00" in GMT+7, as Midtrans writes times, to RFC 3339 UTC */
static void midtrans_time(const char *s, char *out, size_t cap)
{
    struct tm tm = {0};
    time_t t;

    out[0] = '\0';
    if (!s || sscanf(s, "%4d-%2d-%2d %2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                     &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
        return;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    t = timegm(&tm) - 7 * 3600;
    if (gmtime_r(&t, &tm))
        strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static const struct mt_status {
    const char *status;
    const char *codes; /* the status_code values it may be signed with */
    int kind;          /* WH_CHARGE, or WH_NONE: nothing reported */
    enum wh_status to;
} mt_statuses[] = {
    {"settlement", "200", WH_CHARGE, WH_SUCCEEDED},
    {"capture", "200", WH_CHARGE, WH_SUCCEEDED},
    {"pending", "201", WH_CHARGE, WH_PENDING_CUSTOMER},
    {"deny", "202", WH_CHARGE, WH_FAILED},
    {"cancel", "200,202", WH_CHARGE, WH_FAILED},
    {"failure", "202", WH_CHARGE, WH_FAILED},
    {"expire", "202,407", WH_CHARGE, WH_EXPIRED},
    /* a refund notification names no refund of Kasir's (it has no refund_key in every
     * form): the executor reports Midtrans refunds from the refund call's answer */
    {"refund", "200", WH_NONE, WH_REFUNDED},
    {"partial_refund", "200", WH_NONE, WH_REFUNDED},
    {"authorize", "200", WH_NONE, WH_PENDING_CUSTOMER},
};

static int code_in(const char *code, const char *list)
{
    size_t n = strlen(code);

    for (const char *p = list; *p; p += strcspn(p, ",") + (p[strcspn(p, ",")] == ',')) {
        if (strncmp(p, code, n) == 0 && (p[n] == ',' || p[n] == '\0'))
            return 1;
    }
    return 0;
}

static enum ks_code parse_midtrans(json_t *b, struct wh_note *n, struct ks_err *err)
{
    const char *st = sget(b, "transaction_status"), *code = sget(b, "status_code");
    const char *cur = sget(b, "currency");
    const struct mt_status *m = NULL;
    json_t *va = json_array_get(json_object_get(b, "va_numbers"), 0);
    char t[32];

    if (!st || !code || !*code)
        return ks_err_set(err, KS_EINVAL, 0, st ? "status_code" : "transaction_status",
                          "%s is missing", st ? "status_code" : "transaction_status");
    for (size_t i = 0; i < sizeof(mt_statuses) / sizeof(mt_statuses[0]); i++)
        if (strcmp(mt_statuses[i].status, st) == 0)
            m = &mt_statuses[i];
    if (!m)
        return ks_err_set(err, KS_EINVAL, 0, "transaction_status",
                          "unknown transaction_status %.40s", st);
    if (!code_in(code, m->codes))
        return ks_err_set(err, KS_EINVAL, 0, "status_code",
                          "status_code_mismatch: transaction_status %s is signed with "
                          "status_code %s, got %.8s", st, m->codes, code);
    snprintf(n->key_suffix, sizeof(n->key_suffix), ":%.40s", st);
    if (m->kind == WH_NONE)
        return none(n, "midtrans %s: reported by the executor, not by notification", st);
    if (strcmp(st, "capture") == 0 && sget(b, "fraud_status") &&
        strcmp(sget(b, "fraud_status"), "accept") != 0)
        return none(n, "midtrans capture with fraud_status %s waits for a decision",
                    sget(b, "fraud_status"));
    n->kind = WH_CHARGE;
    n->status = m->to;
    if (n->status == WH_FAILED || n->status == WH_EXPIRED)
        failure(n, st, sget(b, "status_message"));
    if (take_ref(n->reference, sizeof(n->reference), sget(b, "order_id"), "order_id",
                 "unknown_reference: the notification has no order_id", err) ||
        take_ref(n->psp_reference, sizeof(n->psp_reference), sget(b, "order_id"), "order_id",
                 "order_id is missing", err) ||
        take_currency(n, cur ? cur : "IDR", "currency", err) ||
        take_decimal(n, sget(b, "gross_amount"), "gross_amount", err))
        return err->code;
    if (n->status == WH_PENDING_CUSTOMER) {
        next(n, "va_number", va ? sget(va, "va_number") : sget(b, "permata_va_number"));
        next(n, "bank_code", va ? sget(va, "bank") : sget(b, "permata_va_number") ? "permata"
                                                                                   : NULL);
        next(n, "qr_string", sget(b, "qr_string"));
        midtrans_time(sget(b, "expiry_time"), t, sizeof(t));
        next(n, "expires_at", t);
    }
    return KS_OK;
}

/* --- the sandbox's own API (deploy/psp-sandbox/README.md "Webhooks"): {"type",
 * "created_at", "data"}, data a charge, refund or payout with Kasir's id as "reference"
 * and a decimal-string "amount" with its "currency". */

static const struct sb_type {
    const char *type;
    enum wh_kind kind;
    enum wh_status to;
} sb_types[] = {
    {"charge.pending", WH_CHARGE, WH_PENDING_CUSTOMER},
    {"charge.succeeded", WH_CHARGE, WH_SUCCEEDED},
    {"charge.failed", WH_CHARGE, WH_FAILED},
    {"charge.expired", WH_CHARGE, WH_EXPIRED},
    {"refund.succeeded", WH_REFUND, WH_REFUNDED},
    {"refund.failed", WH_REFUND, WH_FAILED},
    {"payout.paid", WH_PAYOUT, WH_PAID_OUT},
    {"payout.failed", WH_PAYOUT, WH_FAILED},
};

static enum ks_code parse_sandbox(json_t *b, struct wh_note *n, struct ks_err *err)
{
    const char *type = sget(b, "type");
    json_t *d = json_object_get(b, "data"), *na;
    const struct sb_type *t = NULL;

    if (!type)
        return ks_err_set(err, KS_EINVAL, 0, "type", "the event has no type");
    if (!json_is_object(d))
        return ks_err_set(err, KS_EINVAL, 0, "data", "the event has no data object");
    for (size_t i = 0; i < sizeof(sb_types) / sizeof(sb_types[0]); i++)
        if (strcmp(sb_types[i].type, type) == 0)
            t = &sb_types[i];
    if (!t)
        return none(n, "sandbox event type %s carries no outcome", type);
    n->kind = t->kind;
    n->status = t->to;
    if (n->status == WH_FAILED || n->status == WH_EXPIRED)
        failure(n, sget(d, "failure_code") ? sget(d, "failure_code")
                                           : n->status == WH_EXPIRED ? "expired" : "failed",
                sget(d, "failure_message"));
    if (take_ref(n->reference, sizeof(n->reference), sget(d, "reference"), "data.reference",
                 "unknown_reference: the event has no data.reference", err) ||
        take_ref(n->psp_reference, sizeof(n->psp_reference), sget(d, "id"), "data.id",
                 "data.id is missing", err) ||
        take_currency(n, sget(d, "currency"), "data.currency", err) ||
        take_decimal(n, sget(d, "amount"), "data.amount", err))
        return err->code;
    na = json_object_get(d, "next_action");
    if (n->status == WH_PENDING_CUSTOMER && json_is_object(na)) {
        next(n, "va_number", sget(na, "va_number"));
        next(n, "bank_code", sget(na, "bank_code"));
        next(n, "qr_string", sget(na, "qr_string"));
        next(n, "redirect_url", sget(na, "url"));
        next(n, "expires_at", sget(na, "expires_at"));
    }
    return KS_OK;
}

int wh_verification_ok(const char *psp, const char *verification)
{
    static const char *const schemes[][2] = {
        {"stripe", "stripe-signature"},
        {"xendit", "xendit-callback-token"},
        {"midtrans", "midtrans-signature-key"},
        {"sandbox", "standard-webhooks"},
        {"iris", "iris-signature"},
    };
    for (size_t i = 0; psp && verification && i < sizeof(schemes) / sizeof(schemes[0]); i++)
        if (strcmp(schemes[i][0], psp) == 0)
            return strcmp(schemes[i][1], verification) == 0;
    return 0;
}

enum ks_code wh_parse(const char *psp, const void *body, size_t len, struct wh_note *note,
                      struct ks_err *err)
{
    json_error_t je;
    json_t *b;
    enum ks_code rc;

    memset(note, 0, sizeof(*note));
    if (strcmp(psp, "iris") == 0)
        return ks_err_set(err, KS_EINVAL, 0, "reference_no",
                          "unknown_reference: an Iris notification names only Iris' "
                          "reference_no, which kasir-webhooks cannot map to a payout");
    if (strcmp(psp, "stripe") != 0 && strcmp(psp, "xendit") != 0 &&
        strcmp(psp, "midtrans") != 0 && strcmp(psp, "sandbox") != 0)
        return ks_err_set(err, KS_EINVAL, 0, "psp", "no parser for psp %.40s", psp);
    b = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(b)) {
        json_decref(b);
        return ks_err_set(err, KS_EINVAL, 0, "body", "the body is not a JSON object (%.100s)",
                          je.text);
    }
    rc = strcmp(psp, "stripe") == 0     ? parse_stripe(b, note, err)
         : strcmp(psp, "xendit") == 0   ? parse_xendit(b, note, err)
         : strcmp(psp, "midtrans") == 0 ? parse_midtrans(b, note, err)
                                        : parse_sandbox(b, note, err);
    json_decref(b);
    return rc;
}
