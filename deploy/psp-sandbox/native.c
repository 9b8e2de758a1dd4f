/* native.c - the sandbox's own PSP API (/sandbox/v1/...), for Kasir's "sandbox" adapter.
 *
 * Kasir-style JSON (decimal-string amounts with an ISO 4217 currency, snake_case), Bearer
 * auth with sandbox.api_key, an Idempotency-Key header as the IETF draft has it (same key
 * and body: the stored answer with Idempotent-Replayed; another body: 422), and Standard
 * Webhooks (webhook-id, webhook-timestamp, webhook-signature), which the ingress verifies
 * on POST /v1/webhooks/sandbox.
 *
 *   POST /sandbox/v1/charges   {reference, amount, currency, method, payment_token?,
 *                               bank_code?, ewallet_channel?}  card: succeeded|failed at
 *                               once; virtual_account, qris, ewallet, bank_transfer: pending
 *                               with next_action until paid or expired (/_sandbox/events)
 *   GET  /sandbox/v1/charges/{id}, GET /sandbox/v1/charges?reference=
 *   POST /sandbox/v1/refunds   {charge, amount?, reference}
 *   POST /sandbox/v1/payouts   {reference, amount, currency, bank_code, account_number,
 *                               account_name}  pending, then paid|failed after payout.delay
 *   GET  /sandbox/v1/refunds/{id}, /sandbox/v1/payouts/{id} */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deploy/psp-sandbox/sandbox.h"
#include "lib/money.h"
#include "lib/banned.h"

static void fail(struct sb_resp *r, int status, const char *code, const char *field,
                 const char *msg)
{
    sb_respond_json(r, status, json_pack("{s:{s:s, s:s?, s:s}}", "error", "code", code,
                                         "field", field, "message", msg));
}

static const char *str(json_t *b, const char *k)
{
    return json_string_value(json_object_get(b, k));
}

/* amount + currency of b into m; 0, or -1 with r filled */
static int money(json_t *b, struct ks_money *m, struct sb_resp *r)
{
    struct ks_err e = {0};
    const char *cur = str(b, "currency"), *amt = str(b, "amount");

    if (!cur || !amt) {
        fail(r, 400, "field_missing", !cur ? "currency" : "amount", "amount and currency are required");
        return -1;
    }
    if (ks_money_parse(amt, cur, "amount", m, &e) != KS_OK ||
        ks_money_check_bounds(m, "amount", &e) != KS_OK) {
        fail(r, 400, "amount_invalid", "amount", e.msg);
        return -1;
    }
    return 0;
}

static const char *const methods[] = {"card", "virtual_account", "qris", "ewallet",
                                      "bank_transfer", NULL};
static const char *const event_types[] = {"charge.pending", "charge.succeeded", "charge.failed",
                                          "charge.expired", "refund.succeeded", "payout.paid",
                                          "payout.failed", NULL};

static int listed(const char *const *names, const char *s, size_t n)
{
    for (; *names; names++)
        if (strlen(*names) == n && strncmp(*names, s, n) == 0)
            return 1;
    return 0;
}

/* The next entry of a webhook.sandbox_events list at *p: its type (t, tn) and method (m, mn;
 * NULL without one); advances *p; 0 at the end of the list. */
static int next_entry(const char **p, const char **t, size_t *tn, const char **m, size_t *mn)
{
    size_t n;
    const char *colon;

    while (**p == ' ' || **p == ',')
        (*p)++;
    if (!**p)
        return 0;
    n = strcspn(*p, ", ");
    colon = memchr(*p, ':', n);
    *t = *p;
    *tn = colon ? (size_t)(colon - *p) : n;
    *m = colon ? colon + 1 : NULL;
    *mn = colon ? n - *tn - 1 : 0;
    *p += n;
    return 1;
}

/* Whether the endpoint's subscription (webhook.sandbox_events) takes events of this type for
 * an object of this method (NULL: none, as refunds and payouts). A PSP that lets the merchant
 * choose its events sends only those, so a card charge confirmed in the API's answer need not
 * be announced a second time. */
static int subscribed(const char *type, const char *method)
{
    const char *p = SB.native_events, *t, *m;
    size_t tn, mn;

    while (next_entry(&p, &t, &tn, &m, &mn))
        if ((tn == 1 && *t == '*') ||
            (strlen(type) == tn && strncmp(type, t, tn) == 0 &&
             (!m || (method && strlen(method) == mn && strncmp(method, m, mn) == 0))))
            return 1;
    return 0;
}

