/* texts.c - every text a write produces: the claim and finish documents ingress_batch()
 * reads, the 202 bodies, and the events (payments, refunds, payouts, webhooks, settlement
 * rows). Pure: no I/O, no response set, no state of the request changed but the texts it
 * owns (row, payload, topic, msg_key, msg_id, the order ids). accept.c decides when each
 * is made; the writers and the producer only carry them.
 *
 * Ids are derived, never drawn here: order ids from the payment id, message ids from the
 * resource id (a retry of a write publishes the same message id, which dedups downstream).
 * Hot texts (claims, finishes, the payment's 202 and rows) go straight to JSON text
 * (lib/jsonw.h); events are trees, because the Avro encoder reads one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/crypto.h"
#include "lib/log.h"
#include "lib/money.h"
#include "lib/serde.h"
#include "producers/ingress/ingress.h"
#include "lib/banned.h"

void ing_sha256_hex(const void *d, size_t n, char out[65])
{
    uint8_t h[KS_SHA256_LEN];
    ks_sha256(d, n, h);
    ks_hex_encode(h, sizeof(h), out);
}

static json_t *jstr_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

void ing_amount_fmt(int64_t minor, const char *cur, char buf[KS_MONEY_STRLEN])
{
    struct ks_money m;

    m.minor = minor;
    snprintf(m.currency, sizeof(m.currency), "%s", cur);
    ks_money_format(&m, buf, KS_MONEY_STRLEN);
}

static json_t *amount_str(int64_t minor, const char *cur)
{
    char buf[KS_MONEY_STRLEN];

    ing_amount_fmt(minor, cur, buf);
    return json_string(buf);
}

/* ing_amount_fmt as a JSON member */
static void jw_amount(struct ks_jw *w, const char *name, int64_t minor, const char *cur)
{
    char buf[KS_MONEY_STRLEN];

    ing_amount_fmt(minor, cur, buf);
    ks_jw_str(w, name, buf);
}

/* ev (taken) encoded with schema into *buf; 0, or -1 + p (500, logged) */
static int encode_to(const char *schema, json_t *ev, void **buf, size_t *len,
                     const char *trace_id, struct ing_problem *p)
{
    struct ks_err e = {0};
    const struct ks_schema *s = ks_schema_by_name(schema);

    if (!ev || !s || ks_serde_encode(s, ev, buf, len, &e) != KS_OK) {
        ks_log(KS_LOG_ERROR, "ingress.encode.failed", !ev ? "out of memory" : s ? e.msg
                                                                              : "schema missing",
               "schema", schema, "field", e.field, "trace_id", trace_id, NULL);
        ing_problem(p, "internal", NULL, "could not encode the event");
        json_decref(ev);
        return -1;
    }
    json_decref(ev);
    return 0;
}

static int encode(struct ing_req *r, const char *schema, json_t *ev, struct ing_problem *p)
{
    free(r->payload);
    r->payload = NULL;
    return encode_to(schema, ev, &r->payload, &r->payload_len, r->trace_id, p);
}

/* the id of r's i-th payment order, derived from the payment id and time-ordered with it */
static void order_id(const struct ing_req *r, size_t i, char oid[KS_ID_LEN])
{
    char idx[24];

    snprintf(idx, sizeof(idx), "%zu", i);
    ks_id_derive_after("ord", "payment-order", oid, r->rid, idx, NULL);
}

/* --- the documents of ingress_batch() -------------------------------------------------- */

char *ing_text_payment(struct ing_req *r, size_t *len)
{
    struct ing_payment *pay = &r->u.pay;
    struct ks_jw resp;
    size_t i;

    ks_jw_init(&resp, NULL, 0);
    ks_jw_open(&resp, NULL);
    ks_jw_str(&resp, "payment_id", r->rid);
    ks_jw_str(&resp, "status", "NOT_STARTED");
    ks_jw_str(&resp, "checkout_id", pay->checkout_id);
    ks_jw_open_array(&resp, "payment_orders");
    for (i = 0; i < pay->n_orders; i++) {
        struct ing_order *o = &pay->orders[i];
        order_id(r, i, o->oid); /* for the event too */

        ks_jw_open(&resp, NULL);
        ks_jw_str(&resp, "payment_order_id", o->oid);
        ks_jw_str(&resp, "seller_id", o->seller_id);
        jw_amount(&resp, "amount", o->amount.minor, o->amount.currency);
        ks_jw_str(&resp, "currency", o->amount.currency);
        ks_jw_str(&resp, "method", ing_method_api[o->method]);
        ks_jw_str(&resp, "status", "NOT_STARTED");
        ks_jw_close(&resp, '}');
    }
    ks_jw_close(&resp, ']');
    ks_jw_str(&resp, "trace_id", r->trace_id);
    ks_jw_close(&resp, '}');
    return ks_jw_take(&resp, len);
}

