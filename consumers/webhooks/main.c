/* kasir-webhooks - turns verified PSP notifications into outcomes.
 *
 * Reads kasir.webhooks.WebhookReceived (kasir.webhooks.received, key psp + event id: the
 * raw body and headers the ingress verified), reads each PSP's format (parse.c), and for
 * every notification that moves a Kasir operation forward emits a kasir.psp.PspOutcome
 * (source WEBHOOK) to kasir.psp.outcomes through the outbox. A batch at a time, one
 * statement per step for the whole batch (the runtime re-runs a failed batch one message
 * at a time through the same steps):
 *   1. parse: a body that is not its PSP's format is dead-lettered (invalid, the field
 *      and the reason named); one that tells nothing to report is recorded as ignored;
 *   2. lock the batch's operations (advisory locks, in one order), then, in a statement
 *      after it, look them all up: Kasir's operation by the notification's reference
 *      (payment_orders, refunds, payouts), the state this worker, the ledger and the
 *      executor's journal know of it, and whether the event was seen. Two instances reading events of one operation
 *      decide one after the other.
 *      An unknown reference, an amount that is not the operation's, a PSP the executor did
 *      not send the operation to, or an operation no PSP was asked to move is
 *      dead-lettered (check_sent): only reads touched the message so far;
 *   3. decide (wh_decide, state.c) in the batch's order, each event seeing the state the
 *      events before it in the batch left its operation in (a second copy of an event in
 *      the batch finds the first recorded): applied, duplicate, stale or late_success; a
 *      refund or payout reversed after its final state is dead-lettered
 *      (conflicting_final);
 *   4. record the events (webhook_events, unique per psp + event key: the dedup) and the
 *      operations' new states (webhook_operations) in one statement and emit the
 *      outcomes, all in the batch's transaction with the offsets: a crash anywhere replays
 *      the batch, and the event rows make the replay a duplicate.
 *
 *   kasir-webhooks [-c file]      the worker
 *   kasir-webhooks config-doc     its settings as docs/CONFIG.md shows them */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/clock.h"
#include "lib/crypto.h"
#include "lib/db.h"
#include "lib/log.h"
#include "lib/outcome.h"
#include "lib/pgarr.h"
#include "lib/worker.h"
#include "consumers/webhooks/webhooks.h"
#include "lib/banned.h"

#define SCHEMA_IN "kasir.webhooks.WebhookReceived"
#define SCHEMA_OUT "kasir.psp.PspOutcome"

/* The batch's operations' locks ($1 kinds, $2 references; kind '' for none): they
 * serialise the decisions on one operation across instances (its events may sit in
 * several partitions), held to the end of the transaction, taken in the order of their
 * keys so that two instances locking overlapping sets wait instead of deadlocking. A
 * statement of its own: under READ COMMITTED a statement reads the snapshot taken when it
 * began, so the look-up must begin after the locks are granted to see what their previous
 * holders committed. */
static const char SQL_LOCK[] =
    "SELECT pg_advisory_xact_lock(h) FROM ("
    "  SELECT DISTINCT hashtextextended(k || ':' || r, 7001) AS h"
    "    FROM unnest($1::text[], $2::text[]) AS u(k, r) WHERE k <> '' ORDER BY 1) s";

/* Each notification's operation by its reference, with what is known of its state.
 * Columns: the notification's place among those looked up (1-based), then (LK_*)
 * partner, payment, order, amount, currency, table status (NULL: no such operation), our
 * status, late_success, event seen, the PSPs the executor sent it to (executor_attempts,
 * written before a request leaves; "," + names + ",", NULL when it sent it nowhere), and
 * the verdict of the executor's last resolved attempt at this PSP (NULL: none). $1 kinds ('' for a notification about no operation), $2 references,
 * $3 PSPs, $4 event keys. */
