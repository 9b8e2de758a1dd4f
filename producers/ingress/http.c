/* http.c - the libmicrohttpd server: accumulation, routing, responses, metrics, logs.
 *
 * MHD runs an internal thread pool over epoll (http.threads threads). Handlers never wait
 * for Kafka: a request that publishes is suspended and resumed by the thread that learns
 * its outcome (ing_req_done). Every response carries X-Trace-Id; every request ends in
 * one JSON log line and in the per-route counters and latency histogram of /metrics. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/crypto.h"
#include "lib/log.h"
#include "producers/ingress/ingress.h"
#include "lib/banned.h"

static struct MHD_Daemon *daemon_h;

/* --- metrics ------------------------------------------------------------------------ */

static const char *const route_metric_names[R__COUNT] = {
    "POST /v1/auth/token", "POST /v1/payments", "GET /v1/payments/{id}", "GET /v1/payments",
    "POST /v1/refunds", "GET /v1/refunds/{id}", "POST /v1/payouts", "GET /v1/payouts/{id}",
    "POST /v1/webhooks/{psp}", "POST /v1/settlements/{psp}", "GET /v1/reconciliations/{id}",
    "GET /v1/admin/partners", "/v1/admin/holds", "GET /healthz", "GET /readyz", "GET /metrics",
    "GET /openapi.json", "unknown",
};
static const double hist_bounds_ms[] = {0.5, 1, 2, 5, 10, 20, 50, 100, 250, 500, 1000, 5000};
#define NBUCKETS (sizeof(hist_bounds_ms) / sizeof(hist_bounds_ms[0]))
static _Atomic long m_count[R__COUNT][600];
static _Atomic long m_hist[R__COUNT][NBUCKETS + 1];
static _Atomic long m_sum_us[R__COUNT];
static _Atomic long m_replays;

static void metrics_observe(enum ing_route rt, int status, int64_t us)
{
    size_t b;

    if (status < 100 || status > 599)
        status = 599;
    m_count[rt][status]++;
    for (b = 0; b < NBUCKETS; b++)
        if ((double)us <= hist_bounds_ms[b] * 1000.0)
            break;
    m_hist[rt][b]++;
    m_sum_us[rt] += us;
}

struct sbuf {
    char *p;
    size_t len, cap;
};

static void sb_printf(struct sbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *s, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(s->p ? s->p + s->len : NULL, s->p ? s->cap - s->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (s->p && s->len + (size_t)n < s->cap) {
            s->len += (size_t)n;
            return;
        }
        s->cap = (s->cap + (size_t)n + 1) * 2;
        s->p = realloc(s->p, s->cap);
        if (!s->p)
            return;
    }
}