int ing_orders_from_answer(struct ing_req *r)
{
    struct ing_payment *pay = &r->u.pay;
    json_t *doc = r->resp ? json_loadb(r->resp, r->resp_len, 0, NULL) : NULL;
    json_t *orders = json_object_get(doc, "payment_orders");
    int rc = json_array_size(orders) == pay->n_orders ? 0 : -1;

    for (size_t i = 0; rc == 0 && i < pay->n_orders; i++) {
        const char *id = json_string_value(
            json_object_get(json_array_get(orders, i), "payment_order_id"));
        if (id && ks_id_valid(id, "ord")) /* "ord_" + 36: fits oid */
            snprintf(pay->orders[i].oid, sizeof(pay->orders[i].oid), "%s", id);
        else
            rc = -1;
    }
    json_decref(doc);
    return rc;
}

char *ing_text_claim(struct ing_req *r, int force)
{
    struct ks_jw w;

    ks_jw_init(&w, NULL, 0);
    ks_jw_open(&w, NULL);
    ks_jw_str(&w, "route", r->route_name);
    ks_jw_str(&w, "partner", r->partner_id);
    ks_jw_str(&w, "key", r->key_hash);
    ks_jw_str(&w, "fp", r->fp);
    ks_jw_str(&w, "rid", r->rid);
    if (r->route == R_PAY_POST) {
        /* the claim reserves the checkout and stores the answer (its bytes go beside
         * the documents, store.c's bodies); the payment and its orders are written by the
         * complete finish */
        ks_jw_str(&w, "checkout", r->u.pay.checkout_id);
        ks_jw_int(&w, "status", r->status);
    } else if (r->route == R_REFUND_POST) {
        const struct ing_refund *rf = &r->u.refund;
        ks_jw_str(&w, "order", rf->order_id);
        if (rf->reason)
            ks_jw_str(&w, "reason", rf->reason);
        if (rf->has_amount) { /* its currency known by now (accept.c) */
            ks_jw_int(&w, "amt", rf->amount.minor);
            ks_jw_str(&w, "cur", rf->amount.currency);
        }
    } else {
        const struct ing_payout *po = &r->u.payout;
        ks_jw_str(&w, "seller", po->seller_id);
        ks_jw_int(&w, "amt", po->amount.minor);
        ks_jw_str(&w, "cur", po->amount.currency);
        ks_jw_str(&w, "channel", po->channel);
        /* absent optional members are left out, as ingress_batch reads them with ->> */
        if (po->bank_code)
            ks_jw_str(&w, "bank", po->bank_code);
        if (po->ewallet)
            ks_jw_str(&w, "ewallet", po->ewallet);
        ks_jw_str(&w, "dest", po->destination);
        if (po->holder)
            ks_jw_str(&w, "holder", po->holder);
        if (po->description)
            ks_jw_str(&w, "desc", po->description);
    }
    if (force)
        ks_jw_json(&w, "force", "true");
    ks_jw_close(&w, '}');
    return ks_jw_take(&w, NULL);
}

char *ing_text_finish(struct ing_req *r, int complete)
{
    struct ks_jw w;
    char stack[1024];

    ks_jw_init(&w, stack, sizeof(stack));
    ks_jw_open(&w, NULL);
    ks_jw_str(&w, "op", complete ? "complete" : "release");
    ks_jw_str(&w, "partner", r->partner_id);
    ks_jw_str(&w, "key", r->key_hash);
    ks_jw_str(&w, "route", r->route_name);
    ks_jw_str(&w, "rid", r->rid);
    /* a payment's answer was stored by its claim (a payment's finish is only ever a
     * release); a refund's or payout's is stored now */
    if (complete && r->route != R_PAY_POST) {
        ks_jw_b64(&w, "body", r->resp, r->resp_len);
        ks_jw_int(&w, "status", r->status);
        ks_jw_json(&w, "store", "true");
    }
    ks_jw_close(&w, '}');
    return ks_jw_take(&w, NULL);
}

/* --- events and 202s of claimed writes ------------------------------------------------- */

