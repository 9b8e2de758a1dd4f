/* http.c - the HTTP side: reading requests, fault injection, latency without threads.
 *
 * libmicrohttpd runs a thread pool, each thread polling its own connections (poll()). A
 * request is read whole, handled at once (the store is in memory), and then either
 * answered or, when latency or a held timeout applies, its connection is suspended and put
 * in a timer heap; the timer thread resumes it when due and libmicrohttpd calls us again
 * to send the answer (or to drop the connection, for a timeout after the charge). No
 * thread waits for a delayed answer, so thousands of calls can be in flight. */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <microhttpd.h>

#include "deploy/psp-sandbox/sandbox.h"
#include "deploy/psp-sandbox/http.h"
#include "lib/httpd.h"
#include "lib/jsonw.h"
#include "lib/log.h"
#include "lib/banned.h"

#define MAX_BODY (1024 * 1024)

struct req {
    struct MHD_Connection *conn;
    char *body;
    size_t len, cap;
    int too_big;
    int state; /* 0 reading, 1 suspended, 2 resumed */
    int drop;  /* close the connection without an answer */
    int64_t due_us;
    struct sb_resp resp;
};

static struct MHD_Daemon *daemon_h;
static pthread_mutex_t tmu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t tcv = PTHREAD_COND_INITIALIZER;
static struct sb_heap theap;
static pthread_t timer_thread;
static volatile int timer_stop;
static long n_requests, n_errors, n_timeouts, n_declines, n_delayed;

const char *sb_header(const struct sb_call *c, const char *name)
{
    return MHD_lookup_connection_value((struct MHD_Connection *)c->conn, MHD_HEADER_KIND, name);
}

const char *sb_query(const struct sb_call *c, const char *name)
{
    return MHD_lookup_connection_value((struct MHD_Connection *)c->conn, MHD_GET_ARGUMENT_KIND,
                                       name);
}

void sb_respond_json(struct sb_resp *r, int status, json_t *body)
{
    free(r->body);
    r->status = status;
    r->body = body ? json_dumps(body, JSON_COMPACT) : NULL;
    r->ctype = "application/json";
    json_decref(body);
}

void sb_respond_text(struct sb_resp *r, int status, const char *ctype, char *text)
{
    free(r->body);
    r->status = status;
    r->body = text;
    r->ctype = ctype;
}

json_t *sb_http_stats(void)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I}", "requests",
                     (json_int_t)__atomic_load_n(&n_requests, __ATOMIC_RELAXED), "errors",
                     (json_int_t)__atomic_load_n(&n_errors, __ATOMIC_RELAXED), "timeouts",
                     (json_int_t)__atomic_load_n(&n_timeouts, __ATOMIC_RELAXED), "declines",
                     (json_int_t)__atomic_load_n(&n_declines, __ATOMIC_RELAXED), "delayed",
                     (json_int_t)__atomic_load_n(&n_delayed, __ATOMIC_RELAXED));
}

/* --- timer: a min-heap of suspended requests by due time ----------------------------- */

static int timer_push(struct req *q)
{
    int rc = -1;

    pthread_mutex_lock(&tmu);
    /* stopping: the caller answers at once */
    if (!timer_stop && sb_heap_push(&theap, q->due_us, q) == 0) {
        rc = 0;
        if (sb_heap_next(&theap) == q->due_us)
            pthread_cond_signal(&tcv);
    }
    pthread_mutex_unlock(&tmu);
    return rc;
}

static void *timer_main(void *arg)
{
    struct req *due[256];
    size_t n, i;
    (void)arg;

    pthread_mutex_lock(&tmu);
    while (!timer_stop) {
        int64_t now = sb_now_us();
        for (n = 0; n < 256 && sb_heap_next(&theap) <= now; n++)
            due[n] = sb_heap_pop(&theap);
        if (n) {
            /* resume outside the lock: libmicrohttpd's own locks are never taken under ours */
            pthread_mutex_unlock(&tmu);
            for (i = 0; i < n; i++) {
                due[i]->state = 2;
                MHD_resume_connection(due[i]->conn);
            }
            pthread_mutex_lock(&tmu);
            continue;
        }
        if (theap.n) {
            struct timespec ts;
            int64_t d = sb_heap_next(&theap);
            ts.tv_sec = (time_t)(d / 1000000);
            ts.tv_nsec = (long)(d % 1000000) * 1000;
            pthread_cond_timedwait(&tcv, &tmu, &ts);
        } else {
            pthread_cond_wait(&tcv, &tmu);
        }
    }
    /* answer whatever still waits, so the daemon can stop */
    while (theap.n) {
        struct req *q = sb_heap_pop(&theap);
        q->state = 2;
        MHD_resume_connection(q->conn);
    }
    pthread_mutex_unlock(&tmu);
    return NULL;
}

