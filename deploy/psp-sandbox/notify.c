/* notify.c - asynchronous, signed webhooks in each PSP's format.
 *
 * Events wait in a min-heap ordered by due time; sender threads take the earliest due one
 * and POST it with libcurl (one reused handle per thread, so keep-alive holds). A failed
 * delivery (transport error or non-2xx) is tried again with doubling back-off up to
 * webhook.attempts, as PSPs retry. Signatures that carry a time (Stripe) are made at send
 * time, so a retried or duplicated event is always fresh. Every delivery is logged for
 * GET /_sandbox/webhooks. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <curl/curl.h>

#include "deploy/psp-sandbox/sandbox.h"
#include "lib/crypto.h"
#include "lib/log.h"
#include "lib/webhook.h"
#include "lib/banned.h"

struct hook {
    int64_t due_us;
    char psp[12], event[48], object_id[80], event_id[48], apply_kind[40];
    char *url, *body;
    size_t len;
    int attempts;
    size_t log_index; /* its row in the delivery log */
};

static pthread_mutex_t hmu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hcv = PTHREAD_COND_INITIALIZER;
static struct sb_heap heap;
static json_t *hlog;
static pthread_t threads[8];
static int nthreads;
static volatile int stop;

static void heap_push(struct hook *h)
{
    if (sb_heap_push(&heap, h->due_us, h) != 0) {
        free(h->url);
        free(h->body);
        free(h);
    }
}

static void enqueue(const char *psp, const char *event, const char *object_id, const char *url,
                    char *body, int64_t delay_ms, const char *evid, const char *apply_kind)
{
    struct hook *h = calloc(1, sizeof(*h));

    if (!h) {
        free(body);
        return;
    }
    snprintf(h->psp, sizeof(h->psp), "%s", psp);
    snprintf(h->event, sizeof(h->event), "%s", event);
    snprintf(h->object_id, sizeof(h->object_id), "%s", object_id ? object_id : "");
    snprintf(h->event_id, sizeof(h->event_id), "%s", evid);
    snprintf(h->apply_kind, sizeof(h->apply_kind), "%s", apply_kind ? apply_kind : "");
    h->url = strdup(url);
    h->body = body;
    h->len = strlen(body);
    h->due_us = sb_now_us() + delay_ms * 1000;
    pthread_mutex_lock(&hmu);
    h->log_index = *url ? json_array_size(hlog) : (size_t)-1;
    if (*url)
        json_array_append_new(hlog, json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:b}", "event_id",
                                          evid, "psp", psp, "event", event, "object_id",
                                          h->object_id, "url", url, "attempts", 0, "status", 0,
                                          "delivered", 0));
    heap_push(h);
    pthread_cond_signal(&hcv);
    pthread_mutex_unlock(&hmu);
}

void sb_hook_send(const char *psp, const char *event, const char *object_id, const char *url,
                  char *body, int64_t delay_ms)
{
    char evid[48];

    if (!url || !*url) {
        free(body);
        return;
    }
    sb_new_id("evt_", evid, sizeof(evid));
    enqueue(psp, event, object_id, url, body, delay_ms, evid, NULL);
}

