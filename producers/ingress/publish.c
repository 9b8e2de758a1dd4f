/* publish.c - the Kafka side: one idempotent producer (acks=all), a thread that serves its
 * delivery reports, and the events and success responses of accepted writes.
 *
 * A message's opaque is its struct ing_req. The delivery report decides the answer:
 *   K_STORE  (payments, refunds, payouts) -> the writer records complete or release, and
 *            only then is the client answered (the stored response is what a replay sends);
 *   K_DIRECT (webhooks) -> answered at once;
 *   K_MULTI  (settlement files) -> answered when the last row is confirmed. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/crypto.h"
#include "lib/kafka.h"
#include "lib/log.h"
#include "lib/money.h"
#include "lib/serde.h"
#include "producers/ingress/ingress.h"
#include "lib/banned.h"

static pthread_t poll_thread;
static int poll_started;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct ing_req *r = m->_private;
    struct ing_problem p;
    (void)rk;
    (void)opaque;

    if (!r)
        return;
    if (m->err)
        ks_log(KS_LOG_WARN, "ingress.publish.failed", rd_kafka_err2str(m->err),
               "trace_id", r->trace_id, "topic", rd_kafka_topic_name(m->rkt), NULL);
    switch (r->kind) {
    case K_STORE:
        if (m->err) {
            ing_problem(&p, "unavailable", NULL, "could not publish the event: %s; retry with "
                        "the same Idempotency-Key", rd_kafka_err2str(m->err));
            ing_respond_problem(r, &p);
            ing_store_finish(r, 0);
        } else {
            ing_store_finish(r, 1);
        }
        break;
    case K_DIRECT:
        if (m->err) {
            ing_problem(&p, "unavailable", NULL, "could not publish: %s", rd_kafka_err2str(m->err));
            ing_respond_problem(r, &p);
        }
        ing_req_done(r);
        break;
    case K_MULTI:
        if (m->err)
            r->failed++;
        ing_multi_release(r);
        break;
    default:
        break;
    }
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk;
    (void)opaque;
    ks_log(err == RD_KAFKA_RESP_ERR__FATAL ? KS_LOG_ERROR : KS_LOG_WARN, "ingress.kafka.error",
           reason, "error", rd_kafka_err2name((rd_kafka_resp_err_t)err), NULL);
}

/* librdkafka's own log lines, as JSON log lines (syslog levels: 0-3 error, 4 warn) */
static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    ks_log(level <= 3 ? KS_LOG_ERROR : level == 4 ? KS_LOG_WARN : level <= 6 ? KS_LOG_INFO
                                                                            : KS_LOG_DEBUG,
           "ingress.kafka.library", buf, "facility", fac, NULL);
}

static void *poll_main(void *arg)
{
    (void)arg;
    while (!ING.stopping)
        rd_kafka_poll(ING.rk, 50);
    return NULL;
}

struct seen {
    int timeout, linger, backoff;
};

static void note_prop(const char *prop, const char *value, void *opaque)
{
    struct seen *s = opaque;
    (void)value;
    if (strcmp(prop, "message.timeout.ms") == 0)
        s->timeout = 1;
    if (strcmp(prop, "linger.ms") == 0)
        s->linger = 1;
    if (strcmp(prop, "reconnect.backoff.max.ms") == 0)
        s->backoff = 1;
}

int ing_publish_start(void)
{
    struct ks_err e = {0};
    struct seen s = {0};
    rd_kafka_conf_t *conf;
    char es[256];

    conf = ks_kafka_conf_new(ks_config_str(ING.cfg, "kafka.brokers"), "producer", ING.cfg, &e);
    if (!conf)
        goto fail;
    /* a client waits for the delivery report: a broker outage should turn into a 503
     * within seconds, not after the library's 30 s default */
    ks_config_kafka_props(ING.cfg, note_prop, &s);
    if (!s.timeout)
        rd_kafka_conf_set(conf, "message.timeout.ms", "5000", es, sizeof(es));
    /* 0 ms: a group-commit writer produces its whole batch of claimed events in one burst,
     * so the burst is the batch; a linger on top of it is paid in full by every request.
     * Measured at 5,000 payments/s (docs/BENCHMARKS.md, session 4): against 2 ms, p50
     * -1.5 to -2 ms and p99 -2 to -10 ms for ~+17 us of broker CPU per payment */
    if (!s.linger)
        rd_kafka_conf_set(conf, "linger.ms", "0", es, sizeof(es));
    /* after a broker restart the producer is back within a second, not after the
     * library's backoff of up to 10 s (requests meanwhile time out into 503s) */
    if (!s.backoff)
        rd_kafka_conf_set(conf, "reconnect.backoff.max.ms", "1000", es, sizeof(es));
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_log_cb(conf, on_log);
    rd_kafka_conf_set_error_cb(conf, on_error);
    ING.rk = ks_kafka_producer_new(conf, &e);
    if (!ING.rk)
        goto fail;
    if (pthread_create(&poll_thread, NULL, poll_main, NULL) != 0)
        return -1;
    poll_started = 1;
    return 0;
fail:
    ks_log(KS_LOG_ERROR, "ingress.kafka.init", e.msg, NULL);
    return -1;
}

