/* admin_ledger.c - the ledger's admin endpoints (scope admin, the caller's partner only;
 * who = "<partner>/<API key id>" and why = the body's reason are recorded with each act):
 *
 *   POST /v1/admin/payouts/{id}/retry            {"reason"}
 *   POST /v1/admin/adjustments                   {"seller_id", "direction", "amount",
 *                                                 "currency", "counter_account", "psp"?,
 *                                                 "reason", "idempotency_key"?}
 *   GET  /v1/admin/adjustments?status=&limit=&after=
 *   POST /v1/admin/adjustments/{id}/approve      {"reason"}
 *   POST /v1/admin/adjustments/{id}/reject       {"reason"}
 *   GET  /v1/admin/audit-export?from=&to=&format=csv|jsonl     (audit_export.c)
 *
 * The work is SQL (deploy/migrations/functions/ledger_*.sql), so the rules
 * hold whoever calls: an adjustment is posted balanced through the ledger's own ledger_post
 * only when a different API key of the same partner approves it (the two-person rule,
 * also a CHECK of the table); a retry is a new payout that risk and the ledger's funds
 * check see like any other. Another partner's payout or adjustment is a 404.
 * fee_revenue and psp_clearing are Kasir's own accounts, shared by every partner (only
 * suspense is the partner's, and a credit from it needs what it holds): an adjustment
 * against them is asked for, approved and rejected (but by the key that asked) by keys with
 * scope ledger:global, an operator's (403 forbidden_scope otherwise). The decision function
 * checks it again, the asking key's scope too, so no ingress can approve one without. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/money.h"
#include "producers/ingress/ingress.h"
#include "lib/banned.h"

static const char SQL_RETRY[] = "SELECT ledger_payout_retry($1, $2, $3, $4)";
static const char SQL_REQUEST[] =
    "SELECT ledger_adjustment_request($1, $2, $3, $4, $5, $6, $7::bigint, $8, $9, $10)";
static const char SQL_DECIDE[] =
    "SELECT ledger_adjustment_decide($1, $2, $3::boolean, $4, $5, $6, $7::boolean)";
static const char SQL_LIST[] = "SELECT ledger_adjustments_list($1, $2, $3::int, $4)";

/* --- bodies ----------------------------------------------------------------------------- */

/* letters, digits and _ - . : (the ingress's seller ids and PSP names) */
static int id_chars_ok(const char *s)
{
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-' || *s == '.' || *s == ':'))
            return 0;
    return 1;
}

/* the 403 of an adjustment against Kasir's own accounts by a key without ledger:global
 * (field "scope", as every forbidden_scope) */
static void global_scope_problem(struct ing_problem *p)
{
    ing_problem(p, "forbidden_scope", "scope",
                "counter_account fee_revenue and psp_clearing are Kasir's own accounts: "
                "asking for, approving or rejecting an adjustment of them needs scope "
                "ledger:global");
}

/* amount_minor -> "amount" (signed decimal string) in an adjustment */
static void format_adjustment(json_t *a)
{
    const char *cur = json_string_value(json_object_get(a, "currency"));
    json_t *mn = json_object_get(a, "amount_minor");
    char buf[KS_MONEY_STRLEN];
    json_int_t v;

    if (!cur || !json_is_integer(mn))
        return;
    v = json_integer_value(mn);
    ing_amount_fmt(v < 0 ? -v : v, cur, buf);
    json_object_set_new(a, "direction", json_string(v < 0 ? "debit" : "credit"));
    json_object_set_new(a, "amount", json_string(buf));
    json_object_del(a, "amount_minor");
}

/* --- payout retry -------------------------------------------------------------------------- */

/* reader thread: the retry's new payout recorded (PENDING_PUBLISH), then its
 * PayoutRequested published; the answer goes when Kafka confirms (ing_accept_direct) */
