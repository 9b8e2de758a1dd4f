/* routes.c - the route table: every piece of the ingress's routing knowledge.
 *
 * One row per (method, path pattern): the scope a partner's credential needs, the body cap
 * that holds before authentication is over, the flags (listener, per-address limit, no
 * Basic challenge), the handler and the label of logs and /metrics. The server (http.c)
 * matches a request here once, at its headers: 404 (no row has the path), 405 with the
 * Allow of the path's rows (the path exists, the method does not), or the row. `kasir-ingress
 * routes` prints the rows; the OpenAPI test compares them with openapi.json. A path segment
 * {name} matches one or more bytes other than '/'; a GET row also answers HEAD. */
#include <stdio.h>
#include <string.h>

#include "producers/ingress/ingress.h"
#include "lib/banned.h"

#define PW ING_SCOPE_PAYMENTS_WRITE
#define PR ING_SCOPE_PAYMENTS_READ
#define AD ING_SCOPE_ADMIN

/* In the order `kasir-ingress routes` prints them; a request walks all of them (the Allow
 * of a 405 is every row's with its path). */
const struct ing_route_def ing_routes[] = {
    {R_TOKEN, "POST", "/v1/auth/token", 0, ING_BODY_SMALL, ING_RT_IP_LIMIT, ing_token_exchange,
     "POST /v1/auth/token"},
    {R_PAY_POST, "POST", "/v1/payments", PW, ING_BODY_WRITE, 0, ing_pay_post, "POST /v1/payments"},
    {R_PAY_GET, "GET", "/v1/payments/{id}", PR, ING_BODY_NONE, 0, ing_pay_get,
     "GET /v1/payments/{id}"},
    {R_PAY_LIST, "GET", "/v1/payments", PR, ING_BODY_NONE, 0, ing_pay_list, "GET /v1/payments"},
    {R_REFUND_POST, "POST", "/v1/refunds", ING_SCOPE_REFUNDS_WRITE, ING_BODY_WRITE, 0,
     ing_refund_post, "POST /v1/refunds"},
    {R_REFUND_GET, "GET", "/v1/refunds/{id}", ING_SCOPE_REFUNDS_READ, ING_BODY_NONE, 0,
     ing_refund_get, "GET /v1/refunds/{id}"},
    {R_PAYOUT_POST, "POST", "/v1/payouts", ING_SCOPE_PAYOUTS_WRITE, ING_BODY_WRITE, 0,
     ing_payout_post, "POST /v1/payouts"},
    {R_PAYOUT_GET, "GET", "/v1/payouts/{id}", ING_SCOPE_PAYOUTS_READ, ING_BODY_NONE, 0,
     ing_payout_get, "GET /v1/payouts/{id}"},
    /* a PSP authenticates by its signature, checked on the body (hence a cap of its own) */
    {R_WEBHOOK, "POST", "/v1/webhooks/{psp}", 0, ING_BODY_WEBHOOK, ING_RT_PSP, ing_webhook,
     "POST /v1/webhooks/{psp}"},
    {R_SETTLE, "POST", "/v1/settlements/{psp}", ING_SCOPE_SETTLEMENTS_WRITE, ING_BODY_UPLOAD, 0,
     ing_settle, "POST /v1/settlements/{psp}"},
    {R_RECON_GET, "GET", "/v1/reconciliations/{id}", ING_SCOPE_RECON_READ, ING_BODY_NONE, 0,
     ing_recon_get, "GET /v1/reconciliations/{id}"},
    {R_ADMIN_PARTNERS, "GET", "/v1/admin/partners", AD, ING_BODY_NONE, 0, ing_admin_partners,
     "GET /v1/admin/partners"},
    /* approve/reject and the ledger's acts: {"reason": ...} and small bodies */
    {R_ADMIN_HOLDS, "GET", "/v1/admin/holds", AD, ING_BODY_SMALL, 0, ing_admin_holds_list,
     "/v1/admin/holds"},
    {R_ADMIN_HOLDS, "POST", "/v1/admin/holds/{id}/approve", AD, ING_BODY_SMALL, 0,
     ing_admin_holds_decide, "/v1/admin/holds"},
    {R_ADMIN_HOLDS, "POST", "/v1/admin/holds/{id}/reject", AD, ING_BODY_SMALL, 0,
     ing_admin_holds_decide, "/v1/admin/holds"},
    {R_BALANCE, "GET", "/v1/balances/{seller_id}", ING_SCOPE_PAYOUTS_READ, ING_BODY_NONE, 0,
     ing_balance_get, "GET /v1/balances/{seller_id}"},
    {R_ADMIN_LEDGER, "POST", "/v1/admin/payouts/{id}/retry", AD, ING_BODY_SMALL, 0,
     ing_admin_payout_retry, "/v1/admin/ledger"},
    {R_ADMIN_LEDGER, "GET", "/v1/admin/adjustments", AD, ING_BODY_SMALL, 0,
     ing_admin_adjustments_list, "/v1/admin/ledger"},
    {R_ADMIN_LEDGER, "POST", "/v1/admin/adjustments", AD, ING_BODY_SMALL, 0,
     ing_admin_adjustment_create, "/v1/admin/ledger"},
    {R_ADMIN_LEDGER, "POST", "/v1/admin/adjustments/{id}/approve", AD, ING_BODY_SMALL, 0,
     ing_admin_adjustment_decide, "/v1/admin/ledger"},
    {R_ADMIN_LEDGER, "POST", "/v1/admin/adjustments/{id}/reject", AD, ING_BODY_SMALL, 0,
     ing_admin_adjustment_decide, "/v1/admin/ledger"},
    {R_ADMIN_LEDGER, "GET", "/v1/admin/audit-export", AD, ING_BODY_SMALL, 0, ing_audit_export,
     "/v1/admin/ledger"},
    {R_HEALTH, "GET", "/healthz", 0, ING_BODY_NONE, ING_RT_PROBE, ing_health, "GET /healthz"},
    /* on the API port behind a scope; open on the admin listener (http.admin_port) */
    {R_READY, "GET", "/readyz", ING_SCOPE_OPS_READ, ING_BODY_NONE, ING_RT_PROBE, ing_ready,
     "GET /readyz"},
    {R_METRICS, "GET", "/metrics", ING_SCOPE_OPS_READ, ING_BODY_NONE, ING_RT_PROBE, ing_metrics,
     "GET /metrics"},
    {R_OPENAPI, "GET", "/openapi.json", 0, ING_BODY_NONE, 0, ing_openapi, "GET /openapi.json"},
};
const size_t ing_routes_count = sizeof(ing_routes) / sizeof(ing_routes[0]);

