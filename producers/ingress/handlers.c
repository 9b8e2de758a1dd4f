/* handlers.c - the handlers of SPEC 4's partner and service endpoints (the route table,
 * routes.c, names them; the admin ones live in admin_*.c, balances.c, audit_export.c).
 *
 * Order of checks on every partner endpoint: authentication, scope, rate limit (all three
 * on the headers, before the body is read: http.c, auth.c), media type, body, idempotency
 * key; the first failure answers. A handler validates; writes then go to accept.c, which
 * answers them (payments, refunds and payouts through the idempotency record, webhooks and
 * settlement files straight from Kafka's delivery reports); reads leave suspended, queued
 * for a reader (reader.c). No handler waits for PostgreSQL or Kafka. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/crypto.h"
#include "lib/log.h"
#include "lib/money.h"
#include "lib/serde.h"
#include "lib/webhook.h"
#include "producers/ingress/ingress.h"
#include "lib/banned.h"

/* the OpenAPI document, embedded at build time (openapi.c) */
extern const char ing_openapi_json[];
extern const char ing_openapi_json_end[];

static int unavailable_if_down(struct ing_req *r)
{
    struct ing_problem p;

    if (ING.kafka_ok)
        return 0;
    ing_problem(&p, "unavailable", NULL, "kafka is unreachable; nothing was recorded");
    ing_respond_problem(r, &p);
    return 1;
}

/* --- idempotent writes (accept.c takes them from the claim on) ---------------------- */

void ing_pay_post(struct ing_req *r)
{
    struct ing_problem p;
    struct ing_payment *pay = &r->u.pay;

    if (!ing_media_is(r, "application/json", &p) ||
        ing_parse_payment(r->body, r->len, pay, &p) != 0)
        goto fail;
    r->parsed = pay->root;
    for (size_t i = 0; i < pay->n_orders; i++)
        if (pay->orders[i].psp && strcmp(pay->orders[i].psp, "sandbox") == 0 &&
            !ING.sandbox_enabled) {
            char f[64];
            snprintf(f, sizeof(f), "payment_orders[%zu].psp_preference", i);
            ing_problem(&p, "value_not_allowed", f,
                        "%s: the sandbox PSP is not enabled on this deployment (psp.sandbox)", f);
            goto fail;
        }
    if (ing_accept_prepare(r, "payments", pay->idempotency_key, "pay", &p) != 0)
        goto fail;
    ing_accept_claim(r, 0);
    return;
fail:
    ing_respond_problem(r, &p);
}

/* reader thread: the order's currency, then the amount in it, then the claim (r stays
 * suspended; the writer answers it) */
static void refund_currency_job(struct ing_req *r, struct ing_rdb *db)
{
    struct ing_refund *rf = &r->u.refund;
    const char *params[2] = {rf->order_id, r->partner_id};
    struct ing_problem p;
    struct ks_err e = {0};
    PGresult *res;

    res = ing_rdb_query(db, r,
                        "SELECT currency FROM payment_orders"
                        " WHERE order_id = $1 AND partner_id = $2",
                        2, params, &p);
    if (!res)
        goto fail;
    if (PQntuples(res) != 1) {
        /* an order of a payment this instance just answered: its row is on its way */
        if (ing_accept_park_read(r, rf->order_id, 1)) {
            PQclear(res);
            return;
        }
        ing_problem(&p, "not_found", "payment_order_id", "no accepted payment order with this id");
        goto fail;
    }
    r->park_read = 0; /* found: a park of its claim is a claim's */
    if (ks_money_parse(rf->amount_text, PQgetvalue(res, 0, 0), "amount", &rf->amount, &e) != KS_OK) {
        ing_problem(&p, "amount_invalid", "amount", "amount: %s (the order is in %s)", e.msg,
                    PQgetvalue(res, 0, 0));
        goto fail;
    }
    if (ks_money_check_bounds(&rf->amount, "amount", &e) != KS_OK) {
        ing_problem(&p, "amount_out_of_range", "amount", "amount: %s", e.msg);
        goto fail;
    }
    PQclear(res);
    ing_accept_claim(r, 1);
    return;
fail:
    PQclear(res);
    ing_respond_problem(r, &p);
    ing_req_done(r);
}

