/* http.c - the libmicrohttpd server: limits, authentication at the headers, body
 * accumulation, sending responses, metrics, logs, the drain at SIGTERM. It owns the
 * connection and the request's life cycle; what a route is (scope, body cap, handler) it
 * reads from the route table (routes.c), and a request's answer is made with request.c.
 *
 * MHD runs an internal thread pool over poll() (http.threads threads; not epoll:
 * lib/httpd.h). Server threads never wait for PostgreSQL or Kafka: a request that needs
 * either is suspended and resumed by the thread that learns its outcome (ing_req_done). A
 * request is authenticated on its headers before any of its body is read. Connections are
 * capped (in total, below the descriptor limit, and per client address) and have deadlines
 * (below). Every response carries X-Trace-Id; every request ends in one JSON log line and
 * in the per-route counters and latency histogram of /metrics. /healthz, /readyz and
 * /metrics can have a listener of their own (http.admin_port). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lib/crypto.h"
#include "lib/headers.h"
#include "lib/httpd.h"
#include "lib/jsonw.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/trace.h"
#include "producers/ingress/ingress.h"
#include "lib/banned.h"

static struct MHD_Daemon *daemon_h;

/* --- metrics ------------------------------------------------------------------------ */

/* The ingress's Prometheus text comes from lib's registry (lib/metrics.h), like every
 * daemon's. Request counters are per route and status, created the first time a pair is
 * seen and then found in req_count without the registry's lock; the other modules keep
 * their own atomic counts (store, auth, connections), copied into the registry when
 * /metrics is read. */
static const int64_t latency_bounds_us[] = {500,    1000,   2000,   5000,    10000,  20000,
                                            50000,  100000, 250000, 500000, 1000000, 5000000};
static struct ks_metrics *REG;
static pthread_mutex_t render_mu = PTHREAD_MUTEX_INITIALIZER;
static struct ks_metric *_Atomic req_count[R__COUNT][600];
static struct ks_metric *req_latency[R__COUNT], *m_replays;

static void metrics_init(void)
{
    char labels[96];
    if (REG)
        return;
    REG = ks_metrics_new();
    for (int rt = 0; rt < R__COUNT; rt++) {
        snprintf(labels, sizeof(labels), "route=\"%s\"", ing_route_label((enum ing_route)rt));
        req_latency[rt] = ks_metrics_histogram(
            REG, "kasir_ingress_request_duration_seconds", "request latency", labels,
            latency_bounds_us, sizeof(latency_bounds_us) / sizeof(latency_bounds_us[0]));
    }
    m_replays = ks_metrics_counter(REG, "kasir_ingress_idempotent_replays_total",
                                   "answers replayed from an idempotency record", NULL);
}

static void metrics_observe(enum ing_route rt, int status, int64_t us)
{
    struct ks_metric *c;

    if (status < 100 || status > 599)
        status = 599;
    c = atomic_load_explicit(&req_count[rt][status], memory_order_acquire);
    if (!c) {
        char labels[96];
        snprintf(labels, sizeof(labels), "route=\"%s\",code=\"%d\"", ing_route_label(rt),
                 status);
        /* two threads may race here: the registry gives both the same metric */
        c = ks_metrics_counter(REG, "kasir_ingress_requests_total",
                               "HTTP requests by route and status", labels);
        atomic_store_explicit(&req_count[rt][status], c, memory_order_release);
    }
    ks_metric_add(c, 1);
    ks_metric_observe(req_latency[rt], us);
}

/* A module's running count into a registry counter (they only grow). */
static void copy_counter(const char *name, const char *help, const char *labels, long v)
{
    struct ks_metric *c = ks_metrics_counter(REG, name, help, labels);
    ks_metric_add(c, (int64_t)v - ks_metric_value(c));
}

static void copy_gauge(const char *name, const char *help, const char *labels, long v)
{
    ks_metric_set(ks_metrics_gauge(REG, name, help, labels), (int64_t)v);
}