static int payment_event(struct ing_req *r, struct ing_problem *p)
{
    const struct ing_payment *pay = &r->u.pay;
    json_t *ev = json_object(), *orders = json_array();
    size_t i;

    ks_id_derive("msg", "kasir.payments.requested", r->msg_id, r->rid, NULL);
    for (i = 0; i < pay->n_orders; i++) {
        const struct ing_order *o = &pay->orders[i];
        json_t *jo = json_object();
        /* ing_text_payment's, or a resumed claim's stored answer's (ing_orders_from_answer) */
        json_object_set_new(jo, "order_id", json_string(o->oid));
        json_object_set_new(jo, "seller_id", json_string(o->seller_id));
        json_object_set_new(jo, "amount_minor", json_integer(o->amount.minor));
        json_object_set_new(jo, "currency", json_string(o->amount.currency));
        json_object_set_new(jo, "method", json_string(ing_method_avro[o->method]));
        json_object_set_new(jo, "psp_preference", jstr_or_null(o->psp));
        json_object_set_new(jo, "payment_token", jstr_or_null(o->payment_token));
        json_object_set_new(jo, "bank_code", jstr_or_null(o->bank_code));
        json_object_set_new(jo, "ewallet_channel", jstr_or_null(o->ewallet));
        json_array_append_new(orders, jo);
    }
    json_object_set_new(ev, "message_id", json_string(r->msg_id));
    json_object_set_new(ev, "occurred_at", json_integer(ks_clock_wall_us()));
    json_object_set_new(ev, "partner_id", json_string(r->partner_id));
    json_object_set_new(ev, "payment_id", json_string(r->rid));
    json_object_set_new(ev, "buyer_id", json_string(pay->buyer_id));
    json_object_set_new(ev, "checkout_id", json_string(pay->checkout_id));
    json_object_set_new(ev, "idempotency_key_hash", json_string(r->key_hash));
    json_object_set_new(ev, "orders", orders);
    json_object_set(ev, "metadata", pay->metadata ? pay->metadata : json_object());
    if (!pay->metadata)
        json_decref(json_object_get(ev, "metadata")); /* the fresh object's own reference */
    r->topic = "kasir.payments.requested";
    snprintf(r->msg_key, sizeof(r->msg_key), "%s", pay->buyer_id);
    return encode(r, "kasir.payments.PaymentRequested", ev, p);
}

/* res: the claim's outcome, which says what the refund took (payment, amount, currency) */
static json_t *refund_texts(struct ing_req *r, json_t *res, struct ing_problem *p)
{
    const char *pid = json_string_value(json_object_get(res, "payment_id"));
    const char *cur = json_string_value(json_object_get(res, "currency"));
    json_int_t amt = json_integer_value(json_object_get(res, "amount_minor"));
    json_t *ev, *resp;

    if (!pid || !cur || amt <= 0) {
        ing_problem(p, "internal", NULL, "refund claim returned no order data");
        return NULL;
    }
    ev = json_object();
    ks_id_derive("msg", "kasir.refunds.requested", r->msg_id, r->rid, NULL);
    json_object_set_new(ev, "message_id", json_string(r->msg_id));
    json_object_set_new(ev, "occurred_at", json_integer(ks_clock_wall_us()));
    json_object_set_new(ev, "partner_id", json_string(r->partner_id));
    json_object_set_new(ev, "refund_id", json_string(r->rid));
    json_object_set_new(ev, "payment_id", json_string(pid));
    json_object_set_new(ev, "order_id", json_string(r->u.refund.order_id));
    json_object_set_new(ev, "amount_minor", json_integer(amt));
    json_object_set_new(ev, "currency", json_string(cur));
    json_object_set_new(ev, "reason", jstr_or_null(r->u.refund.reason));
    r->topic = "kasir.refunds.requested";
    snprintf(r->msg_key, sizeof(r->msg_key), "%s", r->u.refund.order_id);
    if (encode(r, "kasir.refunds.RefundRequested", ev, p) != 0)
        return NULL;

    resp = json_object();
    json_object_set_new(resp, "refund_id", json_string(r->rid));
    json_object_set_new(resp, "payment_id", json_string(pid));
    json_object_set_new(resp, "payment_order_id", json_string(r->u.refund.order_id));
    json_object_set_new(resp, "amount", amount_str(amt, cur));
    json_object_set_new(resp, "currency", json_string(cur));
    json_object_set_new(resp, "status", json_string("REQUESTED"));
    json_object_set_new(resp, "trace_id", json_string(r->trace_id));
    return resp;
}

int ing_payout_event(struct ing_req *r, const char *payout_id, const struct ing_payout *po,
                     struct ing_problem *p)
{
    json_t *ev = json_object();