static const char SQL_LOOK[] =
    "SELECT u.i, t.partner_id, t.payment_id, t.order_id, t.amount_minor, t.currency, t.status,"
    "       w.status, w.late_success,"
    "       EXISTS (SELECT 1 FROM webhook_events e WHERE e.psp = u.psp AND e.event_key = u.key),"
    "       (SELECT ',' || string_agg(DISTINCT a.psp, ',') || ',' FROM executor_attempts a"
    "         WHERE a.object_id = u.ref AND a.kind = u.kind),"
    "       (SELECT a.verdict FROM executor_attempts a"
    "         WHERE a.object_id = u.ref AND a.kind = u.kind AND a.psp = u.psp"
    "           AND a.state = 'resolved' ORDER BY a.attempt DESC LIMIT 1)"
    "  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])"
    "       WITH ORDINALITY AS u(kind, ref, psp, key, i)"
    "  LEFT JOIN LATERAL ("
    "    SELECT o.partner_id, o.payment_id, o.order_id, o.amount_minor, o.currency, o.status"
    "      FROM payment_orders o WHERE u.kind = 'CHARGE' AND o.order_id = u.ref"
    "    UNION ALL"
    "    SELECT r.partner_id, r.payment_id, r.order_id, r.amount_minor, r.currency, r.status"
    "      FROM refunds r WHERE u.kind = 'REFUND' AND r.refund_id = u.ref"
    "    UNION ALL"
    "    SELECT p.partner_id, NULL, NULL, p.amount_minor, p.currency, p.status"
    "      FROM payouts p WHERE u.kind = 'PAYOUT' AND p.payout_id = u.ref) t ON true"
    "  LEFT JOIN webhook_operations w ON w.kind = u.kind AND w.object_id = u.ref";
enum { LK_PARTNER = 1, LK_PAYMENT, LK_ORDER, LK_AMOUNT, LK_CURRENCY, LK_STATUS, LK_OURS,
       LK_LATE, LK_SEEN, LK_PSPS, LK_VERDICT };

/* The events and what each did ($1-$9, one element per event), and the operations' new
 * states ($10-$13, one element per operation: its state after the batch's last event that
 * moved it, late_success when one of them was a late success), in one statement. A
 * concurrent copy of an event (a zombie owner) fails on the event's key: the batch is
 * re-run. */
static const char SQL_RECORD[] =
    "WITH op AS ("
    "  INSERT INTO webhook_operations AS w (kind, object_id, status, late_success)"
    "  SELECT * FROM unnest($10::text[], $11::text[], $12::text[], $13::boolean[])"
    "  ON CONFLICT (kind, object_id) DO UPDATE"
    "    SET status = excluded.status, late_success = w.late_success OR excluded.late_success,"
    "        updated_at = now())"
    " INSERT INTO webhook_events (psp, event_key, webhook_id, kind, object_id, status, result,"
    "                             reason, outcome_id)"
    " SELECT psp, key, wid, NULLIF(kind, ''), NULLIF(ref, ''), NULLIF(st, ''), res,"
    "        NULLIF(why, ''), NULLIF(oid, '')"
    "   FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],"
    "               $7::text[], $8::text[], $9::text[])"
    "        AS u(psp, key, wid, kind, ref, st, res, why, oid)";
enum { N_EV = 9, N_OP = 4 };

/* One notification of the batch and what was decided for it. */
struct item {
    struct ks_msg *m;
    const char *psp;    /* the message's psp field, read once */
    struct wh_note n;
    char key[300];      /* the dedup key: event id (or webhook id) + the note's suffix */
    int row;            /* its look-up row, -1 while none */
    size_t first;       /* the batch's first item about its operation (itself, maybe) */
    long copy_of;       /* the batch's previous item with its event, -1 none */
    int done;           /* dead-lettered, or nothing to do */
    int recorded;       /* its event goes into webhook_events */
    enum wh_result r;
    char outcome_id[KS_ID_LEN];
    /* on an operation's first item: our state of it as the batch's events so far left it
     * (-2: not read yet, -1: none), its late success reported, an event of the batch
     * moved it */
    int ours, late, moved;
};