void ing_metrics_write(char **out, size_t *len)
{
    struct ing_store_stats ss;
    struct ing_http_stats hs;
    struct ing_auth_stats as;
    struct ing_store_health sh;
    struct ks_metric *t;
    long parked, reruns;

    *out = NULL;
    *len = 0;
    if (!REG)
        return;
    ing_store_stats(&ss);
    ing_http_metrics(&hs);
    ing_auth_stats(&as);
    ing_store_health(&sh);
    pthread_mutex_lock(&render_mu); /* two scrapes at once would add each delta twice */
    copy_counter("kasir_ingress_store_batches_total", "group commits (ingress_batch calls)",
                 NULL, ss.batches);
    copy_counter("kasir_ingress_store_batch_items_total", "claims and finishes committed in them",
                 "kind=\"claim\"", ss.claims);
    copy_counter("kasir_ingress_store_batch_items_total", "claims and finishes committed in them",
                 "kind=\"finish\"", ss.finishes);
    t = ks_metrics_counter_us(REG, "kasir_ingress_store_batch_seconds_total",
                              "time spent in them", NULL);
    ks_metric_add(t, (int64_t)ss.exec_us - ks_metric_value(t));
    copy_gauge("kasir_ingress_connections", "open connections of the API listener", NULL,
               hs.connections);
    copy_counter("kasir_ingress_connections_total", "connections accepted by the API listener",
                 NULL, hs.connections_total);
    copy_counter("kasir_ingress_connections_reaped_total", "connections closed at their deadline",
                 NULL, hs.reaped);
    copy_gauge("kasir_ingress_requests_in_progress",
               "requests handed to a handler, not answered yet", NULL, hs.live);
    copy_gauge("kasir_ingress_requests_allocated", "request records in memory", NULL,
               hs.requests_allocated);
    copy_counter("kasir_ingress_auth_lookups_total",
                 "credential look-ups in PostgreSQL (cache misses)", NULL, as.lookups);
    copy_counter("kasir_ingress_auth_lookups_coalesced_total",
                 "cache misses answered by a look-up of the same credential already running",
                 NULL, as.coalesced);
    copy_counter("kasir_ingress_ip_limited_total",
                 "unauthenticated requests refused by the per-address limit", NULL, as.ip_limited);
    copy_gauge("kasir_ingress_auth_cache_entries", "cached credentials", NULL, as.cache_entries);
    copy_gauge("kasir_ingress_token_nonces", "token nonces remembered", NULL, as.nonces);
    copy_counter("kasir_ingress_auth_cache_flushes_total", "key or partner changes seen (NOTIFY)",
                 NULL, as.flushes);
    copy_counter("kasir_ingress_idempotency_purged_total",
                 "expired, resolved idempotency records deleted", NULL, sh.purged);
    copy_gauge("kasir_ingress_idempotency_unresolved",
               "expired records whose event may be in Kafka without a record of it (kept; see "
               "ingress_unresolved)", NULL, sh.unresolved);
    copy_gauge("kasir_ingress_finishes_pending",
               "finishes of published events waiting for PostgreSQL", NULL, sh.pending_finishes);
    ing_accept_stats(&parked, &reruns);
    copy_gauge("kasir_ingress_parked_requests",
               "reads, retries and refunds waiting for a payment's rows (kasir-risk's)", NULL,
               parked);
    copy_counter("kasir_ingress_parked_runs_total",
                 "runs of such requests again, to look for the rows", NULL, reruns);
    copy_gauge("kasir_ingress_dependency_up", "1 when the dependency answers",
               "dependency=\"kafka\"", ING.kafka_ok ? 1 : 0);
    copy_gauge("kasir_ingress_dependency_up", "1 when the dependency answers",
               "dependency=\"postgresql\"", ING.pg_ok ? 1 : 0);
    *out = ks_metrics_render(REG, len);
    pthread_mutex_unlock(&render_mu);
}

/* A valid W3C traceparent's trace id is kept (lib/trace.h's rules) so a partner's trace
 * continues through Kasir; otherwise a fresh random one. The span is always ours. */
static void trace_init(struct ing_req *r)
{
    const char *tp = ing_header(r, KS_H_TRACEPARENT);
    char parent_span[17], flags[3];
    uint8_t rnd[24];
    struct ks_err e = {0};

    if (ks_random_bytes(rnd, sizeof(rnd), &e) != KS_OK)
        memset(rnd, 0x5a, sizeof(rnd));
    if (!tp || ks_trace_parse(tp, r->trace_id, parent_span, flags) != 0)
        ks_hex_encode(rnd, 16, r->trace_id);
    ks_hex_encode(rnd + 16, 8, r->span_id);
}

/* --- responses ---------------------------------------------------------------------- */

static _Atomic long m_live_reqs; /* allocated requests (a leak shows here) */
static _Atomic long ing_busy;    /* server threads inside on_request */