void ing_refund_post(struct ing_req *r)
{
    struct ing_problem p;
    struct ing_refund *rf = &r->u.refund;

    if (!ing_media_is(r, "application/json", &p) || ing_parse_refund(r->body, r->len, rf, &p) != 0)
        goto fail;
    r->parsed = rf->root;
    /* the fingerprint rewrites amount members: the text lives on in r */
    if (rf->amount_text && !(rf->amount_text = r->qarg = strdup(rf->amount_text))) {
        ing_problem(&p, "internal", NULL, "out of memory");
        goto fail;
    }
    if (ing_accept_prepare(r, "refunds", rf->idempotency_key, "rfd", &p) != 0)
        goto fail;
    if (rf->has_amount && !rf->amount.currency[0]) {
        /* an amount without a currency is in the order's: a reader learns it first */
        if (ing_defer(r, refund_currency_job, 0, ING.read_timeout_ms, &p) != 0)
            goto fail;
        return;
    }
    ing_accept_claim(r, 0);
    return;
fail:
    ing_respond_problem(r, &p);
}

void ing_payout_post(struct ing_req *r)
{
    struct ing_problem p;
    struct ing_payout *po = &r->u.payout;

    if (!ing_media_is(r, "application/json", &p) || ing_parse_payout(r->body, r->len, po, &p) != 0)
        goto fail;
    r->parsed = po->root;
    if (ing_accept_prepare(r, "payouts", po->idempotency_key, "pyo", &p) != 0)
        goto fail;
    ing_accept_claim(r, 0);
    return;
fail:
    ing_respond_problem(r, &p);
}

/* --- reads ----------------------------------------------------------------------------- */

static const char payments_sql[] =
    "SELECT json_build_object('payment_id', p.payment_id, 'status', p.status, "
    " 'checkout_id', p.checkout_id, 'buyer', json_build_object('id', p.buyer_id), "
    " 'metadata', p.metadata, "
    " 'created_at', to_char(p.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
    " 'updated_at', to_char(p.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
    " 'payment_orders', (SELECT json_agg(json_build_object('payment_order_id', o.order_id, "
    "   'seller_id', o.seller_id, 'amount_minor', o.amount_minor, 'currency', o.currency, "
    "   'method', lower(o.method), 'status', o.status, 'next_action', o.next_action, "
    "   'refunded_minor', o.refund_requested_minor, 'captured_minor', o.captured_minor) "
    "   ORDER BY o.seq) "
    "   FROM payment_orders o WHERE o.payment_id = p.payment_id))::text "
    "FROM payments p WHERE p.payment_id = ANY($1::text[]) AND p.partner_id = $2 "
    "ORDER BY p.payment_id";

static json_t *money_member(json_t *o, const char *minor_name, const char *cur_name,
                            const char *out_name)
{
    char buf[KS_MONEY_STRLEN];
    json_t *mn = json_object_get(o, minor_name);
    const char *cur = json_string_value(json_object_get(o, cur_name));

    if (json_is_integer(mn) && cur) {
        ing_amount_fmt(json_integer_value(mn), cur, buf);
        json_object_set_new(o, out_name, json_string(buf));
    }
    json_object_del(o, minor_name);
    return o;
}