void ing_publish_stop(void)
{
    if (poll_started) {
        pthread_join(poll_thread, NULL);
        poll_started = 0;
    }
    if (ING.rk) {
        int left = ks_kafka_producer_close(ING.rk, 10000);
        ING.rk = NULL;
        if (left)
            ks_logf(KS_LOG_ERROR, "ingress.kafka.unflushed", "%d messages not confirmed", left);
    }
}

int ing_produce_bytes(struct ing_req *r, const char *topic, const char *key, const void *buf,
                      size_t len, const char *msg_id, int block)
{
    char tp[64];
    rd_kafka_resp_err_t e;

    snprintf(tp, sizeof(tp), "00-%s-%s-01", r->trace_id, r->span_id);
    if (r->route == R_SETTLE) {
        /* a settlement row says who uploaded it: the key and its partner (an operator's) */
        rd_kafka_headers_t *h = rd_kafka_headers_new(5);
        rd_kafka_header_add(h, "traceparent", -1, tp, -1);
        rd_kafka_header_add(h, "message_id", -1, msg_id, -1);
        rd_kafka_header_add(h, "producer", -1, "kasir-ingress", -1);
        rd_kafka_header_add(h, "uploaded_by_key", -1, r->cred_id, -1);
        rd_kafka_header_add(h, "uploaded_by_partner", -1, r->partner_id, -1);
        e = rd_kafka_producev(ING.rk, RD_KAFKA_V_TOPIC(topic),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY |
                                                  (block ? RD_KAFKA_MSG_F_BLOCK : 0)),
                              RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE((void *)buf, len),
                              RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE(r), RD_KAFKA_V_END);
        if (e)
            rd_kafka_headers_destroy(h); /* owned by the message only when produced */
        goto out;
    }
    e = rd_kafka_producev(ING.rk, RD_KAFKA_V_TOPIC(topic),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY | (block ? RD_KAFKA_MSG_F_BLOCK : 0)),
                          RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE((void *)buf, len),
                          RD_KAFKA_V_HEADER("traceparent", tp, (ssize_t)strlen(tp)),
                          RD_KAFKA_V_HEADER("message_id", msg_id, (ssize_t)strlen(msg_id)),
                          RD_KAFKA_V_HEADER("producer", "kasir-ingress", (ssize_t)13),
                          RD_KAFKA_V_OPAQUE(r), RD_KAFKA_V_END);
out:
    if (e) {
        ks_log(KS_LOG_WARN, "ingress.publish.refused", rd_kafka_err2str(e), "trace_id",
               r->trace_id, "topic", topic, NULL);
        return -1;
    }
    return 0;
}

int ing_produce(struct ing_req *r)
{
    return ing_produce_bytes(r, r->topic, r->msg_key, r->payload, r->payload_len, r->msg_id, 0);
}

/* --- events and responses of claimed writes ---------------------------------------- */

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

static int encode(struct ing_req *r, const char *schema, json_t *ev, struct ing_problem *p)
{
    struct ks_err e = {0};
    const struct ks_schema *s = ks_schema_by_name(schema);

    free(r->payload);
    r->payload = NULL;
    if (!s || ks_serde_encode(s, ev, &r->payload, &r->payload_len, &e) != KS_OK) {
        ks_log(KS_LOG_ERROR, "ingress.encode.failed", s ? e.msg : "schema missing", "schema",
               schema, "field", e.field, "trace_id", r->trace_id, NULL);
        ing_problem(p, "internal", NULL, "could not encode the event");
        json_decref(ev);
        return -1;
    }
    json_decref(ev);
    return 0;
}

/* the id of r's i-th payment order, derived from the payment id */
static void order_id(const struct ing_req *r, size_t i, char oid[KS_ID_LEN])
{
    char idx[24];

    snprintf(idx, sizeof(idx), "%zu", i);
    ks_id_derive("ord", "payment-order", oid, r->rid, idx, NULL);
}

