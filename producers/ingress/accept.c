/* accept.c - the accept path: from a validated write to its answer, every state and every
 * failure edge, in one place.
 *
 * Idempotent writes (payments, refunds, payouts):
 *
 *   prepare   key, fingerprint, new resource id                  (server thread)
 *   claim     the claim document queued for the writers; r suspended
 *   claimed   the batch's outcome for it                         (writer thread)
 *               replay / conflict / refusal -> answered now
 *               claimed -> texts (event, 202) -> produce
 *               texts or produce fail -> 503 or 500, finish(release)
 *   published the delivery report                                (delivery-report thread)
 *               confirmed, a payment -> answered (its 202 was stored by its claim); its
 *                                       rows are kasir-risk's to write, from the event
 *               confirmed, otherwise -> finish(complete)
 *               failed    -> 503, finish(release)
 *   finished  the finish's commit                                (writer thread)
 *               recorded          -> answered (the 202, or the 503 set before)
 *               not recorded      -> complete (a refund, a payout): 503 (the writers keep
 *                                    the finish and retry it, and a retry of the key takes
 *                                    the record over)
 *
 * A client is never sent an answer that a replay could contradict: a payment's 202 is
 * stored by its claim's commit, before anything is published, so it is sent as soon as
 * Kafka confirmed the event; a refund's or payout's answer is stored by its finish, so it
 * waits for that commit. A payment's rows (payment and orders) are written by kasir-risk
 * when it reads the event, in the transaction of its decision, and that row is what
 * completes the payment's idempotency record (ingress_batch). For up to a second after the
 * 202, reads of the payment on this instance, a retry of its key and a refund of one of
 * its orders wait for those rows (ing_accept_park_read, claim_park).
 * Direct writes (webhooks, a payout retry) are produced and answered on the delivery
 * report; a settlement file is answered when its last row is confirmed.
 *
 * The writers (store.c) and the producer (publish.c) know nothing of these states: they
 * carry the texts (texts.c) and report back through the callbacks given to them here. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/clock.h"
#include "lib/crypto.h"
#include "lib/hash.h"
#include "lib/log.h"
#include "producers/ingress/ingress.h"
#include "lib/banned.h"

static void finish(struct ing_req *r, int complete);
static int claim_park(struct ing_req *r, const char *id, int order);

/* r's claim text made and queued for the writers: the first time, or again (the key may
 * be forced by now: a finish of its record that could not be written). Made off the writer
 * threads when it can be: they are the hot path's serialization point. NULL (out of
 * memory) reaches the batch as "{}", which gets no outcome: a 503 */
static void claim_again(struct ing_req *r)
{
    free(r->claim_str);
    r->claim_str = ing_text_claim(r, ing_store_forced(r->partner_id, r->key_hash));
    ing_store_claim(r);
}

/* r's answer is set, but it waits for the finish's commit */
static void hold(struct ing_req *r)
{
    atomic_store(&r->state, S_SUSPENDED);
}

static void unavailable(struct ing_req *r, const char *why)
{
    struct ing_problem p;

    ing_problem(&p, "unavailable", NULL, "%s; retry with the same Idempotency-Key", why);
    ing_respond_problem(r, &p);
}

/* --- prepare ------------------------------------------------------------------------------ */

/* "0150000.50" -> "150000.5", "150000.00" -> "150000": the same money, the same text. Only
 * for amounts the parsers accepted (digits, at most one point). */
static void canon_amount(json_t *o)
{
    const char *a = json_string_value(json_object_get(o, "amount"));
    char buf[48];
    size_t n;
    const char *dot;

    if (!a || strlen(a) >= sizeof(buf))
        return;
    while (a[0] == '0' && a[1] >= '0' && a[1] <= '9')
        a++;
    snprintf(buf, sizeof(buf), "%s", a);
    if ((dot = strchr(buf, '.')) != NULL) {
        n = strlen(buf);
        while (n > (size_t)(dot - buf) + 1 && buf[n - 1] == '0')
            buf[--n] = '\0';
        if (buf[n - 1] == '.')
            buf[--n] = '\0';
    }
    if (strcmp(buf, json_string_value(json_object_get(o, "amount"))) != 0)
        json_object_set_new(o, "amount", json_string(buf));
}