static int id_ok(const char *s)
{
    size_t n = strlen(s), i;

    if (n == 0 || n > ING_ID_MAX + 8)
        return 0;
    for (i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* reader thread */
static json_t *fetch_payments(struct ing_req *r, struct ing_rdb *db, const char *arr,
                              struct ing_problem *p)
{
    const char *params[2] = {arr, r->partner_id};
    PGresult *res = ing_rdb_query(db, r, payments_sql, 2, params, p);
    json_t *out;
    int i;

    if (!res)
        return NULL;
    out = json_array();
    for (i = 0; i < PQntuples(res); i++) {
        json_t *o = json_loads(PQgetvalue(res, i, 0), 0, NULL), *ords;
        size_t k;
        if (!o)
            continue;
        ords = json_object_get(o, "payment_orders");
        for (k = 0; k < json_array_size(ords); k++) {
            json_t *ord = json_array_get(ords, k);
            money_member(ord, "refunded_minor", "currency", "refunded_amount");
            money_member(ord, "captured_minor", "currency", "captured_amount");
            money_member(ord, "amount_minor", "currency", "amount");
        }
        json_array_append_new(out, o);
    }
    PQclear(res);
    return out;
}

static void pay_get_job(struct ing_req *r, struct ing_rdb *db)
{
    struct ing_problem p;
    json_t *list;

    list = fetch_payments(r, db, r->qarg, &p);

    if (!list) {
        ing_respond_problem(r, &p);
    } else if (json_array_size(list) != 1 && ing_accept_park_read(r, r->arg, 0)) {
        json_decref(list); /* a payment this instance just answered: its rows on their way */
        return;
    } else if (json_array_size(list) != 1) {
        ing_problem(&p, "not_found", "id", "no payment with this id");
        ing_respond_problem(r, &p);
    } else {
        ing_respond_json(r, 200, json_incref(json_array_get(list, 0)));
    }
    json_decref(list);
    ing_req_done(r);
}

void ing_pay_get(struct ing_req *r)
{
    struct ing_problem p;
    const char *id = r->arg;
    size_t n = strlen(id) + 3;

    if (!id_ok(id)) {
        ing_problem(&p, "not_found", "id", "no payment with this id");
        ing_respond_problem(r, &p);
        return;
    }
    if (!(r->qarg = malloc(n))) {
        ing_problem(&p, "internal", NULL, "out of memory");
        ing_respond_problem(r, &p);
        return;
    }
    snprintf(r->qarg, n, "{%s}", id);
    ing_defer_read(r, pay_get_job);
}

/* r->qarg: the ids as given ("a,b,c"), already checked */
static void pay_list_job(struct ing_req *r, struct ing_rdb *db)
{
    struct ing_problem p;
    size_t n = strlen(r->qarg) + 3, off = 0;
    char *arr, *miss, one[128];
    const char *s;
    json_t *list, *missing;

    if (!(arr = malloc(n))) {
        ing_problem(&p, "internal", NULL, "out of memory");
        ing_respond_problem(r, &p);
        ing_req_done(r);
        return;
    }
    snprintf(arr, n, "{%s}", r->qarg);
    list = fetch_payments(r, db, arr, &p);
    free(arr);
    if (!list || !(miss = malloc(n))) {
        if (list)
            ing_problem(&p, "internal", NULL, "out of memory");
        json_decref(list);
        ing_respond_problem(r, &p);
        ing_req_done(r);
        return;
    }
    miss[0] = '\0';
    /* ids not found (or another partner's) are listed, not distinguished */
    missing = json_array();
    for (s = r->qarg; *s;) {
        size_t l = strcspn(s, ","), k;
        int hit = 0;
        memcpy(one, s, l);
        one[l] = '\0';
        for (k = 0; k < json_array_size(list); k++)
            if (strcmp(json_string_value(json_object_get(json_array_get(list, k), "payment_id")),
                       one) == 0)
                hit = 1;
        if (!hit) {
            json_array_append_new(missing, json_string(one));
            off += (size_t)snprintf(miss + off, n - off, "%s%s", off ? "," : "", one);
        }
        s += l;
        if (*s == ',')
            s++;
    }
    /* payments this instance just answered among the missing: their rows on their way */
    if (off && ing_accept_park_read(r, miss, 0)) {
        json_decref(list);
        json_decref(missing);
        free(miss);
        return;
    }
    free(miss);
    ing_respond_json(r, 200, json_pack("{s:o, s:o}", "payments", list, "not_found", missing));
    ing_req_done(r);
}

void ing_pay_list(struct ing_req *r)
{
    struct ing_problem p;
    const char *ids = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "ids");
    char one[128];
    size_t n = 0;
    const char *s;

    if (!ids || !*ids) {
        ing_problem(&p, "query_invalid", "ids", "give ids=<payment id>,<payment id>,... (1-100)");
        goto fail;
    }
    for (s = ids; *s;) {
        size_t l = strcspn(s, ",");
        if (l == 0 || l >= sizeof(one) || ++n > 100) {
            ing_problem(&p, "query_invalid", "ids", "ids must be 1-100 comma-separated ids");
            goto fail;
        }
        memcpy(one, s, l);
        one[l] = '\0';
        if (!id_ok(one)) {
            ing_problem(&p, "query_invalid", "ids", "ids contains a malformed id");
            goto fail;
        }
        s += l;
        if (*s == ',')
            s++;
    }
    if (s > ids && s[-1] == ',') {
        ing_problem(&p, "query_invalid", "ids", "ids must be 1-100 comma-separated ids");
        goto fail;
    }
    if (!(r->qarg = strdup(ids))) {
        ing_problem(&p, "internal", NULL, "out of memory");
        goto fail;
    }
    ing_defer_read(r, pay_list_job);
    return;
fail:
    ing_respond_problem(r, &p);
}

/* reader thread: one object by id (r->qarg), scoped to the calling partner */
static void object_get_job(struct ing_req *r, struct ing_rdb *db)
{
    struct ing_problem p;
    const char *params[2] = {r->qarg, r->partner_id};
    PGresult *res = ing_rdb_query(db, r, r->qsql, 2, params, &p);
    json_t *o;

    if (!res) {
        ing_respond_problem(r, &p);
    } else if (PQntuples(res) != 1 || !(o = json_loads(PQgetvalue(res, 0, 0), 0, NULL))) {
        ing_problem(&p, "not_found", "id", "no %s with this id", r->qwhat);
        ing_respond_problem(r, &p);
    } else {
        /* a refund's refunded_minor (SUCCEEDED: what the PSP refunded, perhaps less than
         * asked); the member is dropped where the object has none */
        money_member(o, "refunded_minor", "currency", "refunded_amount");
        ing_respond_json(r, 200, money_member(o, "amount_minor", "currency", "amount"));
    }
    PQclear(res);
    ing_req_done(r);
}

/* GET of one object by id, scoped to the calling partner: another partner's id, an
 * unknown id and one not yet published all answer the same 404. sql takes $1 = id,
 * $2 = partner and returns one json row with amount_minor and currency. */
static void object_get(struct ing_req *r, const char *what, const char *sql)
{
    struct ing_problem p;
    const char *id = r->arg;

    if (!id_ok(id)) {
        ing_problem(&p, "not_found", "id", "no %s with this id", what);
        ing_respond_problem(r, &p);
        return;
    }
    if (!(r->qarg = strdup(id))) {
        ing_problem(&p, "internal", NULL, "out of memory");
        ing_respond_problem(r, &p);
        return;
    }
    r->qsql = sql;
    r->qwhat = what;
    ing_defer_read(r, object_get_job);
}

void ing_refund_get(struct ing_req *r)
{
    object_get(r, "refund",
               "SELECT json_build_object('refund_id', refund_id, 'payment_id', payment_id, "
               "'payment_order_id', order_id, 'amount_minor', amount_minor, 'currency', "
               "currency, 'refunded_minor', refunded_minor, 'reason', reason, 'status', status, "
               "'created_at', "
               "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'))::text "
               "FROM refunds WHERE refund_id = $1 AND partner_id = $2 "
               "AND status <> 'PENDING_PUBLISH'");
}

void ing_payout_get(struct ing_req *r)
{
    object_get(r, "payout",
               "SELECT json_build_object('payout_id', payout_id, 'seller_id', seller_id, "
               "'amount_minor', amount_minor, 'currency', currency, 'channel', lower(channel), "
               "'bank_code', bank_code, 'ewallet_channel', ewallet_channel, 'status', status, "
               "'failure_code', failure_code, 'failure_message', failure_message, "
               "'created_at', to_char(created_at AT TIME ZONE 'UTC', "
               "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'))::text "
               "FROM payouts WHERE payout_id = $1 AND partner_id = $2 "
               "AND status <> 'PENDING_PUBLISH'");
}

void ing_recon_get(struct ing_req *r)
{
    struct ing_problem p;

    /* the reconciliation worker owns the results; until it lands no run exists */
    ing_problem(&p, "not_found", "id", "no reconciliation with this id");
    ing_respond_problem(r, &p);
}

static void admin_partners_job(struct ing_req *r, struct ing_rdb *db)
{
    struct ing_problem p;
    PGresult *res = ing_rdb_query(db, r,
                                  "SELECT coalesce(json_agg(json_build_object('partner_id', "
                                  "partner_id, 'name', name, 'rate_limit_rps', rate_limit_rps, "
                                  "'rate_limit_burst', rate_limit_burst, 'disabled', "
                                  "disabled_at IS NOT NULL) ORDER BY created_at), '[]')::text "
                                  "FROM partners",
                                  0, NULL, &p);
    json_t *list;

    if (!res) {
        ing_respond_problem(r, &p);
    } else {
        list = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
        PQclear(res);
        ing_respond_json(r, 200, json_pack("{s:o}", "partners", list ? list : json_array()));
    }
    ing_req_done(r);
}

void ing_admin_partners(struct ing_req *r)
{
    ing_defer_read(r, admin_partners_job);
}

/* --- webhooks -------------------------------------------------------------------------- */

struct hdr_ctx {
    json_t *map;
    int n;
};

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    struct hdr_ctx *h = cls;
    char name[64];
    size_t i, n = strlen(key);
    (void)kind;

    if (n >= sizeof(name) || !value || strlen(value) > 1024 || h->n >= 40)
        return MHD_YES;
    for (i = 0; i <= n; i++)
        name[i] = (char)((key[i] >= 'A' && key[i] <= 'Z') ? key[i] + 32 : key[i]);
    /* credentials are not kept: the verification already used them */
    if (strcmp(name, "authorization") == 0 || strcmp(name, "cookie") == 0 ||
        strcmp(name, "x-callback-token") == 0 || strcmp(name, "proxy-authorization") == 0)
        return MHD_YES;
    json_object_set_new(h->map, name, json_string(value));
    h->n++;
    return MHD_YES;
}