static int retry_work(struct ing_req *r, struct ing_rdb *db, struct ing_admin_job *j)
{
    const char *reason;
    char payout[256], actor[ING_ADMIN_ACTOR_LEN];
    json_t *po, *resp;
    const char *outcome, *params[4];
    struct ing_payout ev = {0};
    int replay;

    snprintf(payout, sizeof(payout), "%s", r->arg);
    if (ing_admin_act(r, j, &reason, actor) != 0)
        return ING_ADMIN_FAILED;
    params[0] = r->partner_id;
    params[1] = payout;
    params[2] = actor;
    params[3] = reason;
    if (!(outcome = ing_admin_outcome(r, db, SQL_RETRY, 4, params, "payout", j)))
        return ING_ADMIN_FAILED;
    if (strcmp(outcome, "not_failed") == 0) {
        ing_problem(&j->p, "payout_not_retriable", "id", "the payout is %s, not FAILED",
                    json_string_value(json_object_get(j->out, "status")));
        return ING_ADMIN_FAILED;
    }
    if (strcmp(outcome, "not_retriable") == 0) {
        ing_problem(&j->p, "payout_not_retriable", "id",
                    "the payout failed with %s, which a retry cannot mend",
                    json_string_value(json_object_get(j->out, "failure_code")));
        return ING_ADMIN_FAILED;
    }
    replay = strcmp(outcome, "replay") == 0;
    po = json_object_get(j->out, "payout");
    resp = json_pack("{s:O, s:O, s:O, s:O, s:s}", "payout_id", json_object_get(po, "payout_id"),
                     "retry_of", json_object_get(j->out, "retry_of"), "retried_failure_code",
                     json_object_get(j->out, "failure_code"), "status",
                     json_object_get(po, "status"), "trace_id", r->trace_id);
    if (replay && strcmp(json_string_value(json_object_get(po, "status")), "PENDING_PUBLISH") != 0) {
        /* published before and moved on: the attempt as it is */
        ing_respond_json(r, 200, resp);
        return ING_ADMIN_ANSWERED;
    }
    json_object_set_new(resp, "status", json_string("REQUESTED"));
    ev.seller_id = json_string_value(json_object_get(po, "seller_id"));
    ev.amount.minor = json_integer_value(json_object_get(po, "amount_minor"));
    snprintf(ev.amount.currency, sizeof(ev.amount.currency), "%s",
             json_string_value(json_object_get(po, "currency")));
    ev.channel = json_string_value(json_object_get(po, "channel"));
    ev.bank_code = json_string_value(json_object_get(po, "bank_code"));
    ev.ewallet = json_string_value(json_object_get(po, "ewallet_channel"));
    ev.destination = json_string_value(json_object_get(po, "destination_account"));
    ev.holder = json_string_value(json_object_get(po, "account_holder"));
    ev.description = json_string_value(json_object_get(po, "description"));
    if (ing_payout_event(r, json_string_value(json_object_get(po, "payout_id")), &ev, &j->p) != 0) {
        json_decref(resp);
        return ING_ADMIN_FAILED;
    }
    ks_log(KS_LOG_INFO, "ingress.payout.retry", replay ? "payout retry published again"
                                                       : "payout retry created",
           "trace_id", r->trace_id, "partner", r->partner_id, "payout_id", payout, "attempt",
           json_string_value(json_object_get(po, "payout_id")), NULL);
    ing_respond_json(r, 202, resp);
    /* answered by the delivery report: the 202 if Kafka confirms, else a 503 (a retry of
     * this call publishes the same attempt again) */
    ing_accept_direct(r, 1, "could not publish the retry; call again");
    return ING_ADMIN_HANDED_ON;
}

static void retry_job(struct ing_req *r, struct ing_rdb *db)
{
    ing_admin_run(r, db, retry_work);
}

/* --- adjustments ---------------------------------------------------------------------------- */

