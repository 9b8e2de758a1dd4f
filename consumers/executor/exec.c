/* exec.c - see exec.h. */
#include "consumers/executor/exec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/banned.h"

enum { MODE_SEND, MODE_STATUS };

struct ex_engine {
    CURLM *multi;
    struct ex_engine_conf conf;
    struct ex_job **queue; /* jobs added and not started yet: queue[next .. n) */
    size_t next, n, qcap;
    int running;           /* calls on the wire */
    CURL **pool; /* idle easy handles: reusing them keeps their connections warm */
    size_t npool, cap;
};

struct ex_engine *ex_engine_new(const struct ex_engine_conf *conf)
{
    struct ex_engine *e = calloc(1, sizeof(*e));

    if (!e)
        return NULL;
    e->conf = *conf;
    if (!(e->multi = curl_multi_init())) {
        free(e);
        return NULL;
    }
    curl_multi_setopt(e->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, conf->max_in_flight);
    curl_multi_setopt(e->multi, CURLMOPT_MAXCONNECTS, conf->max_in_flight);
    return e;
}

void ex_engine_free(struct ex_engine *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->npool; i++)
        curl_easy_cleanup(e->pool[i]);
    free(e->pool);
    free(e->queue);
    curl_multi_cleanup(e->multi);
    free(e);
}

void ex_job_init(struct ex_job *job)
{
    memset(job, 0, sizeof(*job));
    ex_req_init(&job->req);
    ks_buf_init(&job->resp);
    ex_result_clear(&job->res);
    job->health = -1;
}

/* curl's copies of the header lines hold the PSP's secret: wiped before they are freed */
static void free_headers(struct ex_job *job)
{
    for (struct curl_slist *l = job->hdrs; l; l = l->next)
        if (l->data)
            memset(l->data, 0, strlen(l->data));
    curl_slist_free_all(job->hdrs);
    job->hdrs = NULL;
}

void ex_job_release(struct ex_job *job)
{
    ex_req_release(&job->req);
    ks_buf_release(&job->resp);
    free_headers(job);
}

static size_t on_data(char *p, size_t size, size_t n, void *ctx)
{
    struct ex_job *job = ctx;
    size_t len = size * n;

    if (job->resp.len + len > (1u << 20))
        return 0; /* no PSP answer is a megabyte: stop reading (the call is unknown) */
    ks_buf_add(&job->resp, p, len);
    return job->resp.oom ? 0 : len;
}

/* Called by curl right before each request goes out on a connection. libcurl resends a
 * request on its own when a reused connection turns out dead before any answer byte came
 * back - which is also what a PSP that charged and then dropped the connection looks
 * like. Counting the sends tells an answer to our one request (trustworthy, even "not
 * processed") from one to curl's resend (a 503 to the resend says nothing about the first). */
static int on_prereq(void *ctx, char *ip, char *local_ip, int port, int local_port)
{
    struct ex_job *job = ctx;
    (void)ip;
    (void)local_ip;
    (void)port;
    (void)local_port;
    job->requests++;
    return CURL_PREREQFUNC_OK;
}

static CURL *take_easy(struct ex_engine *e)
{
    if (e->npool)
        return e->pool[--e->npool];
    return curl_easy_init();
}

static void give_easy(struct ex_engine *e, CURL *h)
{
    if (e->npool == e->cap) {
        size_t nc = e->cap ? e->cap * 2 : 64;
        CURL **np = realloc(e->pool, nc * sizeof(*np));
        if (!np) {
            curl_easy_cleanup(h);
            return;
        }
        e->pool = np;
        e->cap = nc;
    }
    curl_easy_reset(h);
    e->pool[e->npool++] = h;
}

/* *dst = *src: next_action points into the result's own buffer, so it is moved along */
static void result_copy(struct ex_result *dst, const struct ex_result *src)
{
    *dst = *src;
    for (size_t i = 0; i < src->n_next_action; i++) {
        dst->next_action[i].name = dst->next_action_buf + (src->next_action[i].name - src->next_action_buf);
        dst->next_action[i].value = dst->next_action_buf + (src->next_action[i].value - src->next_action_buf);
    }
}