/* "sha256:<hex of the raw body>" */
static void body_event_id(struct ing_req *r, char event_id[256])
{
    char h[65];

    ing_sha256_hex(r->body, r->len, h);
    snprintf(event_id, 256, "sha256:%s", h);
}

/* Midtrans: the event id from the signed fields; the other members' names, untrusted */
static void midtrans_signed(struct ing_req *r, char *event_id, size_t len,
                            const char **signed_fields, char **untrusted)
{
    json_t *b = json_loadb(r->body, r->len, 0, NULL);
    const char *k;
    json_t *v;
    size_t off = 0, cap = 512;
    char *u = malloc(cap);

    *signed_fields = "order_id,status_code,gross_amount,signature_key";
    snprintf(event_id, len, "%.90s:%.8s:%.40s",
             json_string_value(json_object_get(b, "order_id")),
             json_string_value(json_object_get(b, "status_code")),
             json_string_value(json_object_get(b, "gross_amount")));
    if (u) {
        u[0] = '\0';
        json_object_foreach(b, k, v) {
            size_t n = strlen(k);
            if (strcmp(k, "order_id") == 0 || strcmp(k, "status_code") == 0 ||
                strcmp(k, "gross_amount") == 0 || strcmp(k, "signature_key") == 0)
                continue;
            if (off + n + 2 >= cap)
                break;
            off += (size_t)snprintf(u + off, cap - off, "%s%s", off ? "," : "", k);
        }
    }
    *untrusted = u;
    json_decref(b);
}