struct hooks {
    json_t *out; /* one PspOutcome, refilled for each output (emit copies it) */
    unsigned char *body;
    size_t body_cap;
    struct item *items; /* the batch's, cap of them */
    size_t cap;
    size_t *ix;
    struct ks_pgarr a[N_EV + N_OP];
    /* the statements, prepared once per session of the worker's one connection */
    struct ks_pg_stmt q_lock, q_look, q_record;
};

static const char *str_field(const json_t *v, const char *name)
{
    const char *s = json_string_value(json_object_get(v, name));
    return s ? s : "";
}

static enum ks_code validate(const struct ks_msg *m, void *ctx, struct ks_err *err)
{
    (void)ctx;
    if (strcmp(m->schema, SCHEMA_IN) != 0)
        return ks_err_set(err, KS_EINVAL, 0, NULL, "unexpected schema %s", m->schema);
    if (!*str_field(m->value, "psp"))
        return ks_err_set(err, KS_EINVAL, 0, "psp", "psp is empty");
    if (!wh_verification_ok(str_field(m->value, "psp"), str_field(m->value, "verification")))
        return ks_err_set(err, KS_EINVAL, 0, "verification",
                          "verification %.40s is not how the ingress verifies psp %.40s",
                          str_field(m->value, "verification"), str_field(m->value, "psp"));
    if (!*str_field(m->value, "webhook_id"))
        return ks_err_set(err, KS_EINVAL, 0, "webhook_id", "webhook_id is empty");
    if (!json_is_string(json_object_get(m->value, "body")))
        return ks_err_set(err, KS_EINVAL, 0, "body", "body is missing");
    return KS_OK;
}

/* the raw body, from the base64 the serde gives bytes as */
static enum ks_code body_of(struct hooks *h, const struct ks_msg *m, size_t *len,
                            struct ks_err *err)
{
    const char *b64 = str_field(m->value, "body");
    size_t n = strlen(b64);
    long got;

    if (n / 4 * 3 + 3 > h->body_cap) {
        unsigned char *nb = realloc(h->body, n / 4 * 3 + 3);
        if (!nb)
            return ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
        h->body = nb;
        h->body_cap = n / 4 * 3 + 3;
    }
    got = ks_b64_decode(b64, n, h->body, h->body_cap);
    if (got < 0)
        return ks_err_set(err, KS_EINVAL, 0, "body", "body is not base64");
    *len = (size_t)got;
    return KS_OK;
}

static int set_str(json_t *o, const char *k, const char *v)
{
    return json_object_set_new(o, k, v && *v ? json_string(v) : json_null());
}