/* --- fault injection ------------------------------------------------------------------ */

struct fault {
    int decline, error, timeout, none;
    int latency_ms, hold_ms; /* -1: the settings' */
};

/* X-Sandbox-Fault: a list of decline | 5xx | timeout_after_charge | latency=MS | hold=MS |
 * none (no rate-based fault for this request), separated by commas or spaces. */
static int parse_fault(const char *h, struct fault *f, char *bad, size_t cap)
{
    char buf[256], *save = NULL, *tok;

    f->latency_ms = f->hold_ms = -1;
    if (!h)
        return 0;
    if (strlen(h) >= sizeof(buf) || !ks_utf8_valid(h, strlen(h))) {
        snprintf(bad, cap, "X-Sandbox-Fault: at most %zu bytes of UTF-8", sizeof(buf) - 1);
        return -1;
    }
    snprintf(buf, sizeof(buf), "%s", h);
    for (tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        if (strcmp(tok, "decline") == 0)
            f->decline = 1;
        else if (strcmp(tok, "5xx") == 0 || strcmp(tok, "500") == 0 || strcmp(tok, "error") == 0)
            f->error = 1;
        else if (strcmp(tok, "timeout_after_charge") == 0 || strcmp(tok, "timeout") == 0)
            f->timeout = 1;
        else if (strcmp(tok, "none") == 0)
            f->none = 1;
        else if (strncmp(tok, "latency=", 8) == 0 || strncmp(tok, "hold=", 5) == 0) {
            char *end;
            const char *v = strchr(tok, '=') + 1;
            long n = strtol(v, &end, 10);
            if (*end || end == v || n < 0 || n > 600000) {
                snprintf(bad, cap, "X-Sandbox-Fault: %.*s is not a number of milliseconds",
                         (int)ks_utf8_prefix(tok, 60), tok);
                return -1;
            }
            if (tok[0] == 'l')
                f->latency_ms = (int)n;
            else
                f->hold_ms = (int)n;
        } else {
            snprintf(bad, cap, "X-Sandbox-Fault: unknown fault '%.*s' (decline, 5xx, "
                               "timeout_after_charge, latency=MS, hold=MS, none)",
                     (int)ks_utf8_prefix(tok, 60), tok);
            return -1;
        }
    }
    return 0;
}

static enum MHD_Result count_host(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    (void)kind;
    (void)value;
    if (strcasecmp(key, "Host") == 0)
        ++*(int *)cls;
    return MHD_YES;
}

/* The request's Host as RFC 9112 3.2 wants it: exactly one (none only in HTTP/1.0), of 1 to
 * 255 bytes (trailing blanks, which libmicrohttpd 0.9.75 keeps, refused: Midtrans's action
 * URLs are built from the value), an RFC 3986 host -- a reg-name or IPv4 address
 * (unreserved and sub-delims characters, % with two hex digits) or an IPv6 literal in
 * brackets (hex digits, ':' and '.', then a zone after %25 or %) -- then an optional ":"
 * port of at most 5 digits up to 65535 */
static int host_ok(struct MHD_Connection *conn, const char *version)
{
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host");
    size_t n = h ? strlen(h) : 0, i = 0;
    int count = 0;

    MHD_get_connection_values(conn, MHD_HEADER_KIND, count_host, &count);
    if (count == 0)
        return strcmp(version, MHD_HTTP_VERSION_1_0) == 0;
    if (count > 1 || n == 0 || n > 255)
        return 0;
    if (h[0] == '[') {
        char addr[INET6_ADDRSTRLEN];
        struct in6_addr a6;
        for (i = 1; i < n && (isxdigit((unsigned char)h[i]) || h[i] == ':' || h[i] == '.'); i++)
            ;
        if (i == 1 || i - 1 >= sizeof(addr))
            return 0;
        snprintf(addr, sizeof(addr), "%.*s", (int)(i - 1), h + 1);
        if (inet_pton(AF_INET6, addr, &a6) != 1)
            return 0; /* "[.]", "[1]": characters of an address, not one */
        if (h[i] == '%') { /* a zone: one or more unreserved characters after %25 (RFC
                            * 6874), or after a bare %, as Python's http.client sends it */
            size_t z = i + (strncmp(h + i, "%25", 3) == 0 ? 3 : 1);
            for (i = z; i < n && (isalnum((unsigned char)h[i]) || strchr("-._~", h[i])); i++)
                ;
            if (i == z)
                return 0;
        }
        if (i == n || h[i] != ']')
            return 0;
        i++;
    } else {
        for (; i < n && h[i] != ':'; i++) {
            if (h[i] == '%') {
                if (i + 2 >= n || !isxdigit((unsigned char)h[i + 1]) ||
                    !isxdigit((unsigned char)h[i + 2]))
                    return 0;
                i += 2;
            } else if (!isalnum((unsigned char)h[i]) && !strchr("-._~!$&'()*+,;=", h[i])) {
                return 0;
            }
        }
        if (i == 0)
            return 0;
    }
    if (i == n)
        return 1;
    if (h[i] != ':' || n - i - 1 > 5)
        return 0;
    for (size_t j = i + 1; j < n; j++)
        if (!isdigit((unsigned char)h[j]))
            return 0;
    return n - i - 1 < 5 || strncmp(h + i + 1, "65535", 5) <= 0;
}