static void req_free(struct ing_req *r)
{
    if (!r)
        return;
    if (r->counted)
        ing_live--;
    m_live_reqs--;
    free(r->body);
    free(r->resp);
    free(r->payload);
    free(r->claim_str);
    free(r->fin_str);
    free(r->qarg);
    json_decref(r->parsed);
    if (r->stream_free && r->stream_cls)
        r->stream_free(r->stream_cls); /* a stream whose response was never made */
    free(r);
}

static void log_request(struct ing_req *r, int64_t us)
{
    char st[8], lat[24];

    snprintf(st, sizeof(st), "%d", r->status);
    snprintf(lat, sizeof(lat), "%lld", (long long)us);
    ks_log(r->status >= 500 ? KS_LOG_WARN : KS_LOG_INFO, "ingress.request", NULL,
           "trace_id", r->trace_id, "method", r->method,
           "route", ing_route_label(r->route), "status", st, "code", r->code,
           "partner_id", r->partner_id[0] ? r->partner_id : NULL,
           "principal", r->cred_id[0] ? r->cred_id : NULL,
           "resource_id", r->rid[0] ? r->rid : NULL,
           "client", r->ip[0] ? r->ip : NULL,
           "replayed", r->replayed ? "true" : NULL, "latency_us", lat, NULL);
    if (r->t_claim && ks_log_enabled(KS_LOG_DEBUG)) {
        char a[24], b[24], c[24];
        snprintf(a, sizeof(a), "%lld", (long long)(r->t_claimed - r->t_claim));
        snprintf(b, sizeof(b), "%lld", (long long)(r->t_dr - r->t_claimed));
        snprintf(c, sizeof(c), "%lld", (long long)(ks_clock_mono_us() - r->t_dr));
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
    if (!r->resp && !(r->stream && r->status == 200)) {
        struct ing_problem p;
        ing_problem(&p, "internal", NULL, "no response was produced");
        ing_respond_problem(r, &p);
    }
    if (r->stream && r->status == 200) {
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, r->stream,
                                                 r->stream_cls, r->stream_free);
        if (!resp)
            return MHD_NO;
        r->stream_cls = NULL; /* owned by MHD now */
    } else {
        resp = MHD_create_response_from_buffer(r->resp_len, r->resp, MHD_RESPMEM_MUST_FREE);
        if (!resp)
            return MHD_NO;
        r->resp = NULL; /* owned by MHD now */
    }
    MHD_add_response_header(resp, "Content-Type", r->ctype ? r->ctype : "application/json");
    MHD_add_response_header(resp, "X-Trace-Id", r->trace_id);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    if (r->retry_after) {
        snprintf(ra, sizeof(ra), "%d", r->retry_after);
        MHD_add_response_header(resp, "Retry-After", ra);
    }
    if (r->replayed) {
        MHD_add_response_header(resp, "Idempotent-Replayed", "true");
        ks_metric_add(m_replays, 1);
    }
    if (r->status == 401 && !(r->rdef && (r->rdef->flags & ING_RT_PSP)))
        MHD_add_response_header(resp, "WWW-Authenticate", "Basic realm=\"kasir\", Bearer");
    if (r->status == 405 && r->allow)
        MHD_add_response_header(resp, "Allow", r->allow);
    /* a request answered before its body was read, or during the drain: the connection
     * goes (MHD would close it anyway when a body is left unread; this says so) */
    if (r->close || atomic_load(&ING.draining))
        MHD_add_response_header(resp, "Connection", "close");
    ret = MHD_queue_response(r->conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    us = ks_clock_mono_us() - r->t0_us;
    metrics_observe(r->route, r->status, us);
    /* refusals by the per-address limit are counted, not logged one by one: a flood would
     * write the log at its own rate (the reaper logs their number every 10 s) */
    if (!(r->rdef && (r->rdef->flags & ING_RT_PROBE)) && !(r->status == 429 && !r->authed))
        log_request(r, us);
    return ret;
}

/* answers r at once with problem code (before or after its body) */
static enum MHD_Result answer_now(struct ing_req *r, const char *code, const char *field,
                                  const char *detail)
{
    struct ing_problem p;

    ing_problem(&p, code, field, "%s", detail);
    ing_respond_problem(r, &p);
    return send_response(r);
}

/* --- connections: limits and deadlines -------------------------------------------------
 *
 * libmicrohttpd's own timeout is an idle timeout, which a client sending a byte now and
 * then never hits (slowloris). Every connection therefore has a deadline, enforced by the
 * reaper thread (shutdown(2) of the socket, which MHD then closes):
 *   accepted, or its previous request answered -> its next request line within
 *     http.idle_timeout;
 *   request line received -> the whole request (headers and body) within
 *     http.request_timeout (http.upload_timeout for an authenticated settlement upload);
 *   request received -> none while it is handled (its own timeouts bound it). */

struct ing_conn {
    struct ing_conn *prev, *next;
    int fd;
    int uri_too_long;
    _Atomic int64_t deadline_us; /* monotonic; 0: none */
};

static pthread_mutex_t conns_mu = PTHREAD_MUTEX_INITIALIZER;
static struct ing_conn *conns_head;
static _Atomic long m_conns, m_conns_reaped, m_conns_total;
static pthread_t reaper;
static int reaper_started;
static _Atomic int reaper_stop;

#define ING_MAX_URI 8192
#define ING_MAX_HEADERS 16384
/* libmicrohttpd's per-connection memory pool: the request line and headers must fit in it
 * (beyond, it answers 414/431 itself, docs/ARCHITECTURE.md "Ingress"), and so must the
 * answer's own headers, or it closes the connection with no answer at all - after a
 * payment was claimed and published. So ING_MAX_HEADERS counts what the headers and any
 * trailer fields take of the pool (pool_use), and the pool is big enough for the worst
 * case within it: 0.9.75 starts its read buffer at half the pool, and a folded header line
 * is joined in a copy made after it, so that buffer stays whole: half the pool plus
 * ING_MAX_HEADERS leaves 8 KiB for the answer. Bytes the library keeps without a record
 * are not seen here (empty lines before a request line, a chunk's extension): ~48 KB of
 * them can still leave no room, and that client's retry of its key gets the stored
 * answer (test 216). 24 KiB (tried in session 23: 0.9.75 clears the whole pool at every
 * request, memset 6.7-7.8 % of the ingress's CPU at 48 KiB against 4.8-4.9 %) let one
 * folded line of ~11.8 KB lose a payment's 202 (test 216). */
#define ING_MHD_POOL (48 * 1024)
/* 0.9.75 keeps a record per header, cookie, query argument and trailer field in the pool
 * (56 bytes, at its 16-byte alignment), and a copy of the Cookie header's value to cut
 * into cookies */
#define ING_MHD_RECORD 64

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct ing_conn *t = *socket_context;
    (void)cls;

    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!(t = calloc(1, sizeof(*t))))
            return;
        t->fd = ci ? ci->connect_fd : -1;
        t->deadline_us = ks_clock_mono_us() + ING.idle_timeout_ms * 1000;
        pthread_mutex_lock(&conns_mu);
        t->next = conns_head;
        if (conns_head)
            conns_head->prev = t;
        conns_head = t;
        pthread_mutex_unlock(&conns_mu);
        *socket_context = t;
        m_conns++;
        m_conns_total++;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED && t) {
        /* called before MHD closes the socket: under the lock the reaper never shuts down
         * a descriptor that was reused */
        pthread_mutex_lock(&conns_mu);
        if (t->prev)
            t->prev->next = t->next;
        else
            conns_head = t->next;
        if (t->next)
            t->next->prev = t->prev;
        pthread_mutex_unlock(&conns_mu);
        free(t);
        *socket_context = NULL;
        m_conns--;
    }
}

