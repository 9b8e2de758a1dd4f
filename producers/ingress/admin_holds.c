/* admin_holds.c - the admin endpoints of held payments and payouts (scope admin):
 *
 *   GET  /v1/admin/holds?status=HELD|APPROVED|REJECTED|all&limit=N&after=HOLD_ID
 *   POST /v1/admin/holds/{id}/approve   {"reason": "..."}
 *   POST /v1/admin/holds/{id}/reject    {"reason": "..."}
 *
 * kasir-risk holds a payment or payout its rules sent to REVIEW; these endpoints are how
 * finance operations release or refuse it. The work is the SQL functions of migration
 * 302 (the same ones `kasir-risk holds` calls): every lookup is scoped to the caller's
 * partner, so another partner's hold is a 404; who decided (partner and credential) and
 * why (the reason) are recorded with the decision; an approval writes the hold's
 * PspCommands into the outbox in the same transaction, so they are sent once.
 * Deciding again the same way answers 200 with the hold as it is (a retried request);
 * the other way is a 409 hold_decided. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/money.h"
#include "producers/ingress/ingress.h"
#include "lib/banned.h"

static const char SQL_LIST[] = "SELECT risk_holds_list($1, $2, $3::int, $4)";
static const char SQL_DECIDE[] = "SELECT risk_hold_decide($1, $2, $3::boolean, $4, $5)";

/* amount_minor -> "amount" (decimal string) in each of a hold's amounts */
static void format_amounts(json_t *hold)
{
    json_t *list = json_object_get(hold, "amounts");
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *a = json_array_get(list, i);
        const char *cur = json_string_value(json_object_get(a, "currency"));
        json_t *mn = json_object_get(a, "amount_minor");
        char buf[KS_MONEY_STRLEN];
        if (cur && json_is_integer(mn)) {
            ing_amount_fmt(json_integer_value(mn), cur, buf);
            json_object_set_new(a, "amount", json_string(buf));
            json_object_del(a, "amount_minor");
        }
    }
}

static void list(struct ing_req *r, struct ing_rdb *db)
{
    static const char *const statuses[] = {"HELD", "APPROVED", "REJECTED", "all"};
    static const struct ing_admin_list l = {SQL_LIST, statuses, 4, "HELD", "hold_id", "holds",
                                            format_amounts};
    ing_admin_list(r, db, &l);
}

static int decide_work(struct ing_req *r, struct ing_rdb *db, struct ing_admin_job *j)
{
    const char *reason = NULL, *outcome, *params[5];
    int approve = ing_admin_approving(r);
    char hold[256], actor[ING_ADMIN_ACTOR_LEN];
    json_t *h;

    snprintf(hold, sizeof(hold), "%s", r->arg);
    if (ing_admin_act(r, j, &reason, actor) != 0)
        return ING_ADMIN_FAILED;
    params[0] = r->partner_id;
    params[1] = hold;
    params[2] = approve ? "true" : "false";
    params[3] = actor;
    params[4] = reason;
    if (!(outcome = ing_admin_outcome(r, db, SQL_DECIDE, 5, params, "hold", j)))
        return ING_ADMIN_FAILED;
    h = json_object_get(j->out, "hold");
    format_amounts(h);
    if (strcmp(outcome, "conflict") == 0) {
        ing_problem(&j->p, "hold_decided", "id", "the hold was already %s",
                    approve ? "rejected" : "approved");
        ing_respond_problem_x(r, &j->p, json_pack("{s:O}", "hold", h));
        return ING_ADMIN_ANSWERED;
    }
    ks_log(KS_LOG_INFO, approve ? "ingress.hold.approved" : "ingress.hold.rejected",
           strcmp(outcome, "decided") == 0 ? "hold decided" : "hold decided before, unchanged",
           "trace_id", r->trace_id, "partner", r->partner_id, "hold_id", hold, NULL);
    ing_respond_json(r, 200, json_pack("{s:O, s:b}", "hold", h, "changed",
                                       strcmp(outcome, "decided") == 0));
    return ING_ADMIN_ANSWERED;
}

static void decide(struct ing_req *r, struct ing_rdb *db)
{
    ing_admin_run(r, db, decide_work);
}

void ing_admin_holds_list(struct ing_req *r)
{
    ing_defer_read(r, list);
}

void ing_admin_holds_decide(struct ing_req *r)
{
    ing_defer_read(r, decide);
}