void sb_hook_emit(const char *psp, const char *event, const char *object_id, const char *url,
                  json_t *body, const struct sb_hook_opts *o, int order)
{
    int copies = 1 + (o && o->duplicates > 0 ? (o->duplicates > 10 ? 10 : o->duplicates) : 0);
    int64_t base = o ? o->delay_ms : 0;
    char *text, evid[48];
    int i;

    if (!url)
        url = strcmp(psp, "stripe") == 0     ? SB.hook_stripe
              : strcmp(psp, "xendit") == 0   ? SB.hook_xendit
              : strcmp(psp, "midtrans") == 0 ? SB.hook_midtrans
              : strcmp(psp, "sandbox") == 0  ? SB.hook_native
                                             : SB.hook_iris;
    if (!url)
        url = "";
    if (!*url && !(o && o->apply_kind))
        return;
    /* in order: the earlier event of a pair goes first, 20 ms ahead; out of order: it
     * arrives 200 ms after the later one */
    if (o && o->out_of_order)
        base += order == 0 ? 200 : 0;
    else
        base += order * 20;
    /* copies of one event share its id (and bytes), so a receiver can dedup them */
    sb_new_id("evt_", evid, sizeof(evid));
    for (i = 0; i < copies; i++) {
        text = json_dumps(body, JSON_COMPACT);
        if (!text)
            return;
        enqueue(psp, event, object_id, url, text, base + i * 30, evid,
                i == 0 && o ? o->apply_kind : NULL);
        if (!*url) /* nowhere to send: only the state change */
            break;
    }
}

static size_t discard(char *p, size_t size, size_t n, void *u)
{
    (void)p;
    (void)u;
    return size * n;
}

/* POSTs h; returns the HTTP status, or 0 on a transport error. */
static long deliver(CURL *curl, const struct hook *h)
{
    struct curl_slist *hd = NULL;
    char line[KS_WEBHOOK_SIG_LEN + 300];
    long code = 0;

    hd = curl_slist_append(hd, "Content-Type: application/json");
    if (strcmp(h->psp, "stripe") == 0) {
        char sig[KS_WEBHOOK_SIG_LEN];
        ks_webhook_sign_stripe(SB.stripe_whsec, (int64_t)time(NULL), h->body, h->len, sig);
        snprintf(line, sizeof(line), "Stripe-Signature: %s", sig);
        hd = curl_slist_append(hd, line);
        hd = curl_slist_append(hd, "User-Agent: Stripe/1.0 (+https://stripe.com/docs/webhooks)");
    } else if (strcmp(h->psp, "xendit") == 0) {
        snprintf(line, sizeof(line), "x-callback-token: %s", SB.xendit_token);
        hd = curl_slist_append(hd, line);
        snprintf(line, sizeof(line), "webhook-id: %s", h->event_id);
        hd = curl_slist_append(hd, line);
    } else if (strcmp(h->psp, "sandbox") == 0) {
        char sig[KS_WEBHOOK_SIG_LEN];
        int64_t now = (int64_t)time(NULL);
        snprintf(line, sizeof(line), "webhook-id: %s", h->event_id);
        hd = curl_slist_append(hd, line);
        snprintf(line, sizeof(line), "webhook-timestamp: %lld", (long long)now);
        hd = curl_slist_append(hd, line);
        if (ks_webhook_sign_standard(SB.native_whsec, h->event_id, now, h->body, h->len, sig) == 0) {
            snprintf(line, sizeof(line), "webhook-signature: %s", sig);
            hd = curl_slist_append(hd, line);
        }
    } else if (strcmp(h->psp, "iris") == 0) {
        /* Iris-Signature: SHA-512 hex of the body followed by the merchant key */
        size_t kl = strlen(SB.iris_merchant_key);
        char *buf = malloc(h->len + kl + 1), hex[2 * KS_SHA512_LEN + 1];
        uint8_t d[KS_SHA512_LEN];
        if (buf) {
            memcpy(buf, h->body, h->len);
            memcpy(buf + h->len, SB.iris_merchant_key, kl);
            ks_sha512(buf, h->len + kl, d);
            free(buf);
            ks_hex_encode(d, sizeof(d), hex);
            snprintf(line, sizeof(line), "Iris-Signature: %s", hex);
            hd = curl_slist_append(hd, line);
        }
    }
    curl_easy_setopt(curl, CURLOPT_URL, h->url);
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, h->body);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)h->len);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    if (curl_easy_perform(curl) == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(hd);
    return code;
}