/* ends job with verdict v (keeping what res already holds) */
static void finish(struct ex_job *job, enum ex_verdict v)
{
    job->res.verdict = v;
    job->mode = -1;
}

/* Builds the current step of job and hands it to curl; 1 when a call was started, 0 when
 * the job ended without one. */
static int issue(struct ex_engine *e, struct ex_job *job)
{
    struct ks_err err = {0};
    const struct ex_result *prev = job->step > 0 || job->mode == MODE_STATUS ? &job->prev : NULL;
    enum ks_code rc;
    CURL *h;

    ex_req_reset(&job->req);
    ks_buf_reset(&job->resp);
    free_headers(job);
    if (job->mode == MODE_STATUS && (!job->ad->build_status || !job->ad->parse_status))
        rc = ks_err_set(&err, KS_EINVAL, 0, NULL, "no status lookup"); /* stays unknown */
    else if (job->mode == MODE_STATUS)
        rc = job->ad->build_status(job->conf, &job->cmd, job->step, prev, &job->req, &err);
    else
        rc = job->ad->build(job->conf, &job->cmd, job->step, prev, &job->req, &err);
    if (rc != KS_OK) {
        if (job->mode == MODE_STATUS || rc != KS_EINVAL || job->step > 0) {
            finish(job, EX_UNKNOWN);
        } else {
            /* bad command data: refused before anything left, the order fails */
            job->invalid = 1;
            snprintf(job->res.failure_code, sizeof(job->res.failure_code), "invalid_request");
            snprintf(job->res.failure_message, sizeof(job->res.failure_message), "%.60s%s%.180s",
                     err.field, err.field[0] ? ": " : "", err.msg);
            finish(job, EX_FAILED);
        }
        return 0;
    }
    if (!(h = take_easy(e))) {
        finish(job, job->mode == MODE_SEND && job->step == 0 ? EX_RETRY : EX_UNKNOWN);
        return 0;
    }
    /* header lines "Name: value\n" from the adapter, then ours */
    {
        char *s = (char *)job->req.headers.p, *end = s + job->req.headers.len;
        while (s && s < end) {
            char *nl = memchr(s, '\n', (size_t)(end - s));
            if (!nl)
                break;
            *nl = '\0';
            job->hdrs = curl_slist_append(job->hdrs, s);
            *nl = '\n';
            s = nl + 1;
        }
    }
    if (job->req.content_type) {
        char ct[128];
        snprintf(ct, sizeof(ct), "Content-Type: %s", job->req.content_type);
        job->hdrs = curl_slist_append(job->hdrs, ct);
    }
    job->hdrs = curl_slist_append(job->hdrs, "Accept: application/json");
    job->hdrs = curl_slist_append(job->hdrs, "Expect:");
    curl_easy_setopt(h, CURLOPT_URL, ks_buf_str(&job->req.url));
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, job->hdrs);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, e->conf.timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, e->conf.connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, job);
    curl_easy_setopt(h, CURLOPT_PRIVATE, job);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, job->errbuf);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_PREREQFUNCTION, on_prereq);
    curl_easy_setopt(h, CURLOPT_PREREQDATA, job);
    if (strcmp(job->req.method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)job->req.body.len);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, job->req.body.len ? (char *)job->req.body.p : "");
    } else {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    }
    job->errbuf[0] = '\0';
    job->requests = 0;
    job->easy = h;
    if (job->mode == MODE_SEND)
        job->sent = 1;
    if (curl_multi_add_handle(e->multi, h) != CURLM_OK) {
        job->easy = NULL;
        give_easy(e, h);
        finish(job, EX_UNKNOWN);
        return 0;
    }
    return 1;
}

/* job's call ended with code (and an HTTP answer when CURLE_OK); 1 when a next call was
 * started */