void ing_metrics_write(char **out, size_t *len)
{
    struct sbuf s = {0};
    int rt, st;
    size_t b;

    sb_printf(&s, "# HELP kasir_ingress_requests_total HTTP requests by route and status\n"
                  "# TYPE kasir_ingress_requests_total counter\n");
    for (rt = 0; rt < R__COUNT; rt++)
        for (st = 100; st < 600; st++)
            if (m_count[rt][st])
                sb_printf(&s, "kasir_ingress_requests_total{route=\"%s\",code=\"%d\"} %ld\n",
                          route_metric_names[rt], st, (long)m_count[rt][st]);
    sb_printf(&s, "# HELP kasir_ingress_request_duration_seconds request latency\n"
                  "# TYPE kasir_ingress_request_duration_seconds histogram\n");
    for (rt = 0; rt < R__COUNT; rt++) {
        long cum = 0, total;
        for (b = 0; b <= NBUCKETS; b++)
            cum += m_hist[rt][b];
        if (!cum)
            continue;
        total = cum;
        cum = 0;
        for (b = 0; b < NBUCKETS; b++) {
            cum += m_hist[rt][b];
            sb_printf(&s,
                      "kasir_ingress_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %ld\n",
                      route_metric_names[rt], hist_bounds_ms[b] / 1000.0, cum);
        }
        sb_printf(&s,
                  "kasir_ingress_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %ld\n"
                  "kasir_ingress_request_duration_seconds_sum{route=\"%s\"} %ld.%06ld\n"
                  "kasir_ingress_request_duration_seconds_count{route=\"%s\"} %ld\n",
                  route_metric_names[rt], total, route_metric_names[rt],
                  (long)m_sum_us[rt] / 1000000, (long)m_sum_us[rt] % 1000000,
                  route_metric_names[rt], total);
    }
    {
        struct ing_store_stats ss;
        ing_store_stats(&ss);
        sb_printf(&s, "# HELP kasir_ingress_store_batches_total group commits (ingress_batch calls)\n"
                      "# TYPE kasir_ingress_store_batches_total counter\n"
                      "kasir_ingress_store_batches_total %ld\n"
                      "# HELP kasir_ingress_store_batch_items_total claims and finishes committed in them\n"
                      "# TYPE kasir_ingress_store_batch_items_total counter\n"
                      "kasir_ingress_store_batch_items_total{kind=\"claim\"} %ld\n"
                      "kasir_ingress_store_batch_items_total{kind=\"finish\"} %ld\n"
                      "# HELP kasir_ingress_store_batch_seconds_total time spent in them\n"
                      "# TYPE kasir_ingress_store_batch_seconds_total counter\n"
                      "kasir_ingress_store_batch_seconds_total %ld.%06ld\n",
                  ss.batches, ss.claims, ss.finishes, ss.exec_us / 1000000, ss.exec_us % 1000000);
    }
    sb_printf(&s, "# TYPE kasir_ingress_idempotent_replays_total counter\n"
                  "kasir_ingress_idempotent_replays_total %ld\n"
                  "# TYPE kasir_ingress_dependency_up gauge\n"
                  "kasir_ingress_dependency_up{dependency=\"kafka\"} %d\n"
                  "kasir_ingress_dependency_up{dependency=\"postgresql\"} %d\n",
              (long)m_replays, ING.kafka_ok ? 1 : 0, ING.pg_ok ? 1 : 0);
    *out = s.p;
    *len = s.len;
}

/* --- requests ----------------------------------------------------------------------- */

int64_t ing_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t ing_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

const char *ing_header(struct ing_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

static int is_lower_hex(const char *s, size_t n)
{
    size_t i;
    int nonzero = 0;

    for (i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
        if (s[i] != '0')
            nonzero = 1;
    }
    return nonzero;
}

/* W3C traceparent "00-<32 hex trace>-<16 hex parent>-<2 hex flags>": its trace id is kept
 * so a partner's trace continues through Kasir; otherwise a fresh random one. */
static void trace_init(struct ing_req *r)
{
    const char *tp = ing_header(r, "traceparent");
    uint8_t rnd[24];
    struct ks_err e = {0};

    if (ks_random_bytes(rnd, sizeof(rnd), &e) != KS_OK)
        memset(rnd, 0x5a, sizeof(rnd));
    if (tp && strlen(tp) == 55 && tp[2] == '-' && tp[35] == '-' && tp[52] == '-' &&
        is_lower_hex(tp + 3, 32)) {
        memcpy(r->trace_id, tp + 3, 32);
        r->trace_id[32] = '\0';
    } else {
        ks_hex_encode(rnd, 16, r->trace_id);
    }
    ks_hex_encode(rnd + 16, 8, r->span_id);
}

static void route_match(struct ing_req *r)
{
    const char *u = r->url, *m = r->method;
    int get = strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0, post = strcmp(m, "POST") == 0;
    enum ing_route rt = R_UNKNOWN;
    int path_known = 1;

#define SEG(prefix) (strncmp(u, prefix, strlen(prefix)) == 0 && u[strlen(prefix)] != '\0' && \
                     !strchr(u + strlen(prefix), '/'))
    if (strcmp(u, "/v1/auth/token") == 0)
        rt = post ? R_TOKEN : R__COUNT;
    else if (strcmp(u, "/v1/payments") == 0)
        rt = post ? R_PAY_POST : get ? R_PAY_LIST : R__COUNT;
    else if (SEG("/v1/payments/"))
        rt = get ? R_PAY_GET : R__COUNT;
    else if (strcmp(u, "/v1/refunds") == 0)
        rt = post ? R_REFUND_POST : R__COUNT;
    else if (SEG("/v1/refunds/"))
        rt = get ? R_REFUND_GET : R__COUNT;
    else if (strcmp(u, "/v1/payouts") == 0)
        rt = post ? R_PAYOUT_POST : R__COUNT;
    else if (SEG("/v1/payouts/"))
        rt = get ? R_PAYOUT_GET : R__COUNT;
    else if (SEG("/v1/webhooks/"))
        rt = post ? R_WEBHOOK : R__COUNT;
    else if (SEG("/v1/settlements/"))
        rt = post ? R_SETTLE : R__COUNT;
    else if (SEG("/v1/reconciliations/"))
        rt = get ? R_RECON_GET : R__COUNT;
    else if (strcmp(u, "/v1/admin/partners") == 0)
        rt = get ? R_ADMIN_PARTNERS : R__COUNT;
    else if (strncmp(u, "/v1/admin/holds", 15) == 0 && (u[15] == '\0' || u[15] == '/'))
        rt = ing_admin_holds_route(u, m);
    else if (strcmp(u, "/healthz") == 0)
        rt = get ? R_HEALTH : R__COUNT;
    else if (strcmp(u, "/readyz") == 0)
        rt = get ? R_READY : R__COUNT;
    else if (strcmp(u, "/metrics") == 0)
        rt = get ? R_METRICS : R__COUNT;
    else if (strcmp(u, "/openapi.json") == 0)
        rt = get ? R_OPENAPI : R__COUNT;
    else
        path_known = 0;
#undef SEG
    if (rt == R__COUNT) {
        r->route = R_UNKNOWN;
        r->status = 405; /* marker: the path exists, the method does not */
    } else {
        r->route = rt;
        r->status = path_known ? 0 : 404;
    }
    r->rdef = NULL;
    for (size_t i = 0; i < ing_routes_count; i++)
        if (ing_routes[i].id == r->route)
            r->rdef = &ing_routes[i];
}