/* 1 when url is pattern with each {name} standing for one or more bytes other than '/';
 * *arg: where the (last) {name} starts in u, *arg_len its length */
static int path_match(const char *pat, const char *u, const char **arg, size_t *arg_len)
{
    while (*pat) {
        if (*pat == '{') {
            const char *end = strchr(pat, '}');
            size_t n = strcspn(u, "/");
            if (!end || n == 0)
                return 0;
            *arg = u;
            *arg_len = n;
            pat = end + 1;
            u += n;
        } else if (*pat++ != *u++) {
            return 0;
        }
    }
    return *u == '\0';
}

void ing_route_match(struct ing_req *r)
{
    static const char *const allows[4] = {NULL, "GET, HEAD", "POST", "GET, HEAD, POST"};
    int get = strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0;
    int post = strcmp(r->method, "POST") == 0;
    unsigned methods = 0; /* 1: a GET row has the path, 2: a POST row */
    const struct ing_route_def *hit = NULL;
    const char *arg = NULL, *hit_arg = NULL;
    size_t arg_len = 0, hit_len = 0;

    for (size_t i = 0; i < ing_routes_count; i++) {
        const struct ing_route_def *d = &ing_routes[i];
        int is_get = d->method[0] == 'G';
        if (!path_match(d->path, r->url, &arg, &arg_len))
            continue;
        methods |= is_get ? 1u : 2u;
        if (!hit && ((is_get && get) || (!is_get && post))) {
            hit = d;
            hit_arg = arg;
            hit_len = arg_len;
        }
    }
    /* url is at most as long as arg: the copy is whole */
    snprintf(r->arg, sizeof(r->arg), "%.*s", hit_arg ? (int)hit_len : 0, hit_arg ? hit_arg : "");
    r->allow = allows[methods];
    r->rdef = NULL;
    r->route = R_UNKNOWN;
    if (!methods)
        r->status = 404;
    else if (!hit)
        r->status = 405; /* marker: the path exists, the method does not */
    else if (r->admin && !(hit->flags & ING_RT_PROBE))
        r->status = 404; /* the admin listener serves the probes and the metrics only */
    else {
        r->status = 0;
        r->rdef = hit;
        r->route = hit->id;
    }
}

unsigned ing_route_scope(const struct ing_req *r)
{
    return r->rdef && !r->admin ? r->rdef->scope : 0;
}

size_t ing_route_body_cap(const struct ing_req *r)
{
    switch (r->rdef ? r->rdef->body : ING_BODY_NONE) {
    case ING_BODY_SMALL: return 4096; /* a token request, an admin act: read before the
                                       * caller is known, or tiny anyway */
    case ING_BODY_WRITE: return ING.max_body;
    case ING_BODY_WEBHOOK: return ING.max_webhook;
    case ING_BODY_UPLOAD: return ING.max_upload;
    case ING_BODY_NONE: break;
    }
    return 0;
}

const char *ing_route_label(enum ing_route id)
{
    for (size_t i = 0; i < ing_routes_count; i++)
        if (ing_routes[i].id == id)
            return ing_routes[i].label;
    return "unknown";
}