    ks_id_derive("msg", "kasir.payouts.requested", r->msg_id, payout_id, NULL);
    json_object_set_new(ev, "message_id", json_string(r->msg_id));
    json_object_set_new(ev, "occurred_at", json_integer(ks_clock_wall_us()));
    json_object_set_new(ev, "partner_id", json_string(r->partner_id));
    json_object_set_new(ev, "payout_id", json_string(payout_id));
    json_object_set_new(ev, "seller_id", json_string(po->seller_id));
    json_object_set_new(ev, "amount_minor", json_integer(po->amount.minor));
    json_object_set_new(ev, "currency", json_string(po->amount.currency));
    json_object_set_new(ev, "channel", json_string(po->channel));
    json_object_set_new(ev, "bank_code", jstr_or_null(po->bank_code));
    json_object_set_new(ev, "ewallet_channel", jstr_or_null(po->ewallet));
    json_object_set_new(ev, "destination_account", json_string(po->destination));
    json_object_set_new(ev, "account_holder", jstr_or_null(po->holder));
    json_object_set_new(ev, "description", jstr_or_null(po->description));
    r->topic = "kasir.payouts.requested";
    /* a seller is the partner's: its wallet, and its messages' order, are (partner, seller) */
    snprintf(r->msg_key, sizeof(r->msg_key), "%s:%s", r->partner_id, po->seller_id);
    return encode(r, "kasir.payouts.PayoutRequested", ev, p);
}

static json_t *payout_texts(struct ing_req *r, struct ing_problem *p)
{
    const struct ing_payout *po = &r->u.payout;
    json_t *resp;

    if (ing_payout_event(r, r->rid, po, p) != 0)
        return NULL;
    resp = json_object();
    json_object_set_new(resp, "payout_id", json_string(r->rid));
    json_object_set_new(resp, "seller_id", json_string(po->seller_id));
    json_object_set_new(resp, "amount", amount_str(po->amount.minor, po->amount.currency));
    json_object_set_new(resp, "currency", json_string(po->amount.currency));
    json_object_set_new(resp, "channel", json_string(strcmp(po->channel, "EWALLET") == 0
                                                         ? "ewallet" : "bank_account"));
    json_object_set_new(resp, "status", json_string("REQUESTED"));
    json_object_set_new(resp, "trace_id", json_string(r->trace_id));
    return resp;
}

int ing_text_claimed(struct ing_req *r, json_t *res, json_t **accepted, struct ing_problem *p)
{
    *accepted = NULL;
    if (r->route == R_PAY_POST)
        return payment_event(r, p);
    *accepted = r->route == R_REFUND_POST ? refund_texts(r, res, p) : payout_texts(r, p);
    return *accepted ? 0 : -1;
}

/* --- events without an idempotency record ------------------------------------------------ */

int ing_text_webhook(struct ing_req *r, const struct ing_webhook_ev *w, struct ing_problem *p)
{
    char *b64 = malloc(ks_b64_enclen(r->len) + 1);
    json_t *ev;

    if (!b64) {
        json_decref(w->headers);
        ing_problem(p, "internal", NULL, "out of memory");
        return -1;
    }
    ks_b64_encode((const uint8_t *)r->body, r->len, b64);
    ks_id_derive("msg", "kasir.webhooks.received", r->msg_id, w->psp,
                 w->event_id ? w->event_id : w->webhook_id, NULL);
    snprintf(r->msg_key, sizeof(r->msg_key), "%s:%.140s", w->psp,
             w->event_id ? w->event_id : w->webhook_id);
    ev = json_pack("{s:s, s:I, s:s, s:s, s:o, s:I, s:o, s:s, s:s}", "message_id", r->msg_id,
                   "occurred_at", (json_int_t)ks_clock_wall_us(), "webhook_id", w->webhook_id,
                   "psp", w->psp, "event_id", w->event_id ? json_string(w->event_id) : json_null(),
                   "received_at", (json_int_t)(w->received_s * 1000000), "headers", w->headers,
                   "body", b64, "verification", w->verification);
    free(b64);
    r->topic = "kasir.webhooks.received";
    if (encode(r, "kasir.webhooks.WebhookReceived", ev, p) != 0) {
        ing_problem(p, "internal", NULL, "could not encode the notification");
        return -1;
    }
    return 0;
}

int ing_text_settle_row(const struct ing_req *r, const struct ing_settle_row *row,
                        char msg_id[KS_ID_LEN], void **buf, size_t *len)
{
    struct ing_problem p;
    char rn[24];
    json_t *ev;

    snprintf(rn, sizeof(rn), "%ld", row->line - 1);
    ks_id_derive("msg", "kasir.settlement.rows", msg_id, r->file_id, rn, NULL);
    ev = json_pack("{s:s, s:I, s:s, s:s, s:I, s:s, s:I, s:I, s:s, s:s, s:I, s:O}",
                   "message_id", msg_id, "occurred_at", (json_int_t)ks_clock_wall_us(), "file_id",
                   r->file_id, "psp", r->psp, "row_number", (json_int_t)(row->line - 1),
                   "psp_reference", row->reference, "amount_minor", (json_int_t)row->amount_minor,
                   "fee_minor", (json_int_t)row->fee_minor, "currency", row->currency, "status",
                   row->status, "settled_at", (json_int_t)row->settled_at_us, "raw", row->raw);
    return encode_to("kasir.settlement.SettlementRow", ev, buf, len, r->trace_id, &p);
}
