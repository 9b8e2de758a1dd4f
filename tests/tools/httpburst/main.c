/* kasir-httpburst - waves of concurrent requests over keep-alive connections, the way
 * kasir-executor sends a batch's calls (libcurl multi, one request in flight per
 * connection, the connections kept from wave to wave as far as the server keeps them).
 * Each wave sends CONNECTIONS requests at once and waits for all of them; a request
 * unanswered after TIMEOUT_MS is a stall.
 * Written for the server side of a burst (tests 233 and 333): a server that leaves a request
 * unread in its socket shows here as a timeout, not as a slow average.
 *
 *   kasir-httpburst URL CONNECTIONS WAVES TIMEOUT_MS [-H 'Name: value']... [-d BODY]
 *
 * "{n}" in a header or the body is replaced by a number unique to the request (process id
 * and sequence), for idempotency keys and references. Without -d it sends a GET. Prints one
 * line: requests, answers by class, transport failures, timeouts, waves with a timeout,
 * connections opened (a server that keeps them opens about CONNECTIONS in all), the slowest
 * answer (ms). Exits 1 when any request timed out or failed at the transport, 2 on a usage
 * or set-up error (a request that could not be made ends the run after its wave). */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/banned.h"

#define MAX_HEADERS 16

struct req {
    CURL *h;
    struct curl_slist *headers;
    char *body;
};

struct run {
    const char *url, *body, *hdr[MAX_HEADERS];
    int nhdr;
    long conns, waves, timeout_ms;
};

static size_t discard(char *p, size_t size, size_t n, void *u)
{
    (void)p;
    (void)u;
    return size * n;
}

/* a whole decimal number in [lo, hi], or -1 */
static long parse_num(const char *s, long lo, long hi)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    return v;
}

/* s with every "{n}" replaced by tag; malloc'd, NULL on allocation failure */
static char *expand(const char *s, const char *tag)
{
    size_t tl = strlen(tag), n = 0;
    const char *p;
    char *out, *o;

    for (p = s; (p = strstr(p, "{n}")); p += 3)
        n++;
    if (!(out = malloc(strlen(s) + n * tl + 1)))
        return NULL;
    for (o = out; *s;) {
        if (strncmp(s, "{n}", 3) == 0) {
            memcpy(o, tag, tl);
            o += tl;
            s += 3;
        } else {
            *o++ = *s++;
        }
    }
    *o = '\0';
    return out;
}

