/* admin_request.c - what every admin endpoint's reader job does the same way: its JSON
 * body and fields, who acts, the one jsonb answer of its SQL function, its paged lists, and
 * the end of the job (the problem answered, the JSON freed, the request done). The
 * endpoints: admin_holds.c, admin_ledger.c. Everything here runs on a reader thread
 * (reader.c), where a PostgreSQL round trip does not hold a server thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "producers/ingress/ingress.h"
#include "lib/banned.h"

/* --- bodies -------------------------------------------------------------------------------- */

json_t *ing_admin_body(struct ing_req *r, const char *const *names, struct ing_problem *p)
{
    json_error_t je;
    json_t *root, *v;
    const char *key;

    if (!ing_media_is(r, "application/json", p))
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

/* the body {"reason": "..."} of an act (who acts is the caller's credential) */
static json_t *reason_body(struct ing_req *r, const char **reason, struct ing_problem *p)
{
    static const char *const names[] = {"reason", NULL};
    json_t *root = ing_admin_body(r, names, p);

    if (root && ing_admin_str(root, "reason", 1, ING_ADMIN_MAX_REASON, reason, p) != 0) {
        json_decref(root);
        return NULL;
    }
    return root;
}

void ing_admin_actor(const struct ing_req *r, char out[ING_ADMIN_ACTOR_LEN])
{
    snprintf(out, ING_ADMIN_ACTOR_LEN, "%s/%s", r->partner_id, r->cred_id);
}

int ing_admin_act(struct ing_req *r, struct ing_admin_job *j, const char **reason,
                  char actor[ING_ADMIN_ACTOR_LEN])
{
    if (!(j->body = reason_body(r, reason, &j->p)))
        return -1;
    ing_admin_actor(r, actor);
    return 0;
}

int ing_admin_approving(const struct ing_req *r)
{
    size_t n = strlen(r->rdef->path);
    return n >= 8 && strcmp(r->rdef->path + n - 8, "/approve") == 0;
}

/* --- the SQL function and the job ------------------------------------------------------------ */

json_t *ing_admin_call(struct ing_req *r, struct ing_rdb *db, const char *sql, int n,
                       const char *const *params, int once, struct ing_problem *p)
{
    PGresult *res = once ? ing_rdb_write(db, r, sql, n, params, p)
                         : ing_rdb_query(db, r, sql, n, params, p);
    json_t *out;

    if (!res)
        return NULL;
    out = PQntuples(res) == 1 ? json_loads(PQgetvalue(res, 0, 0), 0, NULL) : NULL;
    PQclear(res);
    if (!out)
        ing_problem(p, "internal", NULL, "unexpected answer from the database");
    return out;
}

const char *ing_admin_outcome(struct ing_req *r, struct ing_rdb *db, const char *sql, int n,
                              const char *const *params, const char *what,
                              struct ing_admin_job *j)
{
    const char *outcome;

    if (!(j->out = ing_admin_call(r, db, sql, n, params, 0, &j->p)))
        return NULL;
    outcome = json_string_value(json_object_get(j->out, "outcome"));
    if (!outcome || strcmp(outcome, "not_found") == 0) {
        ing_problem(&j->p, "not_found", "id", "no %s with this id", what);
        return NULL;
    }
    return outcome;
}

void ing_admin_run(struct ing_req *r, struct ing_rdb *db,
                   int (*work)(struct ing_req *, struct ing_rdb *, struct ing_admin_job *))
{
    struct ing_admin_job j = {0};
    int rc = work(r, db, &j);

    if (rc == ING_ADMIN_FAILED)
        ing_respond_problem(r, &j.p);
    json_decref(j.body);
    json_decref(j.out);
    if (rc != ING_ADMIN_HANDED_ON)
        ing_req_done(r);
}

/* --- lists ----------------------------------------------------------------------------------- */

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
    if (!(res = ing_rdb_query(db, r, l->sql, 4, params, &p)))
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
