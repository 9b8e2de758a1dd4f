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
#include <strings.h>

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

/* on a reader thread (reader.c): no PostgreSQL round trip on a server thread */
static PGresult *run(struct ing_req *r, struct ing_rdb *db, const char *sql, int n,
                     const char *const *params, struct ing_problem *p)
{
    return ing_rdb_query(db, r, sql, n, params, p);
}

/* the paging query of a list (ing_admin_list): 0, or -1 + p naming the parameter */
static int page_query(struct ing_req *r, const char *const *statuses, size_t n, const char *def,
                      const char **status, char lim_s[16], long *lim, const char **after,
                      struct ing_problem *p)
{
    const char *st = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "status");
    const char *limit = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "limit");
    char *end = NULL, names[200] = "";
    size_t i;

    *lim = limit ? strtol(limit, &end, 10) : 100;
    *after = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "after");
    for (i = 0; st && i < n && strcmp(st, statuses[i]) != 0; i++)
        ;
    if (i == n) {
        for (size_t k = 0; k < n; k++)
            snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s",
                     k == 0 ? "" : k + 1 == n ? " or " : ", ", statuses[k]);
        ing_problem(p, "query_invalid", "status", "status must be %s", names);
        return -1;
    }
    if (limit && (!*limit || *end || *lim < 1 || *lim > 1000)) {
        ing_problem(p, "query_invalid", "limit", "limit must be 1 to 1000");
        return -1;
    }
    if (*after && (!**after || strlen(*after) > 200)) {
        ing_problem(p, "query_invalid", "after", "after must be an id from next_after");
        return -1;
    }
    snprintf(lim_s, 16, "%ld", *lim);
    st = st ? st : def;
    *status = st && strcmp(st, "all") == 0 ? NULL : st;
    return 0;
}

void ing_admin_list(struct ing_req *r, struct ing_rdb *db, const struct ing_admin_list *l)
{
    const char *params[4], *status, *after;
    struct ing_problem p;
    PGresult *res;
    json_t *items, *last = NULL;
    char lim_s[16];
    long lim;

    if (page_query(r, l->statuses, l->nstatuses, l->def_status, &status, lim_s, &lim, &after,
                   &p) != 0)
        goto fail;
    params[0] = r->partner_id;
    params[1] = status;
    params[2] = lim_s;
    params[3] = after;
    if (!(res = run(r, db, l->sql, 4, params, &p)))
        goto fail;
    items = json_array();
    for (int t = 0; t < PQntuples(res); t++) {
        json_t *h = json_loads(PQgetvalue(res, t, 0), 0, NULL);
        if (!h)
            continue;
        l->format(h);
        last = json_object_get(h, l->id_member);
        json_array_append_new(items, h);
    }
    ing_respond_json(r, 200, json_pack("{s:o, s:o}", l->name, items, "next_after",
                                       (lim == PQntuples(res) && last) ? json_copy(last)
                                                                       : json_null()));
    PQclear(res);
    ing_req_done(r);
    return;
fail:
    ing_respond_problem(r, &p);
    ing_req_done(r);
}

static void list(struct ing_req *r, struct ing_rdb *db)
{
    static const char *const statuses[] = {"HELD", "APPROVED", "REJECTED", "all"};
    static const struct ing_admin_list l = {SQL_LIST, statuses, 4, "HELD", "hold_id", "holds",
                                            format_amounts};
    ing_admin_list(r, db, &l);
}

static int json_media(struct ing_req *r, struct ing_problem *p)
{
    const char *ct = ing_header(r, "Content-Type");
    size_t n = strlen("application/json");

    if (!ct || strncasecmp(ct, "application/json", n) != 0 ||
        (ct[n] != '\0' && ct[n] != ';' && ct[n] != ' ')) {
        ing_problem(p, "unsupported_media_type", "Content-Type", "send Content-Type: %s",
                    "application/json");
        return 0;
    }
    return 1;
}