/* ing_amount_fmt as a JSON member */
static void jw_amount(struct ks_jw *w, const char *name, int64_t minor, const char *cur)
{
    char buf[KS_MONEY_STRLEN];

    ing_amount_fmt(minor, cur, buf);
    ks_jw_str(w, name, buf);
}

/* The 202 body and the rows the complete finish inserts (migration 205), for r->rid; both
 * go straight to text. The handler calls it before the claim, which stores the answer
 * (migration 207); a resumed claim calls it again with the first attempt's payment id. */
int ing_payment_texts(struct ing_req *r)
{
    struct ing_payment *pay = &r->u.pay;
    struct ks_jw resp, row;
    char *meta = NULL, *text;
    size_t i, len = 0;

    ks_jw_init(&resp, NULL, 0);
    ks_jw_open(&resp, NULL);
    ks_jw_str(&resp, "payment_id", r->rid);
    ks_jw_str(&resp, "status", "NOT_STARTED");
    ks_jw_str(&resp, "checkout_id", pay->checkout_id);
    ks_jw_open_array(&resp, "payment_orders");
    ks_jw_init(&row, NULL, 0);
    ks_jw_open_array(&row, "orders");
    for (i = 0; i < pay->n_orders; i++) {
        struct ing_order *o = &pay->orders[i];
        const char *oid = o->oid;
        order_id(r, i, o->oid); /* for the event too (build_payment) */

        ks_jw_open(&resp, NULL);
        ks_jw_str(&resp, "payment_order_id", oid);
        ks_jw_str(&resp, "seller_id", o->seller_id);
        jw_amount(&resp, "amount", o->amount.minor, o->amount.currency);
        ks_jw_str(&resp, "currency", o->amount.currency);
        ks_jw_str(&resp, "method", ing_method_api[o->method]);
        ks_jw_str(&resp, "status", "NOT_STARTED");
        ks_jw_close(&resp, '}');

        ks_jw_open(&row, NULL);
        ks_jw_int(&row, "n", (int64_t)i);
        ks_jw_str(&row, "oid", oid);
        ks_jw_str(&row, "seller", o->seller_id);
        ks_jw_int(&row, "amt", o->amount.minor);
        ks_jw_str(&row, "cur", o->amount.currency);
        ks_jw_str(&row, "method", ing_method_avro[o->method]);
        if (o->psp)
            ks_jw_str(&row, "psp", o->psp);
        ks_jw_close(&row, '}');
    }
    ks_jw_close(&row, ']');
    ks_jw_str(&row, "checkout", pay->checkout_id);
    ks_jw_str(&row, "buyer", pay->buyer_id);
    if (pay->metadata && (meta = json_dumps(pay->metadata, JSON_COMPACT)) != NULL)
        ks_jw_json(&row, "metadata", meta);
    free(meta);
    free(r->row);
    r->row = ks_jw_take(&row, NULL);

    ks_jw_close(&resp, ']');
    ks_jw_str(&resp, "trace_id", r->trace_id);
    ks_jw_close(&resp, '}');
    text = ks_jw_take(&resp, &len);
    if (!text || !r->row) {
        struct ing_problem p;
        free(text);
        ing_problem(&p, "internal", NULL, "out of memory");
        ing_respond_problem(r, &p); /* never a 202 for what was not built */
        return -1;
    }
    ing_respond_text(r, 202, text, len);
    return 0;
}

/* The event, a tree (the Avro encoder reads one). res is the claim's outcome: a resumed
 * claim brings the first attempt's payment id and its stored answer. */