static void req_free(struct ing_req *r)
{
    if (!r)
        return;
    free(r->body);
    free(r->resp);
    free(r->payload);
    ks_jw_free(&r->claim);
    free(r->row);
    free(r->claim_str);
    free(r->fin_str);
    json_decref(r->parsed);
    free(r);
}

static void set_response(struct ing_req *r, int status, char *body, size_t len,
                         const char *ctype)
{
    free(r->resp);
    r->status = status;
    r->resp = body;
    r->resp_len = len;
    r->ctype = ctype;
}

int ing_respond_stored(struct ing_req *r, json_t *res)
{
    const char *b64 = json_string_value(json_object_get(res, "body"));
    size_t cap = b64 ? strlen(b64) : 0;
    char *body = b64 ? malloc(cap + 1) : NULL;
    long n = body ? ks_b64_decode(b64, cap, (uint8_t *)body, cap + 1) : -1;

    if (n < 0) {
        free(body);
        return -1;
    }
    set_response(r, (int)json_integer_value(json_object_get(res, "status")), body, (size_t)n,
                 "application/json");
    return 0;
}

void ing_respond_text(struct ing_req *r, int status, char *json, size_t len)
{
    if (!json) {
        struct ing_problem p;
        ing_problem(&p, "internal", NULL, "out of memory");
        ing_respond_problem(r, &p);
        return;
    }
    set_response(r, status, json, len, "application/json");
    atomic_store(&r->state, S_DONE);
}

void ing_respond_json(struct ing_req *r, int status, json_t *body)
{
    char *s = json_dumps(body, JSON_COMPACT);

    json_decref(body);
    ing_respond_text(r, status, s, s ? strlen(s) : 0);
}

char *ing_problem_body(const struct ing_req *r, const struct ing_problem *p, json_t *extra,
                       size_t *len)
{
    json_t *o = json_object();
    const char *title = "Error";
    char type[128];
    char *s;
    size_t i;

    for (i = 0; i < ing_codes_count; i++)
        if (strcmp(ing_codes[i].code, p->code) == 0)
            title = ing_codes[i].title;
    snprintf(type, sizeof(type), "https://kasir.dev/problems/%s", p->code);
    json_object_set_new(o, "type", json_string(type));
    json_object_set_new(o, "title", json_string(title));
    json_object_set_new(o, "status", json_integer(p->status));
    json_object_set_new(o, "detail", json_string(p->detail));
    json_object_set_new(o, "code", json_string(p->code));
    if (p->field[0])
        json_object_set_new(o, "field", json_string(p->field));
    json_object_set_new(o, "trace_id", json_string(r->trace_id));
    if (extra) {
        json_object_update(o, extra);
        json_decref(extra);
    }
    s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    *len = s ? strlen(s) : 0;
    return s;
}