static int adjustment_create_work(struct ing_req *r, struct ing_rdb *db, struct ing_admin_job *j)
{
    static const char *const names[] = {"seller_id", "direction", "amount", "currency",
                                        "counter_account", "psp", "reason", "idempotency_key",
                                        NULL};
    const char *seller, *dir, *amount, *cur, *counter, *psp, *reason, *idem, *outcome;
    char actor[ING_ADMIN_ACTOR_LEN], minor_s[24];
    struct ks_money m;
    struct ks_err e = {0};
    json_t *a;
    const char *params[10];

    if (!(j->body = ing_admin_body(r, names, &j->p)) ||
        ing_admin_str(j->body, "seller_id", 1, ING_ID_MAX, &seller, &j->p) != 0 ||
        ing_admin_str(j->body, "direction", 1, 6, &dir, &j->p) != 0 ||
        ing_admin_str(j->body, "amount", 1, 40, &amount, &j->p) != 0 ||
        ing_admin_str(j->body, "currency", 1, 3, &cur, &j->p) != 0 ||
        ing_admin_str(j->body, "counter_account", 1, 20, &counter, &j->p) != 0 ||
        ing_admin_str(j->body, "psp", 0, 32, &psp, &j->p) != 0 ||
        ing_admin_str(j->body, "reason", 1, ING_ADMIN_MAX_REASON, &reason, &j->p) != 0 ||
        ing_admin_str(j->body, "idempotency_key", 0, 255, &idem, &j->p) != 0)
        return ING_ADMIN_FAILED;
    if (!id_chars_ok(seller)) {
        ing_problem(&j->p, "field_format", "seller_id",
                    "seller_id holds letters, digits and _ - . : only");
        return ING_ADMIN_FAILED;
    }
    if (strcmp(dir, "credit") != 0 && strcmp(dir, "debit") != 0) {
        ing_problem(&j->p, "value_not_allowed", "direction",
                    "direction is credit (to the seller's wallet) or debit (from it)");
        return ING_ADMIN_FAILED;
    }
    if (ks_money_exponent(cur) < 0) {
        ing_problem(&j->p, "currency_unsupported", "currency", "unknown currency %.3s", cur);
        return ING_ADMIN_FAILED;
    }
    if (ks_money_parse(amount, cur, "amount", &m, &e) != KS_OK) {
        ing_problem(&j->p, "amount_invalid", "amount", "%s", e.msg);
        return ING_ADMIN_FAILED;
    }
    if (ks_money_check_bounds(&m, "amount", &e) != KS_OK) {
        ing_problem(&j->p, "amount_out_of_range", "amount", "%s", e.msg);
        return ING_ADMIN_FAILED;
    }
    if (strcmp(counter, "suspense") != 0 && strcmp(counter, "fee_revenue") != 0 &&
        strcmp(counter, "psp_clearing") != 0) {
        ing_problem(&j->p, "value_not_allowed", "counter_account",
                    "counter_account is suspense, fee_revenue or psp_clearing");
        return ING_ADMIN_FAILED;
    }
    if ((strcmp(counter, "psp_clearing") == 0) != (psp != NULL)) {
        ing_problem(&j->p, psp ? "field_not_allowed" : "field_required", "psp",
                    "psp names the PSP for counter_account psp_clearing, and only then");
        return ING_ADMIN_FAILED;
    }
    if (psp && !id_chars_ok(psp)) {
        ing_problem(&j->p, "field_format", "psp", "psp holds letters, digits and _ - . : only");
        return ING_ADMIN_FAILED;
    }
    if (strcmp(counter, "suspense") != 0 && !(r->scopes & ING_SCOPE_LEDGER_GLOBAL)) {
        global_scope_problem(&j->p);
        return ING_ADMIN_FAILED;
    }
    snprintf(minor_s, sizeof(minor_s), "%lld",
             (long long)(strcmp(dir, "debit") == 0 ? -m.minor : m.minor));
    ing_admin_actor(r, actor);
    params[0] = r->partner_id;
    params[1] = r->cred_id;
    params[2] = actor;
    params[3] = idem;
    params[4] = seller;
    params[5] = cur;
    params[6] = minor_s;
    params[7] = counter;
    params[8] = psp;
    params[9] = reason;
    /* without an idempotency_key a second run is a second adjustment: sent once */
    if (!(j->out = ing_admin_call(r, db, SQL_REQUEST, 10, params, idem == NULL, &j->p)))
        return ING_ADMIN_FAILED;
    outcome = json_string_value(json_object_get(j->out, "outcome"));
    a = json_object_get(j->out, "adjustment");
    format_adjustment(a);
    if (outcome && strcmp(outcome, "mismatch") == 0) {
        ing_problem(&j->p, "idempotency_key_reused", "idempotency_key",
                    "this idempotency key was used for another adjustment");
        ing_respond_problem_x(r, &j->p, json_pack("{s:O}", "adjustment", a));
        return ING_ADMIN_ANSWERED;
    }
    ks_log(KS_LOG_INFO, "ingress.adjustment.requested", "adjustment requested", "trace_id",
           r->trace_id, "partner", r->partner_id, "adjustment_id",
           json_string_value(json_object_get(a, "adjustment_id")), NULL);
    ing_respond_json(r, outcome && strcmp(outcome, "created") == 0 ? 201 : 200,
                     json_pack("{s:O}", "adjustment", a));
    return ING_ADMIN_ANSWERED;
}

static void adjustment_create_job(struct ing_req *r, struct ing_rdb *db)
{
    ing_admin_run(r, db, adjustment_create_work);
}