/* the PspOutcome of n for the operation looked up in row row of res */
static enum ks_code emit(struct ks_batch *b, struct ks_msg *m, struct hooks *h,
                         const struct wh_note *n, PGresult *res, int row,
                         const char *outcome_id, struct ks_err *err)
{
    const char *topic = ks_config_str(ks_worker_config(ks_batch_worker(b)),
                                      "webhooks.output_topic");
    const char *order = PQgetisnull(res, row, LK_ORDER) ? NULL : PQgetvalue(res, row, LK_ORDER);
    const char *key = n->kind == WH_PAYOUT ? n->reference : order;
    char msg_id[KS_ID_LEN];
    json_t *o = h->out, *na = json_object();
    int bad = 0;

    if (!na)
        return ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
    for (int i = 0; i < n->n_next; i++)
        bad |= json_object_set_new(na, n->next_name[i], json_string(n->next_value[i]));
    ks_outcome_message_id(outcome_id, msg_id);
    bad |= set_str(o, "message_id", msg_id);
    bad |= json_object_set_new(o, "occurred_at", json_integer((json_int_t)ks_clock_wall_us()));
    bad |= set_str(o, "partner_id", PQgetvalue(res, row, LK_PARTNER));
    bad |= set_str(o, "outcome_id", outcome_id);
    bad |= set_str(o, "order_id", order);
    bad |= set_str(o, "payment_id", PQgetisnull(res, row, LK_PAYMENT) ? NULL : PQgetvalue(res, row, LK_PAYMENT));
    bad |= set_str(o, "refund_id", n->kind == WH_REFUND ? n->reference : NULL);
    bad |= set_str(o, "payout_id", n->kind == WH_PAYOUT ? n->reference : NULL);
    bad |= set_str(o, "kind", wh_kind_name(n->kind));
    bad |= set_str(o, "status", wh_status_name(n->status));
    bad |= set_str(o, "psp", str_field(m->value, "psp"));
    bad |= set_str(o, "psp_reference", n->psp_reference);
    /* the operation's own amount when the PSP does not say (checked equal when it does) */
    bad |= json_object_set_new(o, "amount_minor",
                               json_integer(n->has_amount ? (json_int_t)n->amount_minor
                                                          : strtoll(PQgetvalue(res, row, LK_AMOUNT),
                                                                    NULL, 10)));
    bad |= json_object_set_new(o, "fee_minor", json_integer((json_int_t)n->fee_minor));
    bad |= set_str(o, "currency", PQgetvalue(res, row, LK_CURRENCY));
    bad |= set_str(o, "failure_code", n->failure_code);
    bad |= set_str(o, "failure_message", n->failure_message);
    bad |= json_object_set_new(o, "next_action", na);
    bad |= set_str(o, "source", "WEBHOOK");
    if (bad)
        return ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
    return ks_batch_emit(b, m, topic, key, strlen(key), SCHEMA_OUT, o, err);
}

/* A notification moves only what its PSP was asked to do. The executor journals every
 * attempt (its PSP) before the request leaves, so a genuine notification always finds one
 * at its PSP: one for an operation sent only elsewhere, or for one never sent (an order
 * not started, a refund or payout not yet handed over, a payout HELD by risk, anything
 * refused before a PSP), is forged or not ours, and reporting it would book money that no PSP moved. An operation with no
 * attempt that is past those states (created by other means) is judged on the rest. */
static enum ks_code check_sent(const struct wh_note *n, const char *psp, PGresult *res,
                               int row, struct ks_err *err)
{
    /* FAILED with no attempt: refused before any PSP (a risk decline, a refund the
     * executor refused): a success for it is not a late success */
    static const char *const unsent[][2] = {
        {"CHARGE", "NOT_STARTED"}, {"CHARGE", "FAILED"},   {"REFUND", "PENDING_PUBLISH"},
        {"REFUND", "REQUESTED"},   {"REFUND", "FAILED"},   {"PAYOUT", "PENDING_PUBLISH"},
        {"PAYOUT", "REQUESTED"},   {"PAYOUT", "HELD"},     {"PAYOUT", "FAILED"},
    };
    const char *kind = wh_kind_name(n->kind), *st = PQgetvalue(res, row, LK_STATUS);
    char want[48];

    if (!PQgetisnull(res, row, LK_PSPS)) {
        snprintf(want, sizeof(want), ",%.40s,", psp);
        if (strstr(PQgetvalue(res, row, LK_PSPS), want))
            return KS_OK;
        return ks_err_set(err, KS_EINVAL, 0, "psp",
                          "psp_mismatch: %s %.128s was sent to %.60s, not to %.40s", kind,
                          n->reference, PQgetvalue(res, row, LK_PSPS), psp);
    }
    for (size_t i = 0; i < sizeof(unsent) / sizeof(unsent[0]); i++)
        if (strcmp(unsent[i][0], kind) == 0 && strcmp(unsent[i][1], st) == 0)
            return ks_err_set(err, KS_EINVAL, 0, "reference",
                              "not_sent: %s %.128s is %s, no PSP was asked to move it (the "
                              "%s notification says %s)",
                              kind, n->reference, st, psp, wh_status_name(n->status));
    return KS_OK;
}