static void *sender(void *arg)
{
    CURL *curl = curl_easy_init();
    (void)arg;

    pthread_mutex_lock(&hmu);
    while (!stop) {
        struct hook *h;
        int64_t now = sb_now_us();
        long code;
        json_t *row;

        if (sb_heap_next(&heap) > now) {
            if (heap.n == 0) {
                pthread_cond_wait(&hcv, &hmu);
            } else {
                struct timespec ts;
                int64_t due = sb_heap_next(&heap);
                ts.tv_sec = (time_t)(due / 1000000);
                ts.tv_nsec = (long)(due % 1000000) * 1000;
                pthread_cond_timedwait(&hcv, &hmu, &ts);
            }
            continue;
        }
        h = sb_heap_pop(&heap);
        pthread_mutex_unlock(&hmu);
        if (h->apply_kind[0]) { /* the result the event tells becomes what GET shows */
            char fk[48];
            json_t *fin;
            snprintf(fk, sizeof(fk), "%s.final", h->apply_kind);
            sb_lock();
            fin = sb_obj_get(fk, h->object_id);
            if (fin)
                sb_obj_put(h->apply_kind, h->object_id, json_incref(fin));
            sb_unlock();
            h->apply_kind[0] = '\0';
        }
        if (!*h->url) {
            free(h->url);
            free(h->body);
            free(h);
            pthread_mutex_lock(&hmu);
            continue;
        }
        code = curl ? deliver(curl, h) : 0;
        pthread_mutex_lock(&hmu);
        h->attempts++;
        row = json_array_get(hlog, h->log_index);
        if (row) {
            json_object_set_new(row, "attempts", json_integer(h->attempts));
            json_object_set_new(row, "status", json_integer(code));
            json_object_set_new(row, "delivered", json_boolean(code >= 200 && code < 300));
            json_object_set_new(row, "last_attempt_us", json_integer(sb_now_us()));
        }
        if ((code < 200 || code >= 300) && h->attempts < SB.hook_attempts && !stop) {
            h->due_us = sb_now_us() + ((int64_t)250000 << (h->attempts - 1));
            heap_push(h);
            continue;
        }
        if (code < 200 || code >= 300)
            ks_log(KS_LOG_WARN, "sandbox.webhook.failed", "webhook not delivered", "psp", h->psp,
                   "event", h->event, "url", h->url, NULL);
        free(h->url);
        free(h->body);
        free(h);
    }
    pthread_mutex_unlock(&hmu);
    curl_easy_cleanup(curl);
    return NULL;
}

int sb_hooks_start(int n)
{
    int i;

    hlog = json_array();
    if (n < 1)
        n = 1;
    if (n > 8)
        n = 8;
    for (i = 0; i < n; i++) {
        if (pthread_create(&threads[i], NULL, sender, NULL) != 0)
            return -1;
        nthreads++;
    }
    return 0;
}

void sb_hooks_stop(void)
{
    int i;

    pthread_mutex_lock(&hmu);
    stop = 1;
    pthread_cond_broadcast(&hcv);
    pthread_mutex_unlock(&hmu);
    for (i = 0; i < nthreads; i++)
        pthread_join(threads[i], NULL);
    for (struct hook *h; (h = sb_heap_pop(&heap)) != NULL;) {
        free(h->url);
        free(h->body);
        free(h);
    }
    sb_heap_release(&heap);
    json_decref(hlog);
}

json_t *sb_hooks_log(void)
{
    json_t *c;

    pthread_mutex_lock(&hmu);
    c = json_deep_copy(hlog);
    pthread_mutex_unlock(&hmu);
    return c;
}

void sb_hooks_reset(void)
{
    pthread_mutex_lock(&hmu);
    json_array_clear(hlog);
    /* queued hooks keep indexes into the old log: point them past its end */
    for (size_t k = 0; k < heap.n; k++)
        ((struct hook *)heap.v[k].item)->log_index = (size_t)-1;
    pthread_mutex_unlock(&hmu);
}