int sb_native_events_check(const char *list, char *msg, size_t cap)
{
    const char *p = list ? list : "", *t, *m;
    size_t tn, mn, n = 0;

    while (next_entry(&p, &t, &tn, &m, &mn))
        if (++n, !(tn == 1 && *t == '*' && !m) &&
            (!listed(event_types, t, tn) ||
             (m && (strncmp(t, "charge.", 7) != 0 || !listed(methods, m, mn))))) {
            snprintf(msg, cap, "webhook.sandbox_events: unknown entry \"%.*s\" (a type such as "
                     "charge.succeeded, a charge's type:method such as charge.succeeded:qris, "
                     "or *)", (int)(p - t > 60 ? 60 : p - t), t);
            return -1;
        }
    /* a subscription to nothing would leave every VA, QRIS and e-wallet payment pending
     * for good, while the sandbox's own record shows it paid */
    if (n == 0) {
        snprintf(msg, cap, "webhook.sandbox_events: no entry (a list such as "
                 "charge.succeeded:qris,payout.paid, or * for every event)");
        return -1;
    }
    return 0;
}

static void hook(const char *type, json_t *obj, const struct sb_hook_opts *o, int order)
{
    json_t *ev = json_pack("{s:s, s:I, s:O}", "type", type, "created_at",
                           (json_int_t)(sb_now_us() / 1000000), "data", obj);
    /* not subscribed: nothing is sent, a state change the event carries still applies */
    const char *url = subscribed(type, json_string_value(json_object_get(obj, "method"))) ? NULL : "";

    sb_hook_emit("sandbox", type, json_string_value(json_object_get(obj, "id")), url, ev, o,
                 order);
    json_decref(ev);
}

static void set_amount(json_t *o, const char *name, int64_t minor, const char *cur)
{
    char buf[40];

    sb_amount_str(minor, cur, buf, sizeof(buf));
    json_object_set_new(o, name, json_string(buf));
}

static void create_charge(const struct sb_call *c, json_t *b, const char *key, struct sb_resp *r)
{
    struct ks_money m;
    const char *ref = str(b, "reference"), *method = str(b, "method"), *tok = str(b, "payment_token");
    json_t *ch;
    char id[48], ts[40], na[200];

    if (!ref || !*ref || strlen(ref) > 100) {
        fail(r, 400, "field_missing", "reference", "reference is required (1-100 characters)");
        return;
    }
    if (!method || !listed(methods, method, strlen(method))) {
        fail(r, 400, "field_invalid", "method",
             "method must be card, virtual_account, qris, ewallet or bank_transfer");
        return;
    }
    if (money(b, &m, r) != 0)
        return;
    if (strcmp(method, "card") == 0 && !tok) {
        fail(r, 400, "field_missing", "payment_token", "a card charge needs payment_token");
        return;
    }
    sb_new_id("sbch_", id, sizeof(id));
    sb_time_iso(sb_now_us(), 1, ts, sizeof(ts));
    ch = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s?}", "id", id, "object", "charge",
                   "reference", ref, "currency", m.currency, "method", method, "created_at", ts,
                   "idempotency_key", key);
    set_amount(ch, "amount", m.minor, m.currency);
    if (strcmp(method, "card") == 0) {
        int declined = c->force_decline || strncmp(tok, "tok_decline", 11) == 0;
        json_object_set_new(ch, "status", json_string(declined ? "failed" : "succeeded"));
        if (declined)
            json_object_set_new(ch, "failure_code", json_string("card_declined"));
        else
            sb_ledger_add("sandbox", "charge", id, ref, key, m.minor, m.currency, method);
        hook(declined ? "charge.failed" : "charge.succeeded", ch, NULL, 1);
    } else {
        json_t *act;
        sb_time_iso(sb_now_us() + (int64_t)86400 * 1000000, 0, ts, sizeof(ts));
        if (strcmp(method, "qris") == 0) {
            snprintf(na, sizeof(na), "00020101021226590013ID.KASIR.WWW0118%.18s5204599953033605802ID6304ABCD",
                     id + 5);
            act = json_pack("{s:s, s:s, s:s}", "type", "qr", "qr_string", na, "expires_at", ts);
        } else if (strcmp(method, "ewallet") == 0) {
            snprintf(na, sizeof(na), "https://sandbox.kasir.invalid/pay/%s", id);
            act = json_pack("{s:s, s:s, s:s}", "type", "redirect", "url", na, "expires_at", ts);
        } else {
            snprintf(na, sizeof(na), "8808%.12s", id + 5);
            for (char *p = na; *p; p++)
                if (*p < '0' || *p > '9')
                    *p = (char)('0' + (unsigned char)*p % 10);
            act = json_pack("{s:s, s:s, s:s, s:s}", "type", "virtual_account", "bank_code",
                            str(b, "bank_code") ? str(b, "bank_code") : "BCA", "va_number", na,
                            "expires_at", ts);
        }
        json_object_set_new(ch, "status", json_string(c->force_decline ? "failed" : "pending"));
        if (c->force_decline)
            json_object_set_new(ch, "failure_code", json_string("declined"));
        else
            json_object_set_new(ch, "next_action", act);
        if (c->force_decline)
            json_decref(act);
        hook(c->force_decline ? "charge.failed" : "charge.pending", ch, NULL, 0);
    }
    sb_obj_put("sandbox_charge", id, json_incref(ch));
    sb_ref_put("sandbox_charge_ref", ref, id);
    sb_respond_json(r, 201, ch);
}