static struct ing_conn *conn_tracker(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static void conn_deadline(struct ing_conn *t, int64_t ms)
{
    if (t)
        t->deadline_us = ms > 0 ? ks_clock_mono_us() + ms * 1000 : 0;
}

/* the request line is in: the rest of the request has http.request_timeout */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    struct ing_conn *t = conn_tracker(c);
    (void)cls;

    if (t) {
        t->uri_too_long = strlen(uri) > ING_MAX_URI;
        conn_deadline(t, ING.request_timeout_ms);
    }
    return NULL;
}

static void *reaper_main(void *arg)
{
    long limited_logged = 0;
    int64_t next_note = 0;
    (void)arg;

    while (!reaper_stop) {
        int64_t now = ks_clock_mono_us();
        struct ing_conn *t;

        if (now >= next_note) {
            struct ing_auth_stats as;
            ing_auth_stats(&as);
            if (as.ip_limited != limited_logged) {
                char n[24];
                snprintf(n, sizeof(n), "%ld", as.ip_limited - limited_logged);
                ks_log(KS_LOG_WARN, "ingress.auth.ip_limited",
                       "unauthenticated requests refused by the per-address limit (10 s)",
                       "count", n, NULL);
                limited_logged = as.ip_limited;
            }
            next_note = now + 10000000;
        }

        pthread_mutex_lock(&conns_mu);
        for (t = conns_head; t; t = t->next) {
            int64_t d = t->deadline_us;
            if (d && now > d && t->fd >= 0) {
                t->deadline_us = 0;
                shutdown(t->fd, SHUT_RDWR);
                m_conns_reaped++;
            }
        }
        pthread_mutex_unlock(&conns_mu);
        usleep(200000);
    }
    return NULL;
}

