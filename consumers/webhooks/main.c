/* kasir-webhooks - turns verified PSP notifications into outcomes.
 *
 * Reads kasir.webhooks.WebhookReceived (kasir.webhooks.received, key psp + event id: the
 * raw body and headers the ingress verified), reads each PSP's format (parse.c), and for
 * every notification that moves a Kasir operation forward emits a kasir.psp.PspOutcome
 * (source WEBHOOK) to kasir.psp.outcomes through the outbox. One message at a time, each
 * under its own savepoint (ks_batch_run_msg), in four steps:
 *   1. parse: a body that is not its PSP's format is dead-lettered (invalid, the field
 *      and the reason named); one that tells nothing to report is recorded as ignored;
 *   2. look up, in one statement: Kasir's operation by the notification's reference
 *      (payment_orders, refunds, payouts), the state this worker and the ledger know of
 *      it, and whether the event was seen; the operation's advisory lock is taken first
 *      (a statement before), so two instances reading two events of one operation decide
 *      one after the other.
 *      An unknown reference or an amount that is not the operation's is dead-lettered;
 *   3. decide (wh_decide, state.c): applied, duplicate, stale or late_success;
 *   4. record the event (webhook_events, unique per psp + event key: the dedup) and the
 *      operation's new state (webhook_operations) and emit the outcome, all in the
 *      batch's transaction with the offsets: a crash anywhere replays the batch, and the
 *      event row makes the replay a duplicate.
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
#include "lib/worker.h"
#include "consumers/webhooks/webhooks.h"
#include "lib/banned.h"

#define SCHEMA_IN "kasir.webhooks.WebhookReceived"
#define SCHEMA_OUT "kasir.psp.PspOutcome"

/* The operation's lock ($1 kind, $2 reference): it serialises the decisions on one
 * operation across instances (its events may sit in several partitions), held to the end
 * of the transaction. A statement of its own: under READ COMMITTED a statement reads the
 * snapshot taken when it began, so the look-up must begin after the lock is granted to
 * see what its previous holder committed. */
static const char SQL_LOCK[] =
    "SELECT pg_advisory_xact_lock(hashtextextended($1 || ':' || $2, 7001))";

/* The operation by its reference, with what is known of its state. Columns: partner,
 * payment, order, amount, currency, table status, our status, late_success, event seen.
 * $1 kind, $2 reference, $3 psp, $4 event key. */
#define SQL_LOOK_(tbl, idcol, payment, order)                                                 \
    "SELECT t.partner_id, " payment ", " order ", t.amount_minor, t.currency, t.status,"      \
    "       w.status, w.late_success,"                                                        \
    "       EXISTS (SELECT 1 FROM webhook_events e WHERE e.psp = $3 AND e.event_key = $4)"    \
    "  FROM " tbl " t"                                                                        \
    "  LEFT JOIN webhook_operations w ON w.kind = $1 AND w.object_id = $2"                    \
    " WHERE t." idcol " = $2"

/* The event and what it did, and for a transition the operation's new state ($10; ''
 * for none) or its late-success mark ($11), in one statement. A concurrent copy of the
 * event (a zombie owner) fails on the event's key. */
static const char SQL_RECORD[] =
    "WITH op AS ("
    "  INSERT INTO webhook_operations AS w (kind, object_id, status, late_success)"
    "  SELECT $4, $5, $10, $11::boolean WHERE $10 <> ''"
    "  ON CONFLICT (kind, object_id) DO UPDATE"
    "    SET status = excluded.status, late_success = w.late_success OR excluded.late_success,"
    "        updated_at = now())"
    " INSERT INTO webhook_events (psp, event_key, webhook_id, kind, object_id, status, result,"
    "                             reason, outcome_id)"
    " VALUES ($1, $2, $3, NULLIF($4, ''), NULLIF($5, ''), NULLIF($6, ''), $7, NULLIF($8, ''),"
    "         NULLIF($9, ''))";