static enum ks_code verify_iris(struct ing_req *r, struct ks_err *e)
{
    const char *sig = ing_header(r, "Iris-Signature");
    uint8_t mac[64], got[64];

    if (!sig || strlen(sig) != 128 || ks_hex_decode(sig, 128, got, sizeof(got)) != 64)
        return ks_err_set(e, KS_EAUTH, 0, "Iris-Signature", "Iris-Signature missing or malformed");
    ks_hmac_sha512(ING.wh_iris, strlen(ING.wh_iris), r->body, r->len, mac);
    if (!ks_ct_equal(mac, got, sizeof(mac)))
        return ks_err_set(e, KS_EAUTH, 0, "Iris-Signature", "signature does not match");
    return KS_OK;
}

/* Iris signs the whole body: reference_no and status are the payout's event */
static void iris_event_id(struct ing_req *r, char *event_id, size_t len)
{
    json_t *b = json_loadb(r->body, r->len, 0, NULL);
    const char *ref = json_string_value(json_object_get(b, "reference_no"));
    const char *st = json_string_value(json_object_get(b, "status"));

    if (ref && st && strlen(ref) < 150 && strlen(st) < 40)
        snprintf(event_id, len, "%s:%s", ref, st);
    else
        body_event_id(r, event_id);
    json_decref(b);
}