static const struct item *g_items; /* qsort has no context argument */

static int same_event(const struct item *x, const struct item *y)
{
    return strcmp(x->psp, y->psp) == 0 &&
           strcmp(x->key, y->key) == 0;
}

static int same_operation(const struct item *x, const struct item *y)
{
    return x->n.kind == y->n.kind && strcmp(x->n.reference, y->n.reference) == 0;
}

/* by event (psp, key), then by place in the batch */
static int by_event(const void *a, const void *b)
{
    const struct item *x = &g_items[*(const size_t *)a], *y = &g_items[*(const size_t *)b];
    int c = strcmp(x->psp, y->psp);
    if (!c)
        c = strcmp(x->key, y->key);
    return c ? c : (x > y) - (x < y);
}

/* by operation (kind, reference), then by place in the batch */
static int by_operation(const void *a, const void *b)
{
    const struct item *x = &g_items[*(const size_t *)a], *y = &g_items[*(const size_t *)b];
    int c = (int)x->n.kind - (int)y->n.kind;
    if (!c)
        c = strcmp(x->n.reference, y->n.reference);
    return c ? c : (x > y) - (x < y);
}

/* The state an executor verdict (executor_attempts.verdict) reported, as the executor
 * names it in its outcome; -1 for none (PENDING: the result comes by webhook). */
static int verdict_state(enum wh_kind k, const char *verdict)
{
    if (strcmp(verdict, "SUCCEEDED") == 0)
        return k == WH_PAYOUT ? WH_PAID_OUT : k == WH_REFUND ? WH_REFUNDED : WH_SUCCEEDED;
    if (strcmp(verdict, "FAILED") == 0)
        return WH_FAILED;
    if (strcmp(verdict, "PENDING_CUSTOMER") == 0)
        return WH_PENDING_CUSTOMER;
    return -1;
}

static void fail(struct ks_batch *b, struct item *it, const struct ks_err *e)
{
    ks_batch_fail(b, it->m, e);
    it->done = 1;
}

/* Step 1: every message parsed (or dead-lettered); h->ix[0..*np) the parsed ones, each
 * linked to the batch's first item about its operation and to an earlier copy of its
 * event. */
static enum ks_code parse_all(struct ks_batch *b, struct hooks *h, size_t n, size_t *np,
                              struct ks_err *err)
{
    size_t k, m = 0;

    if (n > h->cap) {
        struct item *ni = realloc(h->items, n * sizeof(*ni));
        size_t *nx;
        if (!ni)
            return ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
        h->items = ni;
        if (!(nx = realloc(h->ix, n * sizeof(*nx))))
            return ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
        h->ix = nx;
        h->cap = n;
    }
    for (size_t i = 0; i < n; i++) {
        struct item *it = &h->items[i];
        struct ks_err e = {0};
        const char *evid;
        size_t len = 0;

        memset(it, 0, sizeof(*it));
        it->m = ks_batch_msg(b, i);
        it->psp = str_field(it->m->value, "psp");
        it->row = -1;
        it->copy_of = -1;
        it->first = i;
        it->ours = -2;
        if (body_of(h, it->m, &len, &e) != KS_OK ||
            wh_parse(it->psp, h->body, len, &it->n, &e) != KS_OK) {
            fail(b, it, &e);
            continue;
        }
        evid = json_string_value(json_object_get(it->m->value, "event_id"));
        snprintf(it->key, sizeof(it->key), "%.250s%s",
                 evid ? evid : str_field(it->m->value, "webhook_id"), it->n.key_suffix);
        h->ix[m++] = i;
    }
    g_items = h->items;
    qsort(h->ix, m, sizeof(*h->ix), by_event);
    for (k = 1; k < m; k++)
        if (same_event(&h->items[h->ix[k - 1]], &h->items[h->ix[k]]))
            h->items[h->ix[k]].copy_of = (long)h->ix[k - 1];
    qsort(h->ix, m, sizeof(*h->ix), by_operation);
    for (k = 1; k < m; k++) {
        struct item *prev = &h->items[h->ix[k - 1]], *it = &h->items[h->ix[k]];
        if (it->n.kind != WH_NONE && same_operation(prev, it))
            it->first = prev->first;
    }
    /* back to the batch's order: the look-up's rows name items by this order */
    for (k = 0, m = 0; k < n; k++)
        if (!h->items[k].done)
            h->ix[m++] = k;
    *np = m;
    return KS_OK;
}