void ing_respond_problem_x(struct ing_req *r, const struct ing_problem *p, json_t *extra)
{
    size_t len;
    char *s = ing_problem_body(r, p, extra, &len);

    set_response(r, p->status, s, len, "application/problem+json");
    r->code = p->code;
    if (p->status == 503 && !r->retry_after)
        r->retry_after = 2;
    if (p->status == 409 && !r->retry_after && strcmp(p->code, "request_in_progress") == 0)
        r->retry_after = 1;
    atomic_store(&r->state, S_DONE);
}

void ing_respond_problem(struct ing_req *r, const struct ing_problem *p)
{
    ing_respond_problem_x(r, p, NULL);
}

_Atomic long ing_inflight;

void ing_suspend(struct ing_req *r)
{
    ing_inflight++;
    atomic_store(&r->state, S_SUSPENDED);
    r->sent = -1; /* marker for on_request: the handler suspended */
    MHD_suspend_connection(r->conn);
}

void ing_req_done(struct ing_req *r)
{
    /* the response is complete before the state says so; MHD then calls on_request */
    atomic_store(&r->state, S_DONE);
    MHD_resume_connection(r->conn);
    ing_inflight--;
}

static void log_request(struct ing_req *r, int64_t us)
{
    char st[8], lat[24];

    snprintf(st, sizeof(st), "%d", r->status);
    snprintf(lat, sizeof(lat), "%lld", (long long)us);
    ks_log(r->status >= 500 ? KS_LOG_WARN : KS_LOG_INFO, "ingress.request", NULL,
           "trace_id", r->trace_id, "method", r->method,
           "route", route_metric_names[r->route], "status", st, "code", r->code,
           "partner_id", r->partner_id[0] ? r->partner_id : NULL,
           "principal", r->cred_id[0] ? r->cred_id : NULL,
           "resource_id", r->rid[0] ? r->rid : NULL,
           "replayed", r->replayed ? "true" : NULL, "latency_us", lat, NULL);
    if (r->t_claim) {
        char a[24], b[24], c[24];
        snprintf(a, sizeof(a), "%lld", (long long)(r->t_claimed - r->t_claim));
        snprintf(b, sizeof(b), "%lld", (long long)(r->t_dr - r->t_claimed));
        snprintf(c, sizeof(c), "%lld", (long long)(ing_mono_us() - r->t_dr));
        ks_log(KS_LOG_DEBUG, "ingress.request.timing", NULL, "trace_id", r->trace_id,
               "claim_us", a, "publish_us", b, "finish_us", c, NULL);
    }
}

static enum MHD_Result send_response(struct ing_req *r)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;
    char ra[16];
    int64_t us;

    if (r->sent == 1)
        return MHD_YES;
    r->sent = 1;
    if (!r->resp) {
        struct ing_problem p;
        ing_problem(&p, "internal", NULL, "no response was produced");
        ing_respond_problem(r, &p);
    }
    resp = MHD_create_response_from_buffer(r->resp_len, r->resp, MHD_RESPMEM_MUST_FREE);
    if (!resp)
        return MHD_NO;
    r->resp = NULL; /* owned by MHD now */
    MHD_add_response_header(resp, "Content-Type", r->ctype ? r->ctype : "application/json");
    MHD_add_response_header(resp, "X-Trace-Id", r->trace_id);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    if (r->retry_after) {
        snprintf(ra, sizeof(ra), "%d", r->retry_after);
        MHD_add_response_header(resp, "Retry-After", ra);
    }
    if (r->replayed) {
        MHD_add_response_header(resp, "Idempotent-Replayed", "true");
        m_replays++;
    }
    if (r->status == 401 && r->route != R_WEBHOOK)
        MHD_add_response_header(resp, "WWW-Authenticate", "Basic realm=\"kasir\", Bearer");
    if (r->status == 405)
        MHD_add_response_header(resp, "Allow", r->rdef ? r->rdef->method : "GET, POST");
    ret = MHD_queue_response(r->conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    us = ing_mono_us() - r->t0_us;
    metrics_observe(r->route, r->status, us);
    if (r->route != R_HEALTH && r->route != R_READY && r->route != R_METRICS)
        log_request(r, us);
    return ret;
}