static void create_refund(json_t *b, const char *key, struct sb_resp *r)
{
    const char *cid = str(b, "charge"), *ref = str(b, "reference");
    json_t *ch = sb_obj_get("sandbox_charge", cid), *re;
    struct ks_money total, m;
    struct ks_err e = {0};
    int64_t done;
    char id[48], ts[40];

    if (!ch) {
        fail(r, 404, "charge_not_found", "charge", "no such charge");
        return;
    }
    if (!ref || !*ref) {
        fail(r, 400, "field_missing", "reference", "reference is required");
        return;
    }
    if (strcmp(str(ch, "status"), "succeeded") != 0) {
        fail(r, 409, "charge_not_refundable", "charge", "only a succeeded charge can be refunded");
        return;
    }
    if (ks_money_parse(str(ch, "amount"), str(ch, "currency"), "amount", &total, &e) != KS_OK) {
        fail(r, 500, "internal", NULL, "stored amount unreadable");
        return;
    }
    done = sb_ledger_refunded("sandbox", cid);
    m = total;
    m.minor = total.minor - done;
    if (str(b, "amount") && (ks_money_parse(str(b, "amount"), total.currency, "amount", &m, &e) != KS_OK ||
                             m.minor <= 0)) {
        fail(r, 400, "amount_invalid", "amount", e.msg[0] ? e.msg : "amount must be positive");
        return;
    }
    if (m.minor <= 0 || m.minor > total.minor - done) {
        fail(r, 409, "refund_exceeds_charge", "amount",
             "the refund is more than what is left of the charge");
        return;
    }
    sb_new_id("sbre_", id, sizeof(id));
    sb_time_iso(sb_now_us(), 1, ts, sizeof(ts));
    re = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s?}", "id", id, "object", "refund", "charge",
                   cid, "reference", ref, "currency", total.currency, "status", "succeeded",
                   "idempotency_key", key);
    set_amount(re, "amount", m.minor, total.currency);
    json_object_set_new(re, "created_at", json_string(ts));
    sb_ledger_add_refund("sandbox", cid, id, ref, key, m.minor, total.currency,
                         str(ch, "method"));
    sb_obj_put("sandbox_refund", id, json_incref(re));
    hook("refund.succeeded", re, NULL, 0);
    sb_respond_json(r, 201, re);
}

static void create_payout(const struct sb_call *c, json_t *b, const char *key, struct sb_resp *r)
{
    struct ks_money m;
    const char *ref = str(b, "reference");
    json_t *po, *fin;
    char id[48], ts[40];

    if (!ref || !*ref || !str(b, "bank_code") || !str(b, "account_number") ||
        !str(b, "account_name")) {
        fail(r, 400, "field_missing", !ref || !*ref ? "reference" : !str(b, "bank_code") ? "bank_code"
                                      : !str(b, "account_number") ? "account_number" : "account_name",
             "reference, bank_code, account_number and account_name are required");
        return;
    }
    if (money(b, &m, r) != 0)
        return;
    sb_new_id("sbpo_", id, sizeof(id));
    sb_time_iso(sb_now_us(), 1, ts, sizeof(ts));
    po = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s?}", "id", id, "object", "payout",
                   "reference", ref, "currency", m.currency, "bank_code", str(b, "bank_code"),
                   "status", "pending", "created_at", ts, "idempotency_key", key);
    set_amount(po, "amount", m.minor, m.currency);
    fin = json_deep_copy(po);
    json_object_set_new(fin, "status", json_string(c->force_decline ? "failed" : "paid"));
    if (c->force_decline)
        json_object_set_new(fin, "failure_code", json_string("account_invalid"));
    else
        sb_ledger_add("sandbox", "payout", id, ref, key, m.minor, m.currency, "bank_transfer");
    sb_obj_put("sandbox_payout", id, json_incref(po));
    sb_obj_put("sandbox_payout.final", id, json_incref(fin));
    {
        json_t *ev = json_pack("{s:s, s:I, s:o}", "type",
                               c->force_decline ? "payout.failed" : "payout.paid", "created_at",
                               (json_int_t)(sb_now_us() / 1000000), "data", fin);
        const char *type = json_string_value(json_object_get(ev, "type"));
        sb_hook_emit("sandbox", type, id, subscribed(type, NULL) ? NULL : "", ev,
                     &(struct sb_hook_opts){.delay_ms = SB.payout_delay_ms,
                                            .apply_kind = "sandbox_payout"}, 1);
        json_decref(ev);
    }
    sb_respond_json(r, 201, po);
}