static const char SQL_SEEN[] = "SELECT 1 FROM webhook_events WHERE psp = $1 AND event_key = $2";

/* the statements, prepared once per session (names "wh_<index>") */
static const struct stmt {
    const char *sql;
    int nparams;
} stmts[] = {
    {NULL, 0}, /* WH_NONE has no look-up */
    {SQL_LOOK_("payment_orders", "order_id", "t.payment_id", "t.order_id"), 4},
    {SQL_LOOK_("refunds", "refund_id", "t.payment_id", "t.order_id"), 4},
    {SQL_LOOK_("payouts", "payout_id", "NULL", "NULL"), 4},
    {SQL_RECORD, 11},
    {SQL_SEEN, 2},
    {SQL_LOCK, 2},
};
enum { ST_RECORD = 4, ST_SEEN = 5, ST_LOCK = 6, ST__N = 7 };

struct hooks {
    PGconn *prepared_on; /* the session the statements are prepared in (and its backend) */
    int prepared_pid;
    json_t *out; /* one PspOutcome, refilled for each output (emit copies it) */
    unsigned char *body;
    size_t body_cap;
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

/* planning a statement costs about as much as running it for one message: each is
 * prepared once per session (a reconnect is a new session: its pointer or backend differs) */
static enum ks_code prepare(struct hooks *h, PGconn *pg, struct ks_err *err)
{
    char name[16];
    PGresult *have;
    enum ks_code rc;