static size_t body_cap(enum ing_route rt)
{
    switch (rt) {
    case R_SETTLE: return ING.max_upload;
    case R_WEBHOOK: return ING.max_webhook;
    default: return ING.max_body;
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct ing_req *r = *con_cls;
    (void)cls;
    (void)version;

    if (!r) {
        const char *cl;
        r = calloc(1, sizeof(*r));
        if (!r)
            return MHD_NO;
        r->conn = c;
        r->t0_us = ing_mono_us();
        snprintf(r->url, sizeof(r->url), "%s", url);
        snprintf(r->method, sizeof(r->method), "%s", method);
        trace_init(r);
        route_match(r);
        r->max = body_cap(r->route);
        *con_cls = r;
        cl = ing_header(r, "Content-Length");
        if (cl && strlen(cl) > 12)
            r->too_large = 1;
        else if (cl && (size_t)strtoull(cl, NULL, 10) > r->max)
            r->too_large = 1;
        if (r->too_large) {
            struct ing_problem p;
            ing_problem(&p, "body_too_large", NULL, "the body is larger than %zu bytes", r->max);
            ing_respond_problem(r, &p);
            return send_response(r);
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!r->too_large) {
            if (r->len + *upload_data_size > r->max) {
                r->too_large = 1;
            } else {
                if (r->len + *upload_data_size + 1 > r->cap) {
                    size_t nc = r->cap ? r->cap : 4096;
                    char *nb;
                    while (nc < r->len + *upload_data_size + 1)
                        nc *= 2;
                    if (nc > r->max + 1)
                        nc = r->max + 1;
                    nb = realloc(r->body, nc);
                    if (!nb)
                        return MHD_NO;
                    r->body = nb;
                    r->cap = nc;
                }
                memcpy(r->body + r->len, upload_data, *upload_data_size);
                r->len += *upload_data_size;
                r->body[r->len] = '\0';
            }
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (r->sent == 1)
        return MHD_YES;
    if (atomic_load(&r->state) == S_DONE)
        return send_response(r);
    if (atomic_load(&r->state) == S_SUSPENDED)
        return MHD_YES; /* resumed spuriously: wait for ing_req_done */
    if (r->too_large) {
        struct ing_problem p;
        ing_problem(&p, "body_too_large", NULL, "the body is larger than %zu bytes", r->max);
        ing_respond_problem(r, &p);
        return send_response(r);
    }
    if (!r->body) {
        r->body = calloc(1, 1);
        if (!r->body)
            return MHD_NO;
    }
    ing_handle(r);
    if (r->sent == -1) {
        /* suspended: another thread may already have finished it, which only marks the
         * state; MHD calls on_request again after the resume and the response goes then */
        r->sent = 0;
        return MHD_YES;
    }
    return send_response(r);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    req_free(*con_cls);
    *con_cls = NULL;
}

int ing_http_start(int port, int threads)
{
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO |
                     MHD_USE_ERROR_LOG;

    daemon_h = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, NULL,
                                MHD_OPTION_THREAD_POOL_SIZE, (unsigned)threads,
                                MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
                                MHD_OPTION_CONNECTION_LIMIT, (unsigned)4000,
                                MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
                                MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024,
                                MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(16 * 1024),
                                MHD_OPTION_END);
    return daemon_h ? 0 : -1;
}

void ing_http_quiesce(void)
{
    if (daemon_h)
        MHD_quiesce_daemon(daemon_h);
}

void ing_http_stop(void)
{
    if (daemon_h) {
        MHD_stop_daemon(daemon_h);
        daemon_h = NULL;
    }
}