static int build_payment(struct ing_req *r, json_t *res, struct ing_problem *p)
{
    const struct ing_payment *pay = &r->u.pay;
    const char *b64 = json_string_value(json_object_get(res, "body"));
    json_t *ev = json_object(), *orders = json_array();
    size_t i;

    if ((json_is_true(json_object_get(res, "resumed")) || !r->row) &&
        ing_payment_texts(r) != 0) {
        json_decref(ev);
        json_decref(orders);
        ing_problem(p, "internal", NULL, "out of memory");
        return -1;
    }
    /* a resumed record without a stored answer (claimed before migration 207): the
     * finish stores this attempt's */
    r->fin_store = json_is_true(json_object_get(res, "resumed")) && !b64;
    /* the stored answer, byte for byte what replays send */
    if (b64 && ing_respond_stored(r, res) != 0) {
        json_decref(ev);
        json_decref(orders);
        ing_problem(p, "internal", NULL, "could not read the stored response");
        return -1;
    }
    ks_id_derive("msg", "kasir.payments.requested", r->msg_id, r->rid, NULL);
    for (i = 0; i < pay->n_orders; i++) {
        const struct ing_order *o = &pay->orders[i];
        json_t *jo = json_object();
        json_object_set_new(jo, "order_id", json_string(o->oid)); /* ing_payment_texts */
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
    atomic_store(&r->state, S_SUSPENDED); /* answered only after the finish commits */

    json_object_set_new(ev, "message_id", json_string(r->msg_id));
    json_object_set_new(ev, "occurred_at", json_integer(ing_now_us()));
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

static int build_refund(struct ing_req *r, json_t *res, struct ing_problem *p)
{
    const char *pid = json_string_value(json_object_get(res, "payment_id"));
    const char *cur = json_string_value(json_object_get(res, "currency"));
    json_int_t amt = json_integer_value(json_object_get(res, "amount_minor"));
    json_t *ev = json_object(), *resp = json_object();

    if (!pid || !cur || amt <= 0) {
        json_decref(ev);
        json_decref(resp);
        ing_problem(p, "internal", NULL, "refund claim returned no order data");
        return -1;
    }
    ks_id_derive("msg", "kasir.refunds.requested", r->msg_id, r->rid, NULL);
    json_object_set_new(ev, "message_id", json_string(r->msg_id));
    json_object_set_new(ev, "occurred_at", json_integer(ing_now_us()));
    json_object_set_new(ev, "partner_id", json_string(r->partner_id));
    json_object_set_new(ev, "refund_id", json_string(r->rid));
    json_object_set_new(ev, "payment_id", json_string(pid));
    json_object_set_new(ev, "order_id", json_string(r->u.refund.order_id));
    json_object_set_new(ev, "amount_minor", json_integer(amt));
    json_object_set_new(ev, "currency", json_string(cur));
    json_object_set_new(ev, "reason", jstr_or_null(r->u.refund.reason));
    r->topic = "kasir.refunds.requested";
    snprintf(r->msg_key, sizeof(r->msg_key), "%s", r->u.refund.order_id);

    json_object_set_new(resp, "refund_id", json_string(r->rid));
    json_object_set_new(resp, "payment_id", json_string(pid));
    json_object_set_new(resp, "payment_order_id", json_string(r->u.refund.order_id));
    json_object_set_new(resp, "amount", amount_str(amt, cur));
    json_object_set_new(resp, "currency", json_string(cur));
    json_object_set_new(resp, "status", json_string("REQUESTED"));
    json_object_set_new(resp, "trace_id", json_string(r->trace_id));
    ing_respond_json(r, 202, resp);
    atomic_store(&r->state, S_SUSPENDED);
    return encode(r, "kasir.refunds.RefundRequested", ev, p);
}

int ing_payout_event(struct ing_req *r, const char *payout_id, const struct ing_payout *po,
                     struct ing_problem *p)
{
    json_t *ev = json_object();

    ks_id_derive("msg", "kasir.payouts.requested", r->msg_id, payout_id, NULL);
    json_object_set_new(ev, "message_id", json_string(r->msg_id));
    json_object_set_new(ev, "occurred_at", json_integer(ing_now_us()));
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

static int build_payout(struct ing_req *r, struct ing_problem *p)
{
    const struct ing_payout *po = &r->u.payout;
    json_t *resp = json_object();

    json_object_set_new(resp, "payout_id", json_string(r->rid));
    json_object_set_new(resp, "seller_id", json_string(po->seller_id));
    json_object_set_new(resp, "amount", amount_str(po->amount.minor, po->amount.currency));
    json_object_set_new(resp, "currency", json_string(po->amount.currency));
    json_object_set_new(resp, "channel", json_string(strcmp(po->channel, "EWALLET") == 0
                                                         ? "ewallet" : "bank_account"));
    json_object_set_new(resp, "status", json_string("REQUESTED"));
    json_object_set_new(resp, "trace_id", json_string(r->trace_id));
    ing_respond_json(r, 202, resp);
    atomic_store(&r->state, S_SUSPENDED);
    return ing_payout_event(r, r->rid, po, p);
}

int ing_build_claimed(struct ing_req *r, json_t *res, struct ing_problem *p)
{
    const char *rid = json_string_value(json_object_get(res, "rid"));

    if (rid) /* a resumed claim keeps the id of the first attempt */
        snprintf(r->rid, sizeof(r->rid), "%s", rid);
    if (r->route == R_PAY_POST)
        return build_payment(r, res, p);
    if (r->route == R_REFUND_POST)
        return build_refund(r, res, p);
    return build_payout(r, p);
}