void ing_http_metrics(struct ing_http_stats *out)
{
    out->connections = m_conns;
    out->connections_total = m_conns_total;
    out->reaped = m_conns_reaped;
    out->live = ing_live;
    out->requests_allocated = m_live_reqs;
}

/* --- the access handler --------------------------------------------------------------- */

/* After authentication (or for a route without it): the body may come. */
static enum MHD_Result accept_body(struct ing_req *r)
{
    r->phase = PH_BODY;
    r->close = 0;
    if (r->rdef && r->rdef->body == ING_BODY_UPLOAD)
        conn_deadline(r->tc, ING.upload_timeout_ms);
    return MHD_YES;
}

/* 1 when the request announces a body (which an early answer leaves unread) */
static int has_body(struct ing_req *r)
{
    const char *cl = ing_header(r, "Content-Length");

    return (cl && strcmp(cl, "0") != 0) || ing_header(r, "Transfer-Encoding") != NULL;
}

static enum MHD_Result count_value(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    size_t *bytes = cls;

    *bytes += ING_MHD_RECORD;
    if (kind == MHD_HEADER_KIND && value && strcasecmp(key, "Cookie") == 0)
        *bytes += strlen(value) + 1;
    /* a trailer field's line is in the pool too; header_size counts only the headers' */
    if (kind == MHD_FOOTER_KIND)
        *bytes += strlen(key) + (value ? strlen(value) : 0) + 4;
    return MHD_YES;
}

/* what r's request line, headers and trailer fields (none before its body) take of its
 * connection's pool (ING_MHD_POOL) */
static size_t pool_use(struct ing_req *r)
{
    const union MHD_ConnectionInfo *hs =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    size_t bytes = hs ? hs->header_size : 0;

    MHD_get_connection_values(r->conn, MHD_HEADER_KIND | MHD_COOKIE_KIND |
                                           MHD_GET_ARGUMENT_KIND | MHD_FOOTER_KIND,
                              count_value, &bytes);
    return bytes;
}

/* the 404 of a path that is not UTF-8 text once decoded (lib/httpd.h), before its route's
 * refusals if it matches none, just before its handler if it does (dispatch) */
#define PATH_NOT_UTF8 "the path is not UTF-8 text (or holds %00): no endpoint or object"

#define TOO_LARGE "the request headers are larger than 16384 bytes (each header, cookie, " \
                  "query argument and trailer field counts 64 bytes more, a Cookie twice)"

/* The first call: the headers are in, none of the body has been read. Whatever is
 * answered here is answered before the body: an unauthenticated client never gets more of
 * its body read than the headers. */
static enum MHD_Result on_headers(struct ing_req *r)
{
    const char *cl = ing_header(r, "Content-Length");
    unsigned need;
    struct ing_problem p;
    int rc, wait;