static void req_free(struct req *r)
{
    if (r->h)
        curl_easy_cleanup(r->h);
    curl_slist_free_all(r->headers);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

static int req_make(struct req *r, const struct run *run, long seq)
{
    char tag[48];
    int i;

    snprintf(tag, sizeof(tag), "%ld-%ld", (long)getpid(), seq);
    memset(r, 0, sizeof(*r));
    if (!(r->h = curl_easy_init()))
        return -1;
    for (i = 0; i < run->nhdr; i++) {
        char *h = expand(run->hdr[i], tag);
        struct curl_slist *l = h ? curl_slist_append(r->headers, h) : NULL;

        free(h);
        if (!l)
            return -1;
        r->headers = l;
    }
    curl_easy_setopt(r->h, CURLOPT_URL, run->url);
    curl_easy_setopt(r->h, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(r->h, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(r->h, CURLOPT_TIMEOUT_MS, run->timeout_ms);
    curl_easy_setopt(r->h, CURLOPT_PRIVATE, (char *)r);
    if (run->body) {
        if (!(r->body = expand(run->body, tag)))
            return -1;
        curl_easy_setopt(r->h, CURLOPT_POSTFIELDS, r->body);
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct run run = {0};
    long seq = 0, timeouts = 0, failed = 0, by_class[6] = {0}, stalled_waves = 0, connects = 0;
    long w, i;
    int setup_failed = 0;
    double slowest = 0;
    struct req *reqs = NULL;
    CURLM *multi = NULL;
    int rc = 2, a;

    if (argc < 5)
        goto usage;
    run.url = argv[1];
    run.conns = parse_num(argv[2], 1, 10000);
    run.waves = parse_num(argv[3], 1, 100000000);
    run.timeout_ms = parse_num(argv[4], 1, 3600000);
    if (run.conns < 0 || run.waves < 0 || run.timeout_ms < 0)
        goto usage;
    for (a = 5; a < argc; a += 2) {
        if (a + 1 >= argc)
            goto usage;
        if (strcmp(argv[a], "-H") == 0 && run.nhdr < MAX_HEADERS)
            run.hdr[run.nhdr++] = argv[a + 1];
        else if (strcmp(argv[a], "-d") == 0)
            run.body = argv[a + 1];
        else
            goto usage;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 || !(multi = curl_multi_init())) {
        fprintf(stderr, "httpburst: libcurl could not be set up\n");
        goto out;
    }
    if (!(reqs = calloc((size_t)run.conns, sizeof(*reqs)))) {
        fprintf(stderr, "httpburst: out of memory\n");
        goto out;
    }
    curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, run.conns);
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, run.conns);

    for (w = 0; w < run.waves; w++) {
        long sent = 0, done = 0, wave_timeouts = 0;

        for (i = 0; i < run.conns; i++, sent++) {
            if (req_make(&reqs[i], &run, ++seq) != 0 ||
                curl_multi_add_handle(multi, reqs[i].h) != CURLM_OK) {
                fprintf(stderr, "httpburst: request %ld could not be set up\n", seq);
                req_free(&reqs[i]);
                setup_failed = 1;
                break;
            }
        }
        while (done < sent) {
            CURLMsg *m;
            int running, left;

            if (curl_multi_perform(multi, &running) != CURLM_OK) {
                fprintf(stderr, "httpburst: curl_multi_perform failed\n");
                goto out;
            }
            while ((m = curl_multi_info_read(multi, &left))) {
                struct req *r;
                long code = 0, nc = 0;
                double t = 0;

                if (m->msg != CURLMSG_DONE)
                    continue;
                curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
                curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &code);
                curl_easy_getinfo(m->easy_handle, CURLINFO_TOTAL_TIME, &t);
                curl_easy_getinfo(m->easy_handle, CURLINFO_NUM_CONNECTS, &nc);
                connects += nc;
                if (m->data.result == CURLE_OPERATION_TIMEDOUT)
                    wave_timeouts++;
                else if (m->data.result != CURLE_OK)
                    failed++;
                else
                    by_class[code >= 100 && code < 600 ? code / 100 : 0]++;
                if (t * 1e3 > slowest)
                    slowest = t * 1e3;
                curl_multi_remove_handle(multi, m->easy_handle);
                req_free(r);
                done++;
            }
            if (done < sent)
                curl_multi_poll(multi, NULL, 0, 100, NULL);
        }
        if (wave_timeouts) {
            stalled_waves++;
            timeouts += wave_timeouts;
            fprintf(stderr, "httpburst: wave %ld: %ld of %ld requests unanswered after %ld ms\n",
                    w, wave_timeouts, run.conns, run.timeout_ms);
        }
        if (sent < run.conns)
            break;
    }
    printf("requests=%ld 2xx=%ld 3xx=%ld 4xx=%ld 5xx=%ld failed=%ld timeouts=%ld "
           "stalled_waves=%ld connects=%ld slowest_ms=%.1f\n",
           seq, by_class[2], by_class[3], by_class[4], by_class[5], failed, timeouts,
           stalled_waves, connects, slowest);
    rc = setup_failed ? 2 : timeouts || failed ? 1 : 0;
    goto out;

usage:
    fprintf(stderr, "usage: kasir-httpburst URL CONNECTIONS(1-10000) WAVES TIMEOUT_MS "
                    "[-H 'Name: value']... [-d BODY]\n");
out:
    /* requests still in flight (a failed curl_multi_perform) leave the multi first */
    for (i = 0; reqs && i < run.conns; i++) {
        if (reqs[i].h)
            curl_multi_remove_handle(multi, reqs[i].h);
        req_free(&reqs[i]);
    }
    free(reqs);
    if (multi)
        curl_multi_cleanup(multi);
    curl_global_cleanup();
    return rc;
}