int sb_native_event(const char *what, const char *id, const struct sb_hook_opts *o, char *msg,
                    size_t cap)
{
    const char *cid = sb_ref_get("sandbox_charge_ref", id);
    json_t *ch = sb_obj_get("sandbox_charge", cid ? cid : id), *stale;
    int paid = strcmp(what, "paid") == 0;

    if (!ch || strcmp(str(ch, "status"), "pending") != 0) {
        snprintf(msg, cap, "no pending sandbox charge with id or reference %s", id);
        return -1;
    }
    if (!paid && strcmp(what, "expire") != 0) {
        snprintf(msg, cap, "sandbox events: paid, expire");
        return -1;
    }
    stale = json_deep_copy(ch);
    json_object_set_new(ch, "status", json_string(paid ? "succeeded" : "expired"));
    json_object_del(ch, "next_action");
    if (paid) {
        struct ks_money m;
        struct ks_err e = {0};
        if (ks_money_parse(str(ch, "amount"), str(ch, "currency"), "amount", &m, &e) == KS_OK)
            sb_ledger_add("sandbox", "charge", str(ch, "id"), str(ch, "reference"),
                          str(ch, "idempotency_key"), m.minor, m.currency, str(ch, "method"));
    }
    hook(paid ? "charge.succeeded" : "charge.expired", ch, o, 1);
    if (o && o->out_of_order) /* a stale "pending" after the final event */
        hook("charge.pending", stale, o, 0);
    json_decref(stale);
    return 0;
}

int sb_native_handle(const struct sb_call *c, struct sb_resp *r)
{
    char user[256], scope[400], fp[65];
    const char *key = sb_header(c, "Idempotency-Key");
    int post = strcmp(c->method, "POST") == 0;
    json_t *b = NULL, *obj;
    const char *p = c->path + 11; /* after "/sandbox/v1" */

    if (strncmp(c->path, "/sandbox/v1/", 12) != 0)
        return 0;
    sb_auth_user(sb_header(c, "Authorization"), user, sizeof(user));
    if (!*SB.native_key || strcmp(user, SB.native_key) != 0) {
        fail(r, 401, "unauthorized", NULL, "a valid Bearer API key is required");
        return 1;
    }
    if (post) {
        b = c->len ? json_loadb(c->body, c->len, JSON_REJECT_DUPLICATES, NULL) : NULL;
        if (!json_is_object(b)) {
            fail(r, 400, "body_invalid", NULL, "the body must be a JSON object");
            goto out;
        }
        if (key && (!*key || !sb_idem_key_ok(key))) {
            fail(r, 400, "idempotency_key_invalid", "Idempotency-Key",
                 "1 to 255 characters of UTF-8");
            goto out;
        }
        if (key) {
            switch (sb_idem_check("sandbox", user, key, c, b, scope, fp, r)) {
            case SB_IDEM_HIT:
                goto out;
            case SB_IDEM_MISMATCH:
                fail(r, 422, "idempotency_key_reused", "Idempotency-Key",
                     "this key was used with another request");
                goto out;
            case SB_IDEM_NEW:
                break;
            }
        }
    }
    if (post && strcmp(p, "/charges") == 0) {
        create_charge(c, b, key, r);
    } else if (post && strcmp(p, "/refunds") == 0) {
        create_refund(b, key, r);
    } else if (post && strcmp(p, "/payouts") == 0) {
        create_payout(c, b, key, r);
    } else if (!post && strcmp(p, "/charges") == 0 && sb_query(c, "reference")) {
        const char *cid = sb_ref_get("sandbox_charge_ref", sb_query(c, "reference"));
        obj = sb_obj_get("sandbox_charge", cid);
        sb_respond_json(r, 200, json_pack("{s:[O*]}", "data", obj));
    } else if (!post && strncmp(p, "/charges/", 9) == 0 &&
               (obj = sb_obj_get("sandbox_charge", p + 9)) != NULL) {
        sb_respond_json(r, 200, json_incref(obj));
    } else if (!post && strncmp(p, "/refunds/", 9) == 0 &&
               (obj = sb_obj_get("sandbox_refund", p + 9)) != NULL) {
        sb_respond_json(r, 200, json_incref(obj));
    } else if (!post && strncmp(p, "/payouts/", 9) == 0 &&
               (obj = sb_obj_get("sandbox_payout", p + 9)) != NULL) {
        sb_respond_json(r, 200, json_incref(obj));
    } else {
        fail(r, 404, "not_found", NULL, "no such object or endpoint");
    }
    if (post && key && r->status == 201)
        sb_idem_store(scope, fp, r);
out:
    json_decref(b);
    return 1;
}