void ing_webhook(struct ing_req *r)
{
    const char *psp = r->arg, *verification;
    struct ing_problem p;
    struct ks_err e = {0};
    enum ks_code rc;
    int64_t now = (int64_t)time(NULL);
    char event_id[256] = "", wid[KS_ID_LEN];
    json_t *body_json;
    struct hdr_ctx hc;
    struct ing_webhook_ev wev;
    char *untrusted = NULL;
    const char *signed_fields = NULL;

    if (strcmp(psp, "stripe") == 0 && *ING.wh_stripe) {
        verification = "stripe-signature";
        rc = ks_webhook_verify_stripe(ing_header(r, "Stripe-Signature"), r->body, r->len,
                                      ING.wh_stripe, now, ING.webhook_tolerance_s, &e);
    } else if (strcmp(psp, "sandbox") == 0 && *ING.wh_sandbox) {
        verification = "standard-webhooks";
        rc = ks_webhook_verify_standard(ing_header(r, "webhook-id"),
                                        ing_header(r, "webhook-timestamp"),
                                        ing_header(r, "webhook-signature"), r->body, r->len,
                                        ING.wh_sandbox, now, ING.webhook_tolerance_s, &e);
        if (rc == KS_OK)
            snprintf(event_id, sizeof(event_id), "%s", ing_header(r, "webhook-id"));
    } else if (strcmp(psp, "xendit") == 0 && *ING.wh_xendit) {
        verification = "xendit-callback-token";
        rc = ks_webhook_verify_xendit(ing_header(r, "x-callback-token"), ING.wh_xendit, &e);
        /* the callback's own id; the body's "id" is the object's (an invoice gets several
         * callbacks). Without one, the body's hash: a redelivery is the same event */
        if (rc == KS_OK && ing_header(r, "webhook-id"))
            snprintf(event_id, sizeof(event_id), "%.200s", ing_header(r, "webhook-id"));
        else if (rc == KS_OK)
            body_event_id(r, event_id);
    } else if (strcmp(psp, "midtrans") == 0 && *ING.wh_midtrans) {
        verification = "midtrans-signature-key";
        rc = ks_webhook_verify_midtrans(r->body, r->len, ING.wh_midtrans, event_id,
                                        sizeof(event_id), &e);
        /* only order_id, status_code and gross_amount are signed: the event id comes from
         * them alone, and the rest of the body is marked untrusted (the worker asks
         * Midtrans' status API for the transaction's state) */
        if (rc == KS_OK)
            midtrans_signed(r, event_id, sizeof(event_id), &signed_fields, &untrusted);
    } else if (strcmp(psp, "iris") == 0 && *ING.wh_iris) {
        /* Midtrans Iris (payouts): Iris-Signature = hex HMAC-SHA512(merchant key, body) */
        verification = "iris-signature";
        rc = verify_iris(r, &e);
        if (rc == KS_OK)
            iris_event_id(r, event_id, sizeof(event_id));
    } else {
        ing_problem(&p, "webhook_psp_unknown", "psp", "no webhook endpoint for this psp");
        goto fail;
    }
    if (rc != KS_OK) {
        ks_log(KS_LOG_WARN, "ingress.webhook.refused", e.msg, "trace_id", r->trace_id, "psp",
               psp, NULL);
        ing_problem(&p, rc == KS_ERANGE ? "webhook_timestamp_stale" : "webhook_signature_invalid",
                    e.field, "%s", e.msg);
        goto fail;
    }
    /* the PSP's own event id, when the body has one and the whole body is signed (Stripe
     * evt_...) */
    if (!event_id[0] && (body_json = json_loadb(r->body, r->len, 0, NULL))) {
        const char *id = json_string_value(json_object_get(body_json, "id"));
        if (id && strlen(id) < 200)
            snprintf(event_id, sizeof(event_id), "%s", id);
        json_decref(body_json);
    }
    if (ks_id_new("whk", wid, &e) != KS_OK) {
        ing_problem(&p, "internal", NULL, "could not make an id");
        goto fail;
    }
    snprintf(r->rid, sizeof(r->rid), "%s", wid);
    hc.map = json_object();
    hc.n = 0;
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, collect_header, &hc);
    if (signed_fields) {
        json_object_set_new(hc.map, "kasir-signed-fields", json_string(signed_fields));
        json_object_set_new(hc.map, "kasir-untrusted-fields", json_string(untrusted ? untrusted : ""));
    }
    free(untrusted);
    untrusted = NULL;
    wev.psp = psp;
    wev.webhook_id = wid;
    wev.event_id = event_id[0] ? event_id : NULL;
    wev.verification = verification;
    wev.received_s = now;
    wev.headers = hc.map;
    if (ing_text_webhook(r, &wev, &p) != 0)
        goto fail;
    ing_respond_json(r, 200, json_pack("{s:s, s:s?, s:s}", "webhook_id", wid, "event_id",
                                       event_id[0] ? event_id : NULL, "status", "received"));
    ing_accept_direct(r, 0, "could not queue the notification for kafka");
    return;