    if (h->prepared_on == pg && h->prepared_pid == PQbackendPID(pg))
        return KS_OK;
    /* a session where an earlier try prepared some of them keeps those: prepare the rest */
    have = PQexec(pg, "SELECT name FROM pg_prepared_statements WHERE name LIKE 'wh\\_%'");
    if ((rc = ks_pg_check(pg, have, PGRES_TUPLES_OK, "list prepared statements", err)) != KS_OK)
        goto out;
    for (int i = 1; i < ST__N && rc == KS_OK; i++) {
        PGresult *res;
        int found = 0;
        snprintf(name, sizeof(name), "wh_%d", i);
        for (int k = 0; k < PQntuples(have); k++)
            found |= strcmp(PQgetvalue(have, k, 0), name) == 0;
        if (found)
            continue;
        res = PQprepare(pg, name, stmts[i].sql, stmts[i].nparams, NULL);
        rc = ks_pg_check(pg, res, PGRES_COMMAND_OK, "prepare a statement", err);
        PQclear(res);
    }
    if (rc == KS_OK) {
        h->prepared_on = pg;
        h->prepared_pid = PQbackendPID(pg);
    }
out:
    PQclear(have);
    return rc;
}

static PGresult *run(PGconn *pg, int i, const char *const *params)
{
    char name[16];

    snprintf(name, sizeof(name), "wh_%d", i);
    return PQexecPrepared(pg, name, stmts[i].nparams, params, NULL, NULL, 0);
}

/* op_status: the operation's state to store ("" when it does not change) */
static enum ks_code record(PGconn *pg, const char *psp, const char *key, const char *wid,
                           const struct wh_note *n, enum wh_result r, const char *outcome_id,
                           const char *op_status, struct ks_err *err)
{
    const char *p[11] = {psp, key, wid, wh_kind_name(n->kind), n->kind ? n->reference : "",
                         n->kind ? wh_status_name(n->status) : "",
                         n->kind ? wh_result_name(r) : "ignored", n->reason, outcome_id,
                         op_status, r == WH_LATE ? "true" : "false"};
    PGresult *res = run(pg, ST_RECORD, p);
    enum ks_code rc = ks_pg_check(pg, res, PGRES_COMMAND_OK, "record webhook event", err);

    PQclear(res);
    return rc;
}

static int set_str(json_t *o, const char *k, const char *v)
{
    return json_object_set_new(o, k, v && *v ? json_string(v) : json_null());
}

/* the PspOutcome of n for the operation looked up in row 0 of res */
static enum ks_code emit(struct ks_batch *b, struct ks_msg *m, struct hooks *h,
                         const struct wh_note *n, PGresult *res, const char *outcome_id,
                         struct ks_err *err)
{
    const char *topic = ks_config_str(ks_worker_config(ks_batch_worker(b)),
                                      "webhooks.output_topic");
    const char *order = PQgetisnull(res, 0, 2) ? NULL : PQgetvalue(res, 0, 2);
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
    bad |= set_str(o, "partner_id", PQgetvalue(res, 0, 0));
    bad |= set_str(o, "outcome_id", outcome_id);
    bad |= set_str(o, "order_id", order);
    bad |= set_str(o, "payment_id", PQgetisnull(res, 0, 1) ? NULL : PQgetvalue(res, 0, 1));
    bad |= set_str(o, "refund_id", n->kind == WH_REFUND ? n->reference : NULL);
    bad |= set_str(o, "payout_id", n->kind == WH_PAYOUT ? n->reference : NULL);
    bad |= set_str(o, "kind", wh_kind_name(n->kind));
    bad |= set_str(o, "status", wh_status_name(n->status));
    bad |= set_str(o, "psp", str_field(m->value, "psp"));
    bad |= set_str(o, "psp_reference", n->psp_reference);
    /* the operation's own amount when the PSP does not say (checked equal when it does) */
    bad |= json_object_set_new(o, "amount_minor",
                               json_integer(n->has_amount ? (json_int_t)n->amount_minor
                                                          : strtoll(PQgetvalue(res, 0, 3),
                                                                    NULL, 10)));
    bad |= json_object_set_new(o, "fee_minor", json_integer((json_int_t)n->fee_minor));
    bad |= set_str(o, "currency", PQgetvalue(res, 0, 4));
    bad |= set_str(o, "failure_code", n->failure_code);
    bad |= set_str(o, "failure_message", n->failure_message);
    bad |= json_object_set_new(o, "next_action", na);
    bad |= set_str(o, "source", "WEBHOOK");
    if (bad)
        return ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
    return ks_batch_emit(b, m, topic, key, strlen(key), SCHEMA_OUT, o, err);
}

static enum ks_code handle(struct ks_batch *b, struct ks_msg *m, PGconn *pg, void *ctx,
                           struct ks_err *err)
{
    struct hooks *h = ctx;
    const char *psp = str_field(m->value, "psp"), *wid = str_field(m->value, "webhook_id");
    const char *evid = json_string_value(json_object_get(m->value, "event_id"));
    struct wh_note n;
    char key[300], exp[64], outcome_id[KS_ID_LEN] = "";
    const char *p[4];
    PGresult *res = NULL;
    enum ks_code rc;
    enum wh_result r;
    size_t len = 0;
    int cur;