/* Step 2: the locks, then the look-up (*out) of the m parsed items. */
static enum ks_code look_up(struct hooks *h, PGconn *pg, size_t m, PGresult **out,
                            struct ks_err *err)
{
    const char *p[4];
    PGresult *res;
    enum ks_code rc;

    for (int j = 0; j < 4; j++)
        ks_pgarr_reset(&h->a[j]);
    for (size_t k = 0; k < m; k++) {
        const struct item *it = &h->items[h->ix[k]];
        ks_pgarr_text(&h->a[0], wh_kind_name(it->n.kind));
        ks_pgarr_text(&h->a[1], it->n.kind ? it->n.reference : "");
        ks_pgarr_text(&h->a[2], it->psp);
        ks_pgarr_text(&h->a[3], it->key);
    }
    for (int j = 0; j < 4; j++)
        if (!(p[j] = ks_pgarr_str(&h->a[j])))
            return ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
    res = ks_pg_exec(pg, &h->q_lock, p, NULL, NULL, 0);
    rc = ks_pg_check(pg, res, PGRES_TUPLES_OK, "lock the operations", err);
    PQclear(res);
    if (rc != KS_OK)
        return rc;
    *out = ks_pg_exec(pg, &h->q_look, p, NULL, NULL, 0);
    if ((rc = ks_pg_check(pg, *out, PGRES_TUPLES_OK, "look up the operations", err)) != KS_OK)
        return rc;
    for (int r = 0; r < PQntuples(*out); r++) {
        long j = strtol(PQgetvalue(*out, r, 0), NULL, 10);
        if (j >= 1 && (size_t)j <= m)
            h->items[h->ix[j - 1]].row = r;
    }
    return KS_OK;
}

/* Step 3 for one item: its decision, its outcome emitted; KS_OK also when it was
 * dead-lettered (it->done) or is nothing new. */
static enum ks_code decide(struct ks_batch *b, struct hooks *h, struct item *it, PGresult *res,
                           struct ks_err *err)
{
    const char *psp = it->psp;
    struct item *op = &h->items[it->first];
    const struct wh_note *n = &it->n;
    struct ks_err e = {0};
    int row = it->row, cur, seen;
    char exp[64];