fail:
    free(untrusted);
    ing_respond_problem(r, &p);
}

/* --- settlement files --------------------------------------------------------------- */

static int settle_row(const struct ing_settle_row *row, void *opaque)
{
    struct ing_req *r = opaque;
    char mid[KS_ID_LEN];
    void *buf = NULL;
    size_t len = 0;
    int rc = 1;

    if (ing_text_settle_row(r, row, mid, &buf, &len) == 0 &&
        ing_accept_row(r, row->reference, buf, len, mid) == 0)
        rc = 0;
    free(buf);
    return rc;
}

/* settlement threads still running; ing_settle_join waits for them */
static pthread_mutex_t settle_mu = PTHREAD_MUTEX_INITIALIZER;
static int settle_threads;

int ing_settle_join(void)
{
    int left;

    /* in 10 ms steps: a stop happens once */
    pthread_mutex_lock(&settle_mu);
    while ((left = settle_threads) > 0 && ks_clock_mono_us() < ING.stop_by_us) {
        pthread_mutex_unlock(&settle_mu);
        usleep(10000);
        pthread_mutex_lock(&settle_mu);
    }
    pthread_mutex_unlock(&settle_mu);
    if (left > 0)
        ks_logf(KS_LOG_ERROR, "ingress.stopped", "%d settlement file threads did not stop in "
                "time (a broker that does not take their rows)", left);
    return left > 0 ? -1 : 0;
}