json_t *ing_admin_body(struct ing_req *r, const char *const *names, struct ing_problem *p)
{
    json_error_t je;
    json_t *root, *v;
    const char *key;

    if (!json_media(r, p))
        return NULL;
    if (!(root = json_loadb(r->body ? r->body : "", r->len, JSON_REJECT_DUPLICATES, &je))) {
        ing_problem(p, "malformed_json", NULL, "the body is not valid JSON: %s", je.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        ing_problem(p, "body_not_object", NULL, "the body must be a JSON object");
        goto bad;
    }
    json_object_foreach(root, key, v) {
        size_t i;
        for (i = 0; names[i] && strcmp(names[i], key) != 0; i++)
            ;
        if (!names[i]) {
            ing_problem(p, "field_unknown", key, "%.60s is not a field of this request", key);
            goto bad;
        }
    }
    return root;
bad:
    json_decref(root);
    return NULL;
}

int ing_admin_str(json_t *root, const char *name, int required, size_t max, const char **out,
                  struct ing_problem *p)
{
    json_t *v = json_object_get(root, name);

    *out = NULL;
    if (!v || json_is_null(v)) {
        if (!required)
            return 0;
        ing_problem(p, "field_required", name, "%s is required", name);
        return -1;
    }
    if (!json_is_string(v)) {
        ing_problem(p, "field_type", name, "%s must be a string", name);
        return -1;
    }
    *out = json_string_value(v);
    if (!**out) {
        ing_problem(p, "field_empty", name, "%s must not be empty", name);
        return -1;
    }
    if (strlen(*out) > max) {
        ing_problem(p, "field_too_long", name, "%s has at most %zu characters", name, max);
        return -1;
    }
    return 0;
}

json_t *ing_admin_reason(struct ing_req *r, const char **reason, struct ing_problem *p)
{
    static const char *const names[] = {"reason", NULL};
    json_t *root = ing_admin_body(r, names, p);

    if (root && ing_admin_str(root, "reason", 1, ING_ADMIN_MAX_REASON, reason, p) != 0) {
        json_decref(root);
        return NULL;
    }
    return root;
}

static void decide(struct ing_req *r, struct ing_rdb *db)
{
    const char *reason = NULL;
    int approve = strcmp(r->rdef->path + strlen(r->rdef->path) - 8, "/approve") == 0;
    char hold[256], actor[2 * KS_ID_LEN + 2];
    const char *params[5];
    struct ing_problem p;
    json_t *body = NULL, *out = NULL, *h;
    const char *outcome;
    PGresult *res;

    snprintf(hold, sizeof(hold), "%s", r->arg);
    if (!(body = ing_admin_reason(r, &reason, &p)))
        goto fail;
    /* who: the partner and the credential (API key or token) that made the call */
    snprintf(actor, sizeof(actor), "%s/%s", r->partner_id, r->cred_id);
    params[0] = r->partner_id;
    params[1] = hold;
    params[2] = approve ? "true" : "false";
    params[3] = actor;
    params[4] = reason;
    if (!(res = run(r, db, SQL_DECIDE, 5, params, &p)))
        goto fail;
    out = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    PQclear(res);
    outcome = json_string_value(json_object_get(out, "outcome"));
    h = json_object_get(out, "hold");
    if (!outcome || strcmp(outcome, "not_found") == 0) {
        ing_problem(&p, "not_found", "id", "no hold with this id");
        goto fail;
    }
    format_amounts(h);
    if (strcmp(outcome, "conflict") == 0) {
        ing_problem(&p, "hold_decided", "id", "the hold was already %s",
                    approve ? "rejected" : "approved");
        ing_respond_problem_x(r, &p, json_pack("{s:O}", "hold", h));
        goto out;
    }
    ks_log(KS_LOG_INFO, approve ? "ingress.hold.approved" : "ingress.hold.rejected",
           strcmp(outcome, "decided") == 0 ? "hold decided" : "hold decided before, unchanged",
           "trace_id", r->trace_id, "partner", r->partner_id, "hold_id", hold, NULL);
    ing_respond_json(r, 200, json_pack("{s:O, s:b}", "hold", h, "changed",
                                       strcmp(outcome, "decided") == 0));
    goto out;
fail:
    ing_respond_problem(r, &p);
out:
    json_decref(body);
    json_decref(out);
    ing_req_done(r);
}

void ing_admin_holds_list(struct ing_req *r)
{
    ing_defer_read(r, list);
}

void ing_admin_holds_decide(struct ing_req *r)
{
    ing_defer_read(r, decide);
}