static void canon_amounts(json_t *root)
{
    json_t *orders = json_object_get(root, "payment_orders");
    size_t i;

    canon_amount(root);
    for (i = 0; i < json_array_size(orders); i++)
        canon_amount(json_array_get(orders, i));
}

/* RFC 8941 sf-string "..." (escapes \" and \\ only) -> its characters; 0 or -1 */
static int sf_string(const char *in, char *out, size_t cap)
{
    size_t n = strlen(in), i, o = 0;

    if (n < 2 || in[0] != '"' || in[n - 1] != '"')
        return -1;
    for (i = 1; i < n - 1; i++) {
        char c = in[i];
        if (c == '\\') {
            if (i + 1 >= n - 1 || (in[i + 1] != '"' && in[i + 1] != '\\'))
                return -1;
            c = in[++i];
        } else if (c == '"' || c < 0x20 || c > 0x7e) {
            return -1;
        }
        if (o + 1 >= cap)
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

int ing_accept_prepare(struct ing_req *r, const char *route_name, const char *body_key,
                       const char *rid_prefix, struct ing_problem *p)
{
    const char *key, *hdr = ing_header(r, "Idempotency-Key");
    char *canon, *fpbuf;
    char sf[ING_IDEM_KEY_MAX + 3];
    size_t cl, pl;
    struct ks_err e = {0};

    /* the IETF draft's form is a structured-field string ("abc"); a bare token is kept
     * as it was */
    if (hdr && hdr[0] == '"') {
        if (sf_string(hdr, sf, sizeof(sf)) != 0) {
            ing_problem(p, "idempotency_key_invalid", "Idempotency-Key",
                        "Idempotency-Key: a quoted key must be a structured-field string");
            return -1;
        }
        hdr = sf;
    }
    if (ing_idem_key_pick(hdr, body_key, &key, p) != 0)
        return -1;
    ing_sha256_hex(key, strlen(key), r->key_hash);
    /* fingerprint: method, path and the canonical body (sorted keys, no spaces, without
     * the key itself, amounts in their shortest form), so the same request with other
     * whitespace or member order, "150000" for "150000.00", or with its key in the header
     * instead of the body, is the same request */
    canon_amounts(r->parsed);
    {
        json_t *k = json_incref(json_object_get(r->parsed, "idempotency_key"));
        if (k)
            json_object_del(r->parsed, "idempotency_key");
        canon = json_dumps(r->parsed, JSON_COMPACT | JSON_SORT_KEYS);
        if (k)
            json_object_set_new(r->parsed, "idempotency_key", k);
    }
    if (!canon) {
        ing_problem(p, "internal", NULL, "out of memory");
        return -1;
    }
    cl = strlen(canon);
    pl = strlen(r->method) + strlen(r->url) + 2;
    fpbuf = malloc(pl + cl + 1);
    if (!fpbuf) {
        free(canon);
        ing_problem(p, "internal", NULL, "out of memory");
        return -1;
    }
    snprintf(fpbuf, pl + cl + 1, "%s %s\n%s", r->method, r->url, canon);
    ing_sha256_hex(fpbuf, pl + cl, r->fp);
    free(fpbuf);
    free(canon);
    if (ks_id_new(rid_prefix, r->rid, &e) != KS_OK) {
        ing_problem(p, "internal", NULL, "could not make an id");
        return -1;
    }
    r->route_name = route_name;
    if (!ING.kafka_ok) {
        ing_problem(p, "unavailable", NULL, "kafka is unreachable; nothing was recorded");
        return -1;
    }
    return 0;
}

/* --- claim -------------------------------------------------------------------------------- */

void ing_accept_claim(struct ing_req *r, int suspended)
{
    if (r->route == R_PAY_POST) {
        /* the 202 is built now (its ids derive from the payment id) and stored by the claim */
        size_t len = 0;
        char *text = ing_text_payment(r, &len);
        if (!text) {
            struct ing_problem p;
            ing_problem(&p, "internal", NULL, "out of memory");
            ing_respond_problem(r, &p); /* never a 202 for what was not built */
            if (suspended)
                ing_req_done(r);
            return;
        }
        ing_respond_text(r, 202, text, len);
    }
    if (!suspended)
        ing_suspend(r);
    r->t_claim = ks_clock_mono_us();
    claim_again(r); /* its first claim: made here, as any later one is */
}

/* --- claimed ------------------------------------------------------------------------------ */

static void on_published(struct ing_req *r, const char *err);

/* outcome "claimed": the texts, then the event to Kafka */
static void produce_claimed(struct ing_req *r, json_t *res)
{
    const char *rid = json_string_value(json_object_get(res, "rid"));
    int resumed = json_is_true(json_object_get(res, "resumed"));
    struct ing_problem p;
    json_t *accepted = NULL;

    if (rid) /* a resumed claim keeps the id of the first attempt */
        snprintf(r->rid, sizeof(r->rid), "%s", rid);
    if (r->route == R_PAY_POST) {
        size_t len = 0;
        char *text;
        /* a resumed claim's ids are the first attempt's; its stored answer is the answer,
         * byte for byte what replays send */
        if (resumed || !r->resp) {
            if (!(text = ing_text_payment(r, &len))) {
                ing_problem(&p, "internal", NULL, "out of memory");
                goto fail;
            }
            ing_respond_text(r, 202, text, len);
        }
        if (json_object_get(res, "body")) {
            if (ing_respond_stored(r, res) != 0) {
                ing_problem(&p, "internal", NULL, "could not read the stored response");
                goto fail;
            }
            if (resumed && ing_orders_from_answer(r) != 0) {
                /* no event naming orders the client was never told of: the record waits
                 * for an operator (or its expiry), and says so */
                ks_log(KS_LOG_ERROR, "ingress.stored_answer_unreadable",
                       "a resumed payment's stored answer names no valid order id per order; "
                       "not published", "payment_id", r->rid, NULL);
                ing_problem(&p, "internal", NULL, "could not read the stored response");
                goto fail;
            }
        }
    }
    if (ing_text_claimed(r, res, &accepted, &p) != 0)
        goto fail;
    if (accepted)
        ing_respond_json(r, 202, accepted);
    hold(r);
    if (ing_produce(r, on_published) != 0) {
        ing_problem(&p, "unavailable", NULL, "could not queue the event for Kafka; retry "
                    "with the same Idempotency-Key");
        goto fail;
    }
    return; /* the delivery report takes it from here */
fail:
    ing_respond_problem(r, &p);
    finish(r, 0);
}

/* The writers' report of r's claim: its outcome, or NULL + why the batch gave none. */
static void on_claimed(struct ing_req *r, json_t *res, const char *why)
{
    const char *oc = res ? json_string_value(json_object_get(res, "outcome")) : NULL;
    struct ing_problem p;

    if (!oc) {
        unavailable(r, why ? why : "could not record the request");
        ing_req_done(r);
        return;
    }
    r->t_claimed = ks_clock_mono_us();
    if (strcmp(oc, "claimed") == 0) {
        produce_claimed(r, res);
        return;
    }
    if (strcmp(oc, "replay") == 0) {
        if (ing_respond_stored(r, res) != 0) {
            unavailable(r, "could not read the stored response");
        } else {
            r->replayed = 1;
        }
    } else if (strcmp(oc, "in_flight") == 0 && r->route == R_PAY_POST &&
               claim_park(r, json_string_value(json_object_get(res, "rid")), 0)) {
        return; /* answered here, its rows on their way: claimed again (then a replay) */
    } else if (strcmp(oc, "not_found") == 0 && r->route == R_REFUND_POST &&
               claim_park(r, r->u.refund.order_id, 1)) {
        return; /* its payment answered here, the order's row on its way */
    } else if (strcmp(oc, "in_flight") == 0) {
        ing_problem(&p, "request_in_progress", "Idempotency-Key",
                    "a request with this key is in flight; retry after a second");
        ing_respond_problem(r, &p);
    } else if (strcmp(oc, "mismatch") == 0) {
        ing_problem(&p, "idempotency_key_reused", "Idempotency-Key",
                    "this key was used with a different request body or endpoint");
        ing_respond_problem(r, &p);
    } else if (strcmp(oc, "duplicate_checkout") == 0) {
        const char *other = json_string_value(json_object_get(res, "rid"));
        json_t *x = json_object();
        ing_problem(&p, "duplicate_checkout", "checkout_id",
                    "checkout_id was already used for another payment");
        if (other)
            json_object_set_new(x, "payment_id", json_string(other));
        ing_respond_problem_x(r, &p, x);
    } else if (strcmp(oc, "not_found") == 0) {
        ing_problem(&p, "not_found", "payment_order_id", "no accepted payment order with this id");
        ing_respond_problem(r, &p);
    } else if (strcmp(oc, "currency") == 0) {
        ing_problem(&p, "refund_currency_mismatch", "currency",
                    "the order is in %s", json_string_value(json_object_get(res, "currency")));
        ing_respond_problem(r, &p);
    } else if (strcmp(oc, "not_captured") == 0) {
        ing_problem(&p, "refund_not_captured", "payment_order_id",
                    "the order has no captured money to refund (status %s)",
                    json_string_value(json_object_get(res, "status")));
        ing_respond_problem(r, &p);
    } else if (strcmp(oc, "exceeds") == 0) {
        ing_problem(&p, "refund_exceeds_amount", "amount",
                    "at most %lld minor units of %s are left to refund",
                    (long long)json_integer_value(json_object_get(res, "amount_minor")),
                    json_string_value(json_object_get(res, "currency")));
        ing_respond_problem(r, &p);
    } else {
        unavailable(r, "unexpected outcome");
    }
    ing_req_done(r);
}

/* --- a payment's rows, written by kasir-risk from its event ------------------------------- */

/* A payment answered by this process in the last ANSWERED_US: found by its id (a payment
 * read, a retry of its key) or by one of its orders' ids (a refund). Its rows are written
 * by kasir-risk, from the event, in the transaction of its decision: moments after the 202
 * in a pipeline that keeps up. Until they are there, a read of it on this instance, a retry
 * of its key (its claim finds the record in flight) and a refund of one of its orders (the
 * claim finds no order) are parked and run again about 8 ms after they were parked, then at
 * doubling intervals up to 128 ms (PARK_STEP_*: about a dozen runs in the second, not a
 * hundred; each run on a multiple of its interval on the monotonic clock, so that parked
 * requests run together, in one pass of the readers or one batch of the writers), until
 * they find the rows or their wait is over: a second after their first park, or when the
 * entry leaves, a second after the 202, whichever is first (then at their next run). Then
 * they are answered as they find things (404, 409 in flight, 404 no order). Entries leave in
 * the order they came (answer order: one delivery-report thread). */
#define ANSWERED_US 1000000
#define ANSWERED_SLOTS 8192
#define PARK_STEP_FIRST_US 8192
#define PARK_STEP_MAX_US 131072
struct ing_answered {
    struct ing_answered *older; /* the next to leave after this one */
    int64_t until_us;
    char partner[KS_ID_LEN]; /* whose: another partner's claims and reads never wait */
    size_t n;                /* keys: the payment's id, then its orders' */
    struct answered_key {
        struct answered_key *next;
        struct ing_answered *a;
        char id[KS_ID_LEN];
    } key[];
};

static pthread_mutex_t answered_mu = PTHREAD_MUTEX_INITIALIZER;
static struct answered_key *answered[ANSWERED_SLOTS];
static struct ing_answered *answered_first, *answered_last; /* oldest, newest */
static struct ing_req *parked;                              /* claims and reads (jnext) */
static _Atomic long n_answered, n_parked, n_reruns;

static unsigned answered_slot(const char *id, size_t len)
{
    return ks_hash_mem(KS_HASH_INIT, id, len) % ANSWERED_SLOTS;
}

/* partner's entry whose payment id (order 0) or one of whose order ids (order 1) is id
 * (len bytes), or NULL; answered_mu held */
static struct ing_answered *answered_find(const char *partner, const char *id, size_t len,
                                          int order)
{
    if (len == 0 || len >= KS_ID_LEN)
        return NULL;
    for (struct answered_key *k = answered[answered_slot(id, len)]; k; k = k->next)
        if (strncmp(k->id, id, len) == 0 && k->id[len] == '\0' &&
            (k != &k->a->key[0]) == order && strcmp(k->a->partner, partner) == 0)
            return k->a;
    return NULL;
}

/* r waits for its next run; answered_mu held */
static void park(struct ing_req *r, int64_t now)
{
    if (!r->parked_until_us) {
        r->parked_until_us = now + ANSWERED_US;
        if (r->park_read && r->job_deadline_us && r->parked_until_us > r->job_deadline_us)
            r->parked_until_us = r->job_deadline_us;
    }
    r->park_step_us = r->park_step_us ? r->park_step_us * 2 : PARK_STEP_FIRST_US;
    if (r->park_step_us > PARK_STEP_MAX_US)
        r->park_step_us = PARK_STEP_MAX_US;
    /* the step's next multiple (the steps are powers of two: a multiple of a longer one is
     * one of every shorter one, so the crowd runs together) */
    r->park_next_us = (now / r->park_step_us + 1) * r->park_step_us;
    r->jnext = parked;
    parked = r;
    n_parked++;
}

/* The claim r found what id names not written yet (a retry of its key: the record in
 * flight, id its payment's; a refund: its order missing, id the order's). 1: id belongs to
 * a payment answered here, r parked and claimed again; 0: r is answered as its outcome
 * says. */
static int claim_park(struct ing_req *r, const char *id, int order)
{
    int64_t now;
    int found = 0;

    if (!id || n_answered == 0 || r->park_expired)
        return 0;
    now = ks_clock_mono_us();
    pthread_mutex_lock(&answered_mu);
    if (answered_find(r->partner_id, id, strlen(id), order) != NULL) {
        park(r, now);
        found = 1;
    }
    pthread_mutex_unlock(&answered_mu);
    return found;
}

/* A parked request goes on: a read job to the readers again, a claim to the writers */
static void unpark(struct ing_req *w)
{
    n_reruns++;
    if (w->park_read)
        ing_reader_requeue(w);
    else
        claim_again(w);
}

/* Every tick: entries past their time leave, and the parked claims and reads that are due
 * run again (parked once more if they still find nothing and may still wait; past their
 * wait they are answered as they find things: rows that take that long are behind a
 * consumer that lags or is down, and a client must not hang on them). */
static void answered_tick(void)
{
    struct ing_req *w, *next, *due = NULL, **pp;
    struct ing_answered *gone = NULL;
    int64_t now;

    if (n_answered == 0 && n_parked == 0)
        return;
    now = ks_clock_mono_us();
    pthread_mutex_lock(&answered_mu);
    while (answered_first && answered_first->until_us <= now) {
        struct ing_answered *a = answered_first;
        for (size_t i = 0; i < a->n; i++) {
            struct answered_key **kp = &answered[answered_slot(a->key[i].id,
                                                               strlen(a->key[i].id))];
            while (*kp && *kp != &a->key[i])
                kp = &(*kp)->next;
            if (*kp)
                *kp = a->key[i].next;
        }
        answered_first = a->older;
        if (!answered_first)
            answered_last = NULL;
        n_answered--;
        a->older = gone;
        gone = a;
    }
    for (pp = &parked; (w = *pp) != NULL;) {
        if (w->park_next_us <= now || w->parked_until_us <= now) {
            *pp = w->jnext;
            n_parked--;
            w->jnext = due;
            due = w;
        } else {
            pp = &w->jnext;
        }
    }
    pthread_mutex_unlock(&answered_mu);
    for (struct ing_answered *a = gone, *older; a; a = older) {
        older = a->older;
        free(a);
    }
    for (w = due; w; w = next) {
        next = w->jnext;
        if (w->parked_until_us <= now)
            w->park_expired = 1;
        unpark(w);
    }
}

void ing_accept_stats(long *parked_now, long *reruns)
{
    *parked_now = n_parked;
    *reruns = n_reruns;
}

int ing_accept_park_read(struct ing_req *r, const char *ids, int orders)
{
    struct ing_answered *a = NULL;
    int64_t now;

    if (n_answered == 0 || r->park_expired) {
        r->park_read = 0; /* the job goes on: a refund's claim, parked, is a claim */
        return 0;         /* nothing answered here lately: what was found is the answer */
    }
    now = ks_clock_mono_us();
    pthread_mutex_lock(&answered_mu);
    for (const char *s = ids; *s && !a;) {
        size_t l = strcspn(s, ",");
        a = answered_find(r->partner_id, s, l, orders);
        s += l;
        if (*s == ',')
            s++;
    }
    if (a) {
        r->park_read = 1;
        park(r, now);
    }
    pthread_mutex_unlock(&answered_mu);
    if (!a)
        r->park_read = 0;
    return a != NULL;
}

/* r is a payment whose event Kafka confirmed: it is answered now (its 202 was stored by its
 * claim), and remembered for ANSWERED_US. Out of memory it is answered all the same: its
 * reads then do not wait for its rows. */
static void answer_payment(struct ing_req *r)
{
    const struct ing_payment *pay = &r->u.pay;
    size_t n = 1 + pay->n_orders;
    struct ing_answered *a = calloc(1, sizeof(*a) + n * sizeof(a->key[0]));

    r->t_dr = ks_clock_mono_us();
    if (a) {
        a->n = n;
        a->until_us = r->t_dr + ANSWERED_US;
        memcpy(a->partner, r->partner_id, sizeof(a->partner));
        memcpy(a->key[0].id, r->rid, sizeof(a->key[0].id));
        for (size_t i = 0; i < pay->n_orders; i++)
            memcpy(a->key[1 + i].id, pay->orders[i].oid, sizeof(a->key[0].id));
        pthread_mutex_lock(&answered_mu);
        for (size_t i = 0; i < n; i++) {
            unsigned slot = answered_slot(a->key[i].id, strlen(a->key[i].id));
            a->key[i].a = a;
            a->key[i].next = answered[slot];
            answered[slot] = &a->key[i];
        }
        if (answered_last)
            answered_last->older = a;
        else
            answered_first = a;
        answered_last = a;
        n_answered++;
        pthread_mutex_unlock(&answered_mu);
    }
    ing_req_done(r); /* in the table first: a read after the 202 finds it */
}

/* --- published, finished -------------------------------------------------------------- */

static void on_published(struct ing_req *r, const char *err)
{
    if (!err && r->route == R_PAY_POST) {
        answer_payment(r);
        return;
    }
    if (err) {
        struct ing_problem p;
        ing_problem(&p, "unavailable", NULL, "could not publish the event: %s; retry with "
                    "the same Idempotency-Key", err);
        ing_respond_problem(r, &p);
    }
    finish(r, !err);
}

static void finish(struct ing_req *r, int complete)
{
    r->fin_complete = complete;
    r->t_dr = ks_clock_mono_us();
    free(r->fin_str);
    r->fin_str = ing_text_finish(r, complete); /* NULL: "{}" in the batch, then a 503 */
    ing_store_finish(r);
}

/* The writers' report of r's finish: recorded (committed) or not. A release carries the
 * answer set before it (a 503 or 500). */
static void on_finished(struct ing_req *r, int recorded)
{
    if (r->fin_complete && (!recorded || !r->fin_str))
        unavailable(r, "the event was published but could not be recorded");
    ing_req_done(r);
}

int ing_accept_start(void)
{
    static const struct ing_store_ops ops = {on_claimed, on_finished, answered_tick};
    return ing_store_start(&ops);
}

/* --- writes without an idempotency record ------------------------------------------------- */

static void on_direct(struct ing_req *r, const char *err)
{
    if (err) {
        struct ing_problem p;
        ing_problem(&p, "unavailable", NULL, "could not publish: %s", err);
        ing_respond_problem(r, &p);
    }
    ing_req_done(r);
}

void ing_accept_direct(struct ing_req *r, int suspended, const char *refused)
{
    struct ing_problem p;

    if (!suspended)
        ing_suspend(r);
    if (ing_produce(r, on_direct) != 0) {
        ing_problem(&p, "unavailable", NULL, "%s", refused);
        ing_respond_problem(r, &p);
        ing_req_done(r);
    }
}

/* a settlement file: one hold per row in flight, and the parser's own */
void ing_accept_rows_release(struct ing_req *r)
{
    if (--r->pending != 0)
        return;
    if (r->failed) {
        struct ing_problem p;
        ing_problem(&p, "unavailable", NULL,
                    "%ld of %ld rows were not confirmed by kafka; upload the same file again "
                    "(rows keep their ids)", (long)r->failed, r->rows);
        ing_respond_problem(r, &p);
    }
    ing_req_done(r);
}

static void on_row(struct ing_req *r, const char *err)
{
    if (err)
        r->failed++;
    ing_accept_rows_release(r);
}

void ing_accept_rows_begin(struct ing_req *r)
{
    r->pending = 1; /* the parser's own hold, dropped by its ing_accept_rows_release */
    r->delivered = on_row;
    ing_suspend(r);
}

int ing_accept_row(struct ing_req *r, const char *key, const void *buf, size_t len,
                   const char *msg_id)
{
    r->pending++;
    if (ing_produce_bytes(r, "kasir.settlement.rows", key, buf, len, msg_id,
                          ING_PRODUCE_BLOCK | ING_PRODUCE_UPLOADER) != 0) {
        r->failed++;
        r->pending--;
        return -1;
    }
    r->rows++;
    return 0;
}