/* Handles q whole; sets q->due_us when the answer must wait. */
static void process(struct req *q, const char *url, const char *method, const char *version)
{
    struct sb_call c = {method, url, q->body ? q->body : "", q->len, q->conn, 0};
    struct fault f = {0};
    const char *psp;
    char bad[160];
    int latency, hold, charge;

    sb_lock();
    charge = sb_control_handle(&c, &q->resp);
    sb_unlock();
    if (charge)
        return;
    psp = sb_psp_of_path(url);
    if (psp && strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0) {
        sb_respond_json(&q->resp, 405, json_pack("{s:s}", "error", "method not allowed"));
        return;
    }
    if (!psp) {
        sb_respond_json(&q->resp, 404, json_pack("{s:s}", "error", "no such endpoint"));
        return;
    }
    if (!ks_utf8_valid(url, strlen(url))) {
        /* an id in the path goes into the answer: the sandbox keeps only UTF-8 (a %00 is
         * not UTF-8 either: ks_httpd_unescape) */
        sb_respond_json(&q->resp, 400, json_pack("{s:s}", "error",
                                                 "the path is not UTF-8 (or holds %00)"));
        return;
    }
    if (!host_ok(q->conn, version)) {
        /* RFC 9112 3.2: a 400; Midtrans's action URLs are built from Host, and one cut or not
         * UTF-8 left them out of the answer */
        sb_respond_json(&q->resp, 400, json_pack("{s:s}", "error",
                                                 "the request needs one Host header, a "
                                                 "host[:port] of at most 255 bytes"));
        return;
    }
    if (parse_fault(MHD_lookup_connection_value(q->conn, MHD_HEADER_KIND, "X-Sandbox-Fault"), &f,
                    bad, sizeof(bad)) != 0) {
        sb_respond_json(&q->resp, 400, json_pack("{s:s}", "error", bad));
        return;
    }
    __atomic_add_fetch(&n_requests, 1, __ATOMIC_RELAXED);
    charge = sb_is_charge_call(psp, method, url);
    sb_lock();
    if (!f.none && !f.error && !f.timeout && !f.decline) {
        int roll = sb_roll(), e = SB.faults.error_pct, t = SB.faults.timeout_pct;
        if (roll < e)
            f.error = 1;
        else if (roll < e + t)
            f.timeout = 1;
        else if (charge && roll < e + t + SB.faults.decline_pct)
            f.decline = 1;
    }
    latency = f.latency_ms >= 0 ? f.latency_ms : SB.faults.latency_ms;
    if (f.latency_ms < 0 && SB.faults.jitter_ms > 0)
        latency += sb_roll() * SB.faults.jitter_ms / 100;
    hold = f.hold_ms >= 0 ? f.hold_ms : SB.faults.hold_ms;
    if (f.error) {
        /* a 5xx before the PSP's API ran: nothing charged, nothing kept for the key */
        sb_psp_5xx(psp, &q->resp);
        __atomic_add_fetch(&n_errors, 1, __ATOMIC_RELAXED);
    } else {
        c.force_decline = f.decline && charge;
        if (c.force_decline)
            __atomic_add_fetch(&n_declines, 1, __ATOMIC_RELAXED);
        if (!sb_stripe_handle(&c, &q->resp) && !sb_xendit_handle(&c, &q->resp) &&
            !sb_native_handle(&c, &q->resp))
            sb_midtrans_handle(&c, &q->resp);
    }
    sb_unlock();
    if (f.timeout && !f.error) {
        /* the call ran (a charge is recorded), the answer never comes */
        q->drop = 1;
        latency += hold;
        __atomic_add_fetch(&n_timeouts, 1, __ATOMIC_RELAXED);
    }
    if (latency > 0)
        q->due_us = sb_now_us() + (int64_t)latency * 1000;
}