static int complete(struct ex_engine *e, struct ex_job *job, CURLcode code)
{
    long http = 0;
    struct ex_result r;

    curl_easy_getinfo(job->easy, CURLINFO_RESPONSE_CODE, &http);
    curl_multi_remove_handle(e->multi, job->easy);
    give_easy(e, job->easy);
    job->easy = NULL;
    job->http_status = code == CURLE_OK ? http : 0;
    if (code != CURLE_OK) {
        int nothing_sent = job->requests == 0; /* no connection ever took the request */
        snprintf(job->transport, sizeof(job->transport), "%.120s",
                 job->errbuf[0] ? job->errbuf : curl_easy_strerror(code));
        job->health = 0;
        if (job->mode == MODE_STATUS)
            finish(job, EX_UNKNOWN);
        else
            finish(job, nothing_sent && job->step == 0 ? EX_RETRY : EX_UNKNOWN);
        return 0;
    }
    job->transport[0] = '\0';
    job->health = http >= 500 || http == 429 ? 0 : 1;
    ex_result_clear(&r);
    if (job->mode == MODE_STATUS)
        job->ad->parse_status(job->conf, &job->cmd, job->step, http, (const char *)job->resp.p,
                              job->resp.len, &r);
    else
        job->ad->parse(job->conf, &job->cmd, job->step, http, (const char *)job->resp.p,
                       job->resp.len, &r);
    if (!r.psp_reference[0] && job->prev.psp_reference[0])
        memcpy(r.psp_reference, job->prev.psp_reference, sizeof(r.psp_reference));
    if (r.verdict == EX_NEXT) {
        result_copy(&job->prev, &r);
        job->step++;
        return issue(e, job);
    }
    if (r.verdict == EX_ABSENT && job->mode == MODE_STATUS) {
        /* the PSP has no such operation: now, and only now, it may be sent */
        job->mode = MODE_SEND;
        job->step = 0;
        ex_result_clear(&job->prev);
        return issue(e, job);
    }
    if (r.verdict == EX_ABSENT) /* an adapter bug: a send never answers "absent" */
        r.verdict = EX_UNKNOWN;
    if (r.verdict == EX_RETRY && (job->requests != 1 || job->mode == MODE_STATUS || job->step > 0))
        /* "not processed" is believed only of the one request we sent: not of curl's resend,
         * not of a status lookup (a replay refused before it ran says nothing of the
         * original), not of a later step (the first one did act) */
        r.verdict = EX_UNKNOWN;
    result_copy(&job->res, &r);
    job->mode = -1;
    return 0;
}

/* Starts queued jobs while there is room on the wire. */
static void start_queued(struct ex_engine *e)
{
    while (e->next < e->n && e->running < e->conf.max_in_flight) {
        struct ex_job *job = e->queue[e->next++];
        job->mode = job->status_first ? MODE_STATUS : MODE_SEND;
        job->step = 0;
        ex_result_clear(&job->prev);
        snprintf(job->prev.psp_reference, sizeof(job->prev.psp_reference), "%s", job->known_ref);
        e->running += issue(e, job);
    }
}

int ex_engine_add(struct ex_engine *e, struct ex_job *const *jobs, size_t n)
{
    int still = 0;

    if (e->n + n > e->qcap) {
        size_t nc = e->qcap ? e->qcap : 256;
        struct ex_job **nq;
        while (nc < e->n + n)
            nc *= 2;
        if (!(nq = realloc(e->queue, nc * sizeof(*nq))))
            return -1;
        e->queue = nq;
        e->qcap = nc;
    }
    memcpy(e->queue + e->n, jobs, n * sizeof(*jobs));
    e->n += n;
    start_queued(e);
    /* put the new requests on the wire now: the PSP works while the caller does */
    curl_multi_perform(e->multi, &still);
    return 0;
}

void ex_engine_wait(struct ex_engine *e)
{
    for (;;) {
        start_queued(e);
        if (e->running == 0 && e->next >= e->n)
            break;
        int still = 0;
        curl_multi_perform(e->multi, &still);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(e->multi, &left)) != NULL) {
            struct ex_job *job = NULL;
            if (msg->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&job);
            e->running--;
            e->running += complete(e, job, msg->data.result);
        }
        if (e->running > 0)
            curl_multi_poll(e->multi, NULL, 0, 100, NULL);
    }
    e->next = e->n = 0;
}