    if ((rc = prepare(h, pg, err)) != KS_OK || (rc = body_of(h, m, &len, err)) != KS_OK)
        return rc;
    if ((rc = wh_parse(psp, h->body, len, &n, err)) != KS_OK)
        return rc;
    snprintf(key, sizeof(key), "%.250s%s", evid ? evid : wid, n.key_suffix);
    if (n.kind == WH_NONE) {
        /* recorded, not reported; a replayed copy finds its row */
        p[0] = psp;
        p[1] = key;
        res = run(pg, ST_SEEN, p);
        if ((rc = ks_pg_check(pg, res, PGRES_TUPLES_OK, "find webhook event", err)) == KS_OK &&
            PQntuples(res) == 0) {
            ks_log(KS_LOG_INFO, "webhooks.event.ignored", n.reason, "psp", psp, "event_id", key,
                   "message_id", m->message_id, NULL);
            rc = record(pg, psp, key, wid, &n, WH_DUPLICATE, "", "", err);
        }
        goto out;
    }
    p[0] = wh_kind_name(n.kind);
    p[1] = n.reference;
    p[2] = psp;
    p[3] = key;
    res = run(pg, ST_LOCK, p);
    if ((rc = ks_pg_check(pg, res, PGRES_TUPLES_OK, "lock the operation", err)) != KS_OK)
        goto out;
    PQclear(res);
    res = run(pg, (int)n.kind, p);
    if ((rc = ks_pg_check(pg, res, PGRES_TUPLES_OK, "look up the operation", err)) != KS_OK)
        goto out;
    if (PQntuples(res) == 0) {
        rc = ks_err_set(err, KS_ENOTFOUND, 0, "reference",
                        "unknown_reference: no %s %.128s for this %s notification",
                        n.kind == WH_CHARGE ? "payment order" : n.kind == WH_REFUND ? "refund"
                                                                                 : "payout",
                        n.reference, psp);
        goto out;
    }
    if (strcmp(PQgetvalue(res, 0, 8), "t") == 0)
        goto out; /* this event was read before: its effects are in */
    if (n.has_amount && (n.amount_minor != strtoll(PQgetvalue(res, 0, 3), NULL, 10) ||
                         strcmp(n.currency, PQgetvalue(res, 0, 4)) != 0)) {
        snprintf(exp, sizeof(exp), "%s %s", PQgetvalue(res, 0, 3), PQgetvalue(res, 0, 4));
        rc = ks_err_set(err, KS_EINVAL, 0, "amount",
                        "amount_mismatch: %s %.128s is %s minor units, the %s notification "
                        "says %" PRId64 " %s",
                        wh_kind_name(n.kind), n.reference, exp, psp, n.amount_minor, n.currency);
        goto out;
    }
    /* our state when we have one; else what the tables say (the executor's outcomes,
     * posted by the ledger) */
    cur = PQgetisnull(res, 0, 6) ? -1 : wh_status_parse(PQgetvalue(res, 0, 6));
    if (cur < 0 || cur == WH_PENDING_CUSTOMER) {
        int t = wh_table_state(n.kind, PQgetvalue(res, 0, 5));
        if (t >= 0 && (cur < 0 || t != WH_PENDING_CUSTOMER))
            cur = t;
    }
    r = wh_decide(n.kind, cur, strcmp(PQgetvalue(res, 0, 7), "t") == 0, n.status);
    if (r == WH_APPLIED || r == WH_LATE) {
        ks_outcome_id(wh_kind_name(n.kind), n.reference, wh_status_name(n.status), outcome_id);
        if ((rc = emit(b, m, h, &n, res, outcome_id, err)) != KS_OK)
            goto out;
    } else {
        ks_log(KS_LOG_INFO, "webhooks.event.unchanged", "the operation is already there",
               "psp", psp, "event_id", key, "kind", wh_kind_name(n.kind), "reference",
               n.reference, "status", wh_status_name(n.status), "result", wh_result_name(r),
               NULL);
    }
    rc = record(pg, psp, key, wid, &n, r, outcome_id,
                r == WH_APPLIED ? wh_status_name(n.status)
                : r == WH_LATE  ? wh_status_name((enum wh_status)cur)
                                : "",
                err);
out:
    PQclear(res);
    return rc;
}

static enum ks_code handle_batch(struct ks_batch *b, PGconn *pg, void *ctx, struct ks_err *err)
{
    for (size_t i = 0; i < ks_batch_count(b); i++) {
        enum ks_code rc = ks_batch_run_msg(b, ks_batch_msg(b, i), pg, handle, ctx, err);
        if (rc != KS_OK)
            return rc;
    }
    return KS_OK;
}

int main(int argc, char **argv)
{
    static const struct ks_config_def defs[] = {
        {"webhooks.output_topic", KS_CFG_STRING, "kasir.psp.outcomes", 0,
         "topic the outcomes (kasir.psp.PspOutcome, source WEBHOOK) go to"},
    };
    static struct hooks h;
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
    rc = ks_worker_main(&spec, defs, sizeof(defs) / sizeof(defs[0]), argc, argv);
    json_decref(h.out);
    free(h.body);
    return rc;
}