static enum MHD_Result answer(struct req *q)
{
    struct MHD_Response *resp;
    enum MHD_Result rc;
    size_t len = q->resp.body ? strlen(q->resp.body) : 0;

    if (q->drop)
        return MHD_NO; /* libmicrohttpd closes the connection */
    resp = MHD_create_response_from_buffer(len, q->resp.body ? q->resp.body : (char *)"",
                                           q->resp.body ? MHD_RESPMEM_MUST_FREE
                                                        : MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    q->resp.body = NULL; /* the response owns it now */
    MHD_add_response_header(resp, "Content-Type", q->resp.ctype ? q->resp.ctype : "application/json");
    if (q->resp.request_id[0])
        MHD_add_response_header(resp, "Request-Id", q->resp.request_id);
    if (q->resp.replayed)
        MHD_add_response_header(resp, "Idempotent-Replayed", "true");
    rc = MHD_queue_response(q->conn, (unsigned)q->resp.status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls)
{
    struct req *q = *con_cls;
    (void)cls;

    if (!q) {
        q = calloc(1, sizeof(*q));
        if (!q)
            return MHD_NO;
        q->conn = conn;
        *con_cls = q;
        return MHD_YES;
    }
    if (q->state == 2)
        return answer(q);
    if (*upload_size) {
        if (q->len + *upload_size > MAX_BODY) {
            q->too_big = 1;
        } else {
            if (q->len + *upload_size + 1 > q->cap) {
                size_t nc = (q->len + *upload_size + 1) * 2;
                char *nb = realloc(q->body, nc);
                if (!nb)
                    return MHD_NO;
                q->body = nb;
                q->cap = nc;
            }
            memcpy(q->body + q->len, upload_data, *upload_size);
            q->len += *upload_size;
            q->body[q->len] = '\0';
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (q->too_big) {
        sb_respond_json(&q->resp, 413, json_pack("{s:s}", "error", "body larger than 1 MiB"));
        return answer(q);
    }
    process(q, url, method, version);
    if (q->due_us) {
        __atomic_add_fetch(&n_delayed, 1, __ATOMIC_RELAXED);
        q->state = 1;
        MHD_suspend_connection(conn);
        if (timer_push(q) != 0) {
            q->state = 2;
            MHD_resume_connection(conn);
        }
        return MHD_YES;
    }
    return answer(q);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct req *q = *con_cls;
    (void)cls;
    (void)conn;
    (void)toe;

    if (!q)
        return;
    free(q->body);
    free(q->resp.body);
    free(q);
    *con_cls = NULL;
}

int sb_http_start(const char *bind, int port, int threads)
{
    struct sockaddr_in sa;
    /* poll(), not epoll (lib/httpd.h): the executor's bursts of calls on kept-alive
     * connections were left unread under epoll (test 333) */
    unsigned flags = KS_HTTPD_POLLING | MHD_ALLOW_SUSPEND_RESUME;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, bind, &sa.sin_addr) != 1)
        return -1;
    if (pthread_create(&timer_thread, NULL, timer_main, NULL) != 0)
        return -1;
    daemon_h = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, NULL,
                                MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                                MHD_OPTION_THREAD_POOL_SIZE, (unsigned)(threads < 1 ? 1 : threads),
                                MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
                                MHD_OPTION_UNESCAPE_CALLBACK, ks_httpd_unescape, NULL,
                                MHD_OPTION_CONNECTION_LIMIT, (unsigned)16000,
                                MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
                                MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)4096,
                                MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(32 * 1024),
                                MHD_OPTION_END);
    return daemon_h ? 0 : -1;
}

void sb_http_stop(void)
{
    if (daemon_h)
        MHD_quiesce_daemon(daemon_h); /* no new connections while the delayed ones finish */
    pthread_mutex_lock(&tmu);
    timer_stop = 1;
    pthread_cond_signal(&tcv);
    pthread_mutex_unlock(&tmu);
    pthread_join(timer_thread, NULL);
    if (daemon_h) {
        MHD_stop_daemon(daemon_h);
        daemon_h = NULL;
    }
    sb_heap_release(&theap);
}