    r->close = has_body(r); /* an answer now leaves the body unread: the connection goes */
    if (atomic_load(&ING.draining)) {
        r->close = 1;
        r->retry_after = 1;
        return answer_now(r, "unavailable", NULL, "the server is shutting down; retry");
    }
    if (r->tc && r->tc->uri_too_long)
        return answer_now(r, "uri_too_long", NULL, "the request target is longer than 8192 bytes");
    if (pool_use(r) > ING_MAX_HEADERS)
        return answer_now(r, "headers_too_large", NULL, TOO_LARGE);
    if (r->status == 404)
        return answer_now(r, "route_not_found", r->path_not_utf8 ? "path" : NULL,
                          r->path_not_utf8 ? PATH_NOT_UTF8 : "no endpoint at this path");
    if (r->status == 405) {
        ing_problem(&p, "method_not_allowed", NULL, "this path does not take %s", r->method);
        ing_respond_problem(r, &p);
        return send_response(r);
    }
    if (cl && (strlen(cl) > 12 || (size_t)strtoull(cl, NULL, 10) > r->max)) {
        ing_problem(&p, "body_too_large", NULL, "the body is larger than %zu bytes", r->max);
        ing_respond_problem(r, &p);
        return send_response(r);
    }
    if ((r->rdef->flags & ING_RT_IP_LIMIT) && (wait = ing_ip_take(r)) > 0) {
        r->retry_after = wait;
        return answer_now(r, "rate_limited", NULL,
                          "too many unauthenticated requests from this address");
    }
    need = ing_route_scope(r);
    if (!need)
        return accept_body(r);
    rc = ing_auth_begin(r, need, &p);
    if (rc == 1) {
        r->phase = PH_AUTH; /* resumed by the reader: on_request calls ing_auth_finish */
        return MHD_YES;
    }
    if (rc < 0) {
        ing_respond_problem(r, &p);
        return send_response(r);
    }
    return accept_body(r);
}

/* The whole request is in: its handler (routes.c's row). A row with a scope is never
 * handed over unauthenticated; the check at the headers makes this one a safety net. */
static void dispatch(struct ing_req *r)
{
    struct ing_problem p;

    if (!r->rdef) {
        ing_problem(&p, "route_not_found", NULL, "no endpoint at this path");
        ing_respond_problem(r, &p);
        return;
    }
    if (r->rdef->scope && !r->admin && !r->authed) {
        ing_problem(&p, "unauthorized", "Authorization", "not authenticated");
        ing_respond_problem(r, &p);
        return;
    }
    /* every id and argument is UTF-8 text, as PostgreSQL keeps it: one that is not would
     * fail its statement (a 503 that tells the caller to retry) or go into JSON. Checked
     * here, after every refusal of the headers (405, 413, 429, 401, 403), as a handler's own
     * rule would be */
    if (r->path_not_utf8) {
        ing_problem(&p, "route_not_found", "path", "%s", PATH_NOT_UTF8);
        ing_respond_problem(r, &p);
        return;
    }
    if (r->not_utf8[0]) {
        ing_problem(&p, "query_invalid", r->not_utf8,
                    "query argument %s is not UTF-8 text (or holds %%00)", r->not_utf8);
        ing_respond_problem(r, &p);
        return;
    }
    r->rdef->handle(r);
}

/* MHD_get_connection_values iterator: names in r->not_utf8 the first query argument whose
 * name or value is not UTF-8 (a %00 included: lib/httpd.h); the scan stops there */