    seen = strcmp(PQgetvalue(res, row, LK_SEEN), "t") == 0 ||
           (it->copy_of >= 0 && h->items[it->copy_of].recorded);
    if (n->kind == WH_NONE) {
        /* recorded, not reported; a replayed copy finds its row */
        if (seen) {
            it->done = 1;
            return KS_OK;
        }
        ks_log(KS_LOG_INFO, "webhooks.event.ignored", n->reason, "psp", psp, "event_id", it->key,
               "message_id", it->m->message_id, NULL);
        it->recorded = 1;
        return KS_OK;
    }
    if (PQgetisnull(res, row, LK_STATUS)) {
        ks_err_set(&e, KS_ENOTFOUND, 0, "reference",
                   "unknown_reference: no %s %.128s for this %s notification",
                   n->kind == WH_CHARGE ? "payment order" : n->kind == WH_REFUND ? "refund" : "payout",
                   n->reference, psp);
        fail(b, it, &e);
        return KS_OK;
    }
    if (seen) { /* this event was read before: its effects are in */
        it->done = 1;
        return KS_OK;
    }
    if (check_sent(n, psp, res, row, &e) != KS_OK) {
        fail(b, it, &e);
        return KS_OK;
    }
    if (n->has_amount && (n->amount_minor != strtoll(PQgetvalue(res, row, LK_AMOUNT), NULL, 10) ||
                          strcmp(n->currency, PQgetvalue(res, row, LK_CURRENCY)) != 0)) {
        snprintf(exp, sizeof(exp), "%s %s", PQgetvalue(res, row, LK_AMOUNT),
                 PQgetvalue(res, row, LK_CURRENCY));
        ks_err_set(&e, KS_EINVAL, 0, "amount",
                   "amount_mismatch: %s %.128s is %s minor units, the %s notification "
                   "says %" PRId64 " %s",
                   wh_kind_name(n->kind), n->reference, exp, psp, n->amount_minor, n->currency);
        fail(b, it, &e);
        return KS_OK;
    }
    /* our state when we have one (as the batch's events before this one left it); else
     * what the tables say (the executor's outcomes, posted by the ledger), or what the
     * executor's journal says when the ledger has not posted it yet: a resolved attempt's
     * outcome is in the executor's outbox, committed with the verdict, so the same
     * outcome from a webhook would only be a duplicate for the ledger to drop */
    if (op->ours == -2) {
        op->ours = PQgetisnull(res, row, LK_OURS) ? -1 : wh_status_parse(PQgetvalue(res, row, LK_OURS));
        op->late = strcmp(PQgetvalue(res, row, LK_LATE), "t") == 0;
    }
    cur = op->ours;
    if (cur < 0 || cur == WH_PENDING_CUSTOMER) {
        int t = wh_table_state(n->kind, PQgetvalue(res, row, LK_STATUS));
        if (t < 0 || t == WH_PENDING_CUSTOMER) {
            int x = verdict_state(n->kind, PQgetvalue(res, row, LK_VERDICT));
            if (x >= 0 && (t < 0 || x != WH_PENDING_CUSTOMER))
                t = x;
        }
        if (t >= 0 && (cur < 0 || t != WH_PENDING_CUSTOMER))
            cur = t;
    }
    it->r = wh_decide(n->kind, cur, op->late, n->status);
    if (it->r == WH_CONFLICT) {
        ks_err_set(&e, KS_EINVAL, 0, "status", "conflicting_final: %s %.128s is %s, the %s notification says %s",
                   wh_kind_name(n->kind), n->reference, wh_status_name((enum wh_status)cur), psp,
                   wh_status_name(n->status));
        fail(b, it, &e);
        return KS_OK;
    }
    if (it->r == WH_APPLIED || it->r == WH_LATE) {
        enum ks_code rc;
        ks_outcome_id(wh_kind_name(n->kind), n->reference, wh_status_name(n->status), it->outcome_id);
        if ((rc = emit(b, it->m, h, n, res, row, it->outcome_id, err)) != KS_OK)
            return rc;
        /* the operation's state to store: the new one, or (a late success) the final one
         * it keeps, marked */
        op->ours = it->r == WH_APPLIED ? (int)n->status : cur;
        op->late |= it->r == WH_LATE;
        op->moved = 1;
    } else {
        ks_log(KS_LOG_INFO, "webhooks.event.unchanged", "the operation is already there", "psp", psp,
               "event_id", it->key, "kind", wh_kind_name(n->kind), "reference", n->reference,
               "status", wh_status_name(n->status), "result", wh_result_name(it->r), NULL);
    }
    it->recorded = 1;
    return KS_OK;
}

/* Step 4: the recorded events and the operations they moved, in one statement. */
static enum ks_code record_all(struct hooks *h, PGconn *pg, size_t n, struct ks_err *err)
{
    const char *p[N_EV + N_OP];
    struct ks_pgarr *a = h->a;
    PGresult *res;
    enum ks_code rc;
    size_t nev = 0;