static int adjustment_decide_work(struct ing_req *r, struct ing_rdb *db, struct ing_admin_job *j)
{
    const char *reason, *outcome;
    int approve = ing_admin_approving(r);
    char adj[256], actor[ING_ADMIN_ACTOR_LEN];
    json_t *a;
    const char *params[7];

    snprintf(adj, sizeof(adj), "%s", r->arg);
    if (ing_admin_act(r, j, &reason, actor) != 0)
        return ING_ADMIN_FAILED;
    params[0] = r->partner_id;
    params[1] = adj;
    params[2] = approve ? "true" : "false";
    params[3] = r->cred_id;
    params[4] = actor;
    params[5] = reason;
    params[6] = r->scopes & ING_SCOPE_LEDGER_GLOBAL ? "true" : "false";
    if (!(outcome = ing_admin_outcome(r, db, SQL_DECIDE, 7, params, "adjustment", j)))
        return ING_ADMIN_FAILED;
    a = json_object_get(j->out, "adjustment");
    format_adjustment(a);
    if (strcmp(outcome, "same_key") == 0) {
        ing_problem(&j->p, "approver_is_requester", "Authorization",
                    "an adjustment is approved by another API key than the one that asked");
    } else if (strcmp(outcome, "global_scope") == 0) {
        global_scope_problem(&j->p);
    } else if (strcmp(outcome, "global_scope_requester") == 0) {
        ing_problem(&j->p, "forbidden_scope", "scope",
                    "the adjustment of counter_account %s was asked for by a key without scope "
                    "ledger:global: it can only be rejected",
                    json_string_value(json_object_get(a, "counter_account")));
    } else if (strcmp(outcome, "expired") == 0) {
        ing_problem(&j->p, "adjustment_expired", "id", "the request expired unapproved");
    } else if (strcmp(outcome, "conflict") == 0) {
        ing_problem(&j->p, "adjustment_decided", "id", "the adjustment was already %s",
                    approve ? "rejected" : "approved");
    } else if (strcmp(outcome, "insufficient_funds") == 0) {
        ing_problem(&j->p, "insufficient_funds", "amount",
                    "the seller's available balance is %lld minor units, below the debit",
                    (long long)json_integer_value(json_object_get(j->out, "available_minor")));
    } else if (strcmp(outcome, "insufficient_suspense") == 0) {
        ing_problem(&j->p, "insufficient_funds", "amount",
                    "the partner's suspense account holds %lld minor units, below the credit",
                    (long long)json_integer_value(json_object_get(j->out, "available_minor")));
    } else if (strcmp(outcome, "decided") != 0 && strcmp(outcome, "unchanged") != 0) {
        /* never a 200 for an outcome this ingress does not know (a newer function's) */
        ing_problem(&j->p, "internal", NULL, "the decision answered %.40s", outcome);
    } else {
        ks_log(KS_LOG_INFO, approve ? "ingress.adjustment.approved" : "ingress.adjustment.rejected",
               strcmp(outcome, "decided") == 0 ? "adjustment decided"
                                               : "adjustment decided before, unchanged",
               "trace_id", r->trace_id, "partner", r->partner_id, "adjustment_id", adj, NULL);
        ing_respond_json(r, 200, json_pack("{s:O, s:b}", "adjustment", a, "changed",
                                           strcmp(outcome, "decided") == 0));
        return ING_ADMIN_ANSWERED;
    }
    ing_respond_problem_x(r, &j->p, json_pack("{s:O}", "adjustment", a));
    return ING_ADMIN_ANSWERED;
}

static void adjustment_decide_job(struct ing_req *r, struct ing_rdb *db)
{
    ing_admin_run(r, db, adjustment_decide_work);
}

static void adjustment_list_job(struct ing_req *r, struct ing_rdb *db)
{
    static const char *const statuses[] = {"REQUESTED", "APPROVED", "REJECTED", "EXPIRED", "all"};
    static const struct ing_admin_list l = {SQL_LIST, statuses, 5, "all", "adjustment_id",
                                            "adjustments", format_adjustment};
    ing_admin_list(r, db, &l);
}

void ing_admin_payout_retry(struct ing_req *r)
{
    struct ing_problem p;

    if (!ING.kafka_ok) {
        ing_problem(&p, "unavailable", NULL, "kafka is unreachable; nothing was recorded");
        ing_respond_problem(r, &p);
        return;
    }
    ing_defer_read(r, retry_job);
}

void ing_admin_adjustments_list(struct ing_req *r)
{
    ing_defer_read(r, adjustment_list_job);
}

void ing_admin_adjustment_create(struct ing_req *r)
{
    ing_defer_read(r, adjustment_create_job);
}

void ing_admin_adjustment_decide(struct ing_req *r)
{
    ing_defer_read(r, adjustment_decide_job);
}