static enum MHD_Result arg_not_utf8(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    struct ing_req *r = cls;
    int key_ok = ks_utf8_valid(key, strlen(key)), named = key_ok && *key;

    (void)kind;
    if (key_ok && (!value || ks_utf8_valid(value, strlen(value))))
        return MHD_YES;
    /* a name that is not text, or empty ("?=%FF"), is named as what it is */
    snprintf(r->not_utf8, sizeof(r->not_utf8), "%.*s", named ? (int)ks_utf8_prefix(key, 64) : 5,
             named ? key : "query");
    return MHD_NO;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct ing_req *r = *con_cls;
    enum MHD_Result ret;
    (void)version;

    ing_busy++;
    if (!r) {
        r = calloc(1, sizeof(*r));
        if (!r) {
            ing_busy--;
            return MHD_NO;
        }
        m_live_reqs++;
        r->conn = c;
        r->admin = cls != NULL;
        r->t0_us = ks_clock_mono_us();
        r->tc = conn_tracker(c);
        snprintf(r->url, sizeof(r->url), "%s", url);
        snprintf(r->method, sizeof(r->method), "%s", method);
        r->path_not_utf8 = !ks_utf8_valid(url, strlen(url));
        MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, arg_not_utf8, r);
        trace_init(r);
        ing_route_match(r);
        r->max = ing_route_body_cap(r);
        *con_cls = r;
        ret = on_headers(r);
        goto out;
    }
    if (r->phase == PH_AUTH) {
        /* resumed after a key lookup; the body has not been read yet */
        struct ing_problem p;
        if (ing_auth_finish(r, ing_route_scope(r), &p) != 0) {
            ing_respond_problem(r, &p);
            ret = send_response(r);
            goto out;
        }
        ret = accept_body(r);
        if (!*upload_data_size)
            goto out;
    }
    if (*upload_data_size) {
        if (r->len + *upload_data_size > r->max) {
            /* a chunked body past the cap: the connection goes, the rest is not read */
            r->too_large = 1;
            r->status = 413;
            r->code = "body_too_large";
            metrics_observe(r->route, 413, ks_clock_mono_us() - r->t0_us);
            log_request(r, ks_clock_mono_us() - r->t0_us);
            r->sent = 1;
            ret = MHD_NO;
            goto out;
        }
        if (r->len + *upload_data_size + 1 > r->cap) {
            size_t nc = r->cap ? r->cap : 4096;
            char *nb;
            while (nc < r->len + *upload_data_size + 1)
                nc *= 2;
            if (nc > r->max + 1)
                nc = r->max + 1;
            nb = realloc(r->body, nc);
            if (!nb) {
                ret = MHD_NO;
                goto out;
            }
            r->body = nb;
            r->cap = nc;
        }
        memcpy(r->body + r->len, upload_data, *upload_data_size);
        r->len += *upload_data_size;
        r->body[r->len] = '\0';
        *upload_data_size = 0;
        ret = MHD_YES;
        goto out;
    }
    if (r->sent == 1) {
        ret = MHD_YES;
        goto out;
    }
    if (r->phase == PH_HANDLED) {
        if (atomic_load(&r->state) == S_DONE)
            ret = send_response(r);
        else
            ret = MHD_YES; /* resumed spuriously: wait for ing_req_done */
        goto out;
    }
    /* the whole request is in */
    conn_deadline(r->tc, 0);
    r->phase = PH_HANDLED;
    ing_req_count_live(r);
    if (atomic_load(&ING.draining)) {
        r->close = 1;
        r->retry_after = 1;
        ret = answer_now(r, "unavailable", NULL, "the server is shutting down; retry");
        goto out;
    }
    /* a chunked body's trailer fields came after on_headers() counted the headers */
    if (ing_header(r, "Transfer-Encoding") && pool_use(r) > ING_MAX_HEADERS) {
        ret = answer_now(r, "headers_too_large", NULL, TOO_LARGE);
        goto out;
    }
    if (!r->body) {
        r->body = calloc(1, 1);
        if (!r->body) {
            ret = MHD_NO;
            goto out;
        }
    }
    dispatch(r);
    if (r->sent == -1) {
        /* suspended: another thread may already have finished it, which only marks the
         * state; MHD calls on_request again after the resume and the response goes then */
        r->sent = 0;
        ret = MHD_YES;
        goto out;
    }
    ret = send_response(r);
out:
    ing_busy--;
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct ing_req *r = *con_cls;
    (void)cls;
    (void)toe;

    /* answered: the connection waits for its next request line */
    conn_deadline(conn_tracker(c), ING.idle_timeout_ms);
    req_free(r);
    *con_cls = NULL;
}

/* libmicrohttpd's own messages, as JSON log lines */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char buf[512];
    size_t n;
    (void)cls;

    vsnprintf(buf, sizeof(buf), fmt, ap);
    n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    ks_log(KS_LOG_WARN, "ingress.http.library", buf, NULL);
}

/* --- start, drain, stop --------------------------------------------------------------- */

static struct MHD_Daemon *admin_h;

/* the connection cap: below the descriptors this process may open, with room for its
 * own (PostgreSQL, Kafka, logs); the soft limit is raised to the hard one first */
static unsigned connection_cap(void)
{
    struct rlimit rl;
    unsigned cap = ING.max_connections ? ING.max_connections : 4000;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        if (rl.rlim_cur < rl.rlim_max) {
            rlim_t want = rl.rlim_max == RLIM_INFINITY ? 65536 : rl.rlim_max;
            struct rlimit nr = {want, rl.rlim_max};
            if (setrlimit(RLIMIT_NOFILE, &nr) == 0)
                rl.rlim_cur = want;
        }
        if (rl.rlim_cur != RLIM_INFINITY) {
            rlim_t room = rl.rlim_cur > 256 ? rl.rlim_cur - 256 : rl.rlim_cur / 2;
            if (cap > room) {
                ks_logf(KS_LOG_WARN, "ingress.http.connections",
                        "http.max_connections %u lowered to %lu: the descriptor limit is %lu",
                        cap, (unsigned long)room, (unsigned long)rl.rlim_cur);
                cap = (unsigned)room;
            }
        }
    }
    return cap;
}