    for (int j = 0; j < N_EV + N_OP; j++)
        ks_pgarr_reset(&a[j]);
    for (size_t i = 0; i < n; i++) {
        const struct item *it = &h->items[i];
        const struct wh_note *nt = &it->n;
        if (it->recorded) {
            ks_pgarr_text(&a[0], it->psp);
            ks_pgarr_text(&a[1], it->key);
            ks_pgarr_text(&a[2], str_field(it->m->value, "webhook_id"));
            ks_pgarr_text(&a[3], wh_kind_name(nt->kind));
            ks_pgarr_text(&a[4], nt->kind ? nt->reference : "");
            ks_pgarr_text(&a[5], nt->kind ? wh_status_name(nt->status) : "");
            ks_pgarr_text(&a[6], nt->kind ? wh_result_name(it->r) : "ignored");
            ks_pgarr_text(&a[7], nt->reason);
            ks_pgarr_text(&a[8], it->outcome_id);
            nev++;
        }
        if (it->first == i && it->moved) {
            ks_pgarr_text(&a[N_EV + 0], wh_kind_name(nt->kind));
            ks_pgarr_text(&a[N_EV + 1], nt->reference);
            ks_pgarr_text(&a[N_EV + 2], wh_status_name((enum wh_status)it->ours));
            ks_pgarr_text(&a[N_EV + 3], it->late ? "t" : "f");
        }
    }
    if (nev == 0)
        return KS_OK;
    for (int j = 0; j < N_EV + N_OP; j++)
        if (!(p[j] = ks_pgarr_str(&a[j])))
            return ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
    res = ks_pg_exec(pg, &h->q_record, p, NULL, NULL, 0);
    rc = ks_pg_check(pg, res, PGRES_COMMAND_OK, "record webhook events", err);
    PQclear(res);
    return rc;
}

static enum ks_code handle_batch(struct ks_batch *b, PGconn *pg, void *ctx, struct ks_err *err)
{
    struct hooks *h = ctx;
    size_t n = ks_batch_count(b), m = 0;
    PGresult *res = NULL;
    enum ks_code rc;

    if (n == 0)
        return KS_OK;
    if ((rc = parse_all(b, h, n, &m, err)) != KS_OK || m == 0)
        return rc;
    if ((rc = look_up(h, pg, m, &res, err)) != KS_OK)
        goto out;
    for (size_t i = 0; i < n && rc == KS_OK; i++) {
        struct item *it = &h->items[i];
        if (!it->done && it->row >= 0)
            rc = decide(b, h, it, res, err);
    }
    if (rc == KS_OK)
        rc = record_all(h, pg, n, err);
out:
    PQclear(res);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct ks_config_def defs[] = {
        {"webhooks.output_topic", KS_CFG_STRING, "kasir.psp.outcomes", 0,
         "topic the outcomes (kasir.psp.PspOutcome, source WEBHOOK) go to"},
    };
    static struct hooks h = {
        .q_lock = KS_PG_STMT("webhooks_lock", SQL_LOCK, 2),
        .q_look = KS_PG_STMT("webhooks_look", SQL_LOOK, 4),
        .q_record = KS_PG_STMT("webhooks_record", SQL_RECORD, N_EV + N_OP),
    };
    const struct ks_worker_spec spec = {
        .name = "webhooks",
        .group = "kasir-webhooks",
        .topics = "kasir.webhooks.received",
        .http_port = "8150",
        .validate = validate,
        .handle_batch = handle_batch,
        .ctx = &h,
    };
    int rc;

    if (!(h.out = json_object()))
        return 1;
    for (int j = 0; j < N_EV + N_OP; j++)
        ks_pgarr_init(&h.a[j]);
    rc = ks_worker_main(&spec, defs, sizeof(defs) / sizeof(defs[0]), argc, argv);
    json_decref(h.out);
    free(h.body);
    free(h.items);
    free(h.ix);
    for (int j = 0; j < N_EV + N_OP; j++)
        ks_pgarr_release(&h.a[j]);
    return rc;
}