static void *settle_main(void *arg)
{
    struct ing_req *r = arg;
    struct ing_problem p;
    long rows;

    rows = ing_settle_parse(r->body, r->len, r->format, settle_row, r, &p);
    if (rows < 0)
        ing_respond_problem(r, &p);
    else
        ing_respond_json(r, 202, json_pack("{s:s, s:s, s:s, s:I, s:s, s:s}", "file_id",
                                           r->file_id, "psp", r->psp, "format", r->format,
                                           "rows", (json_int_t)rows, "status", "published",
                                           "trace_id", r->trace_id));
    atomic_store(&r->state, S_SUSPENDED);
    ing_accept_rows_release(r);
    pthread_mutex_lock(&settle_mu);
    settle_threads--;
    pthread_mutex_unlock(&settle_mu);
    return NULL;
}

void ing_settle(struct ing_req *r)
{
    static const char *const known[] = {"sandbox", "stripe", "xendit", "midtrans"};
    const char *psp = r->arg;
    const char *fmt = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "format");
    struct ing_problem p;
    char h[65];
    size_t i;
    int ok = 0;
    pthread_t t;
    pthread_attr_t attr;

    for (i = 0; i < 4; i++)
        if (strcmp(psp, known[i]) == 0)
            ok = 1;
    if (!ok) {
        ing_problem(&p, "settlement_format_unknown", "psp", "no settlement layout for this psp");
        goto fail;
    }
    if (!ing_media_is(r, "text/csv", &p))
        goto fail;
    if (!fmt)
        fmt = strcmp(psp, "sandbox") == 0 ? "sandbox" : "generic";
    if (strcmp(fmt, "sandbox") != 0 && strcmp(fmt, "generic") != 0) {
        ing_problem(&p, "settlement_format_unknown", "format", "format must be sandbox or generic");
        goto fail;
    }
    if (unavailable_if_down(r))
        return;
    snprintf(r->psp, sizeof(r->psp), "%.15s", psp);
    snprintf(r->format, sizeof(r->format), "%s", fmt);
    ing_sha256_hex(r->body, r->len, h);
    /* the same file uploaded again has the same id and row ids: recon dedups */
    ks_id_derive("stl", "settlement-file", r->file_id, psp, fmt, h, NULL);
    snprintf(r->rid, sizeof(r->rid), "%s", r->file_id);
    ing_accept_rows_begin(r);
    /* parsing a large file takes a while: off the server thread */
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_mutex_lock(&settle_mu);
    settle_threads++;
    pthread_mutex_unlock(&settle_mu);
    if (pthread_create(&t, &attr, settle_main, r) != 0) {
        pthread_mutex_lock(&settle_mu);
        settle_threads--;
        pthread_mutex_unlock(&settle_mu);
        ing_problem(&p, "unavailable", NULL, "could not start the upload");
        ing_respond_problem(r, &p);
        ing_req_done(r);
    }
    pthread_attr_destroy(&attr);
    return;
fail:
    ing_respond_problem(r, &p);
}

/* --- service endpoints ------------------------------------------------------------------ */

void ing_health(struct ing_req *r)
{
    ing_respond_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

void ing_ready(struct ing_req *r)
{
    int ok = ING.kafka_ok && ING.pg_ok;
    ing_respond_json(r, ok ? 200 : 503,
                     json_pack("{s:s, s:b, s:b}", "status", ok ? "ready" : "unavailable", "kafka",
                               ING.kafka_ok ? 1 : 0, "postgresql", ING.pg_ok ? 1 : 0));
    if (!ok)
        r->retry_after = 2;
}

void ing_metrics(struct ing_req *r)
{
    char *s = NULL;
    size_t n = 0;

    ing_metrics_write(&s, &n);
    free(r->resp);
    r->resp = s;
    r->resp_len = n;
    r->status = 200;
    r->ctype = "text/plain; version=0.0.4";
    atomic_store(&r->state, S_DONE);
}

void ing_openapi(struct ing_req *r)
{
    size_t n = (size_t)(ing_openapi_json_end - ing_openapi_json);
    char *s = malloc(n + 1);

    if (s)
        memcpy(s, ing_openapi_json, n);
    free(r->resp);
    r->resp = s;
    r->resp_len = s ? n : 0;
    r->status = 200;
    r->ctype = "application/json";
    atomic_store(&r->state, S_DONE);
}