int ing_http_start(int port, int threads)
{
    /* poll(), not epoll (lib/httpd.h): requests of a burst were left unread under epoll
     * (test 233) */
    unsigned flags = KS_HTTPD_POLLING | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO |
                     MHD_USE_ERROR_LOG;
    unsigned cap = connection_cap();
    unsigned idle_s = (unsigned)((ING.idle_timeout_ms + 999) / 1000);

    metrics_init();
    if (threads < 1)
        threads = 1;
    /* MHD divides the limit among its threads */
    if (cap < (unsigned)threads)
        cap = (unsigned)threads;
    daemon_h = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, NULL,
                                MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                                MHD_OPTION_THREAD_POOL_SIZE, (unsigned)threads,
                                MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
                                MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL,
                                MHD_OPTION_URI_LOG_CALLBACK, on_uri, NULL,
                                MHD_OPTION_UNESCAPE_CALLBACK, ks_httpd_unescape, NULL,
                                MHD_OPTION_CONNECTION_LIMIT, cap,
                                MHD_OPTION_PER_IP_CONNECTION_LIMIT, ING.per_ip_connections,
                                MHD_OPTION_CONNECTION_TIMEOUT, idle_s ? idle_s : 1,
                                MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024,
                                MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)ING_MHD_POOL,
                                MHD_OPTION_END);
    if (!daemon_h)
        return -1;
    if (ING.admin_port > 0) {
        struct sockaddr_in sa;
        memset(&sa, 0, sizeof(sa));
        sa.sin_family = AF_INET;
        sa.sin_port = htons((uint16_t)ING.admin_port);
        if (inet_pton(AF_INET, ING.admin_bind, &sa.sin_addr) != 1) {
            ks_log(KS_LOG_ERROR, "config.invalid", "http.admin_bind is not an IPv4 address",
                   "setting", "http.admin_bind", NULL);
            return -1;
        }
        /* its own thread and limits: the probes answer whatever the API port endures */
        admin_h = MHD_start_daemon(KS_HTTPD_POLLING | MHD_USE_ERROR_LOG,
                                   (uint16_t)ING.admin_port, NULL, NULL, on_request, (void *)1,
                                   MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                                   MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                                   MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
                                   MHD_OPTION_UNESCAPE_CALLBACK, ks_httpd_unescape, NULL,
                                   MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
                                   MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
                                   MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(16 * 1024),
                                   MHD_OPTION_END);
        if (!admin_h) {
            ks_logf(KS_LOG_ERROR, "ingress.http.start", "could not listen on %s:%d (http.admin_port)",
                    ING.admin_bind, ING.admin_port);
            MHD_stop_daemon(daemon_h);
            daemon_h = NULL;
            return -1;
        }
    }
    reaper_stop = 0;
    if (pthread_create(&reaper, NULL, reaper_main, NULL) == 0)
        reaper_started = 1;
    return 0;
}

int ing_http_drain(void)
{
    int64_t until = ING.stop_by_us;

    atomic_store(&ING.draining, 1);
    /* a server thread that entered on_request before the flag was set may still be
     * handing its request over (busy); once busy and live are both zero, every request
     * that got to a handler has been answered and sent */
    for (int cut = 0;;) {
        if (atomic_load(&ing_busy) == 0 && atomic_load(&ing_live) == 0)
            return 0;
        if (ks_clock_mono_us() >= until) {
            /* audit exports still streaming end now (read-only: the client asks again),
             * with a second for their connections to close */
            if (cut++ || ing_audit_export_cut() == 0)
                break;
            until = ks_clock_mono_us() + 1000000;
        }
        usleep(10000);
    }
    ks_logf(KS_LOG_WARN, "ingress.drain.timeout", "%ld requests not answered after %lld ms, "
            "%ld of them suspended", (long)ing_live, (long long)ING.drain_timeout_ms,
            (long)ing_inflight);
    return ing_inflight > 0 ? -1 : 0;
}

void ing_http_stop(void)
{
    if (daemon_h) {
        MHD_stop_daemon(daemon_h);
        daemon_h = NULL;
    }
    if (admin_h) {
        MHD_stop_daemon(admin_h);
        admin_h = NULL;
    }
    if (reaper_started) {
        reaper_stop = 1;
        pthread_join(reaper, NULL);
        reaper_started = 0;
    }
}
