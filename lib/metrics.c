/* metrics.c - see metrics.h. Values are C11 atomics so the worker thread updates them
 * while the HTTP thread renders; the registry list itself is guarded by a mutex (metrics
 * are created rarely: at start and when a partition is first assigned). */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "metrics.h"
#include "banned.h"

enum kind { K_COUNTER, K_COUNTER_US, K_GAUGE, K_HIST };

struct ks_metric {
    enum kind kind;
    char *name, *help, *labels;
    _Atomic int64_t value;          /* counter, gauge; histogram: sum in us */
    _Atomic int64_t count;          /* histogram */
    int64_t *bounds;
    _Atomic int64_t *buckets;       /* n + 1, not cumulative */
    size_t n;
    struct ks_metric *next;
};

struct ks_metrics {
    pthread_mutex_t mu;
    struct ks_metric *head, *tail;
};

struct ks_metrics *ks_metrics_new(void)
{
    struct ks_metrics *m = calloc(1, sizeof(*m));
    if (m)
        pthread_mutex_init(&m->mu, NULL);
    return m;
}

static void metric_free(struct ks_metric *x)
{
    free(x->name);
    free(x->help);
    free(x->labels);
    free(x->bounds);
    free((void *)x->buckets);
    free(x);
}

void ks_metrics_free(struct ks_metrics *m)
{
    struct ks_metric *x, *nx;
    if (!m)
        return;
    for (x = m->head; x; x = nx) {
        nx = x->next;
        metric_free(x);
    }
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static struct ks_metric *get_or_add(struct ks_metrics *m, enum kind k, const char *name,
                                    const char *help, const char *labels,
                                    const int64_t *bounds, size_t n)
{
    struct ks_metric *x, *same = NULL;

    if (!m)
        return NULL;
    pthread_mutex_lock(&m->mu);
    for (x = m->head; x; x = x->next) {
        if (strcmp(x->name, name) != 0)
            continue;
        if (strcmp(x->labels, labels ? labels : "") == 0)
            goto out;
        same = x;
    }
    x = calloc(1, sizeof(*x));
    if (!x)
        goto out;
    x->kind = k;
    x->name = strdup(name);
    x->help = strdup(help ? help : "");
    x->labels = strdup(labels ? labels : "");
    if (k == K_HIST) {
        x->n = n;
        x->bounds = malloc((n ? n : 1) * sizeof(*x->bounds));
        x->buckets = calloc(n + 1, sizeof(*x->buckets));
        if (x->bounds)
            memcpy(x->bounds, bounds, n * sizeof(*bounds));
    }
    if (!x->name || !x->help || !x->labels || (k == K_HIST && (!x->bounds || !x->buckets))) {
        metric_free(x);
        x = NULL;
        goto out;
    }
    /* next to the other label sets of its name: the exposition format wants a name's
     * samples contiguous, whenever each label set was first seen */
    if (same) {
        x->next = same->next;
        same->next = x;
        if (m->tail == same)
            m->tail = x;
    } else {
        if (m->tail)
            m->tail->next = x;
        else
            m->head = x;
        m->tail = x;
    }
out:
    pthread_mutex_unlock(&m->mu);
    return x;
}

struct ks_metric *ks_metrics_counter(struct ks_metrics *m, const char *name, const char *help,
                                     const char *labels)
{
    return get_or_add(m, K_COUNTER, name, help, labels, NULL, 0);
}

struct ks_metric *ks_metrics_counter_us(struct ks_metrics *m, const char *name,
                                        const char *help, const char *labels)
{
    return get_or_add(m, K_COUNTER_US, name, help, labels, NULL, 0);
}

struct ks_metric *ks_metrics_gauge(struct ks_metrics *m, const char *name, const char *help,
                                   const char *labels)
{
    return get_or_add(m, K_GAUGE, name, help, labels, NULL, 0);
}

struct ks_metric *ks_metrics_histogram(struct ks_metrics *m, const char *name,
                                       const char *help, const char *labels,
                                       const int64_t *bounds_us, size_t n)
{
    return get_or_add(m, K_HIST, name, help, labels, bounds_us, n);
}

void ks_metric_add(struct ks_metric *c, int64_t v)
{
    if (c)
        atomic_fetch_add_explicit(&c->value, v, memory_order_relaxed);
}

void ks_metric_set(struct ks_metric *g, int64_t v)
{
    if (g)
        atomic_store_explicit(&g->value, v, memory_order_relaxed);
}

int64_t ks_metric_value(const struct ks_metric *c)
{
    return c ? atomic_load_explicit(&c->value, memory_order_relaxed) : 0;
}

void ks_metric_observe(struct ks_metric *h, int64_t us)
{
    size_t i;
    if (!h || h->kind != K_HIST)
        return;
    for (i = 0; i < h->n && us > h->bounds[i]; i++)
        ;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->value, us, memory_order_relaxed);
}

/* growing buffer; on no memory it stops growing and render returns NULL */
/* seconds with microsecond precision, from integer microseconds: no floating point */
static void sec_str(int64_t us, char *out, size_t len)
{
    snprintf(out, len, "%s%" PRId64 ".%06" PRId64, us < 0 ? "-" : "", (us < 0 ? -us : us) / 1000000,
             (us < 0 ? -us : us) % 1000000);
}

void ks_metrics_remove(struct ks_metrics *m, struct ks_metric *x)
{
    struct ks_metric **pp, *prev = NULL;

    if (!m || !x)
        return;
    pthread_mutex_lock(&m->mu);
    for (pp = &m->head; *pp; prev = *pp, pp = &(*pp)->next)
        if (*pp == x) {
            *pp = x->next;
            if (m->tail == x)
                m->tail = prev;
            metric_free(x);
            break;
        }
    pthread_mutex_unlock(&m->mu);
}

char *ks_metrics_render(struct ks_metrics *m, size_t *len)
{
    struct ks_buf b = KS_BUF_INIT;
    struct ks_metric *x;
    const char *last = "";

    pthread_mutex_lock(&m->mu);
    for (x = m->head; x; x = x->next) {
        const char *type = x->kind == K_GAUGE ? "gauge" : x->kind == K_HIST ? "histogram"
                                                                             : "counter";
        const char *sep = *x->labels ? "," : "";
        if (strcmp(last, x->name) != 0) {
            ks_buf_printf(&b, "# HELP %s %s\n# TYPE %s %s\n", x->name, x->help, x->name, type);
            last = x->name;
        }
        if (x->kind == K_COUNTER_US) {
            char v[40];
            sec_str(ks_metric_value(x), v, sizeof(v));
            ks_buf_printf(&b, "%s%s%s%s %s\n", x->name, *x->labels ? "{" : "", x->labels,
                          *x->labels ? "}" : "", v);
            continue;
        }
        if (x->kind != K_HIST) {
            ks_buf_printf(&b, "%s%s%s%s %" PRId64 "\n", x->name, *x->labels ? "{" : "", x->labels,
                      *x->labels ? "}" : "", ks_metric_value(x));
            continue;
        }
        int64_t cum = 0;
        char s[40];
        for (size_t i = 0; i <= x->n; i++) {
            cum += atomic_load_explicit(&x->buckets[i], memory_order_relaxed);
            if (i < x->n)
                sec_str(x->bounds[i], s, sizeof(s));
            ks_buf_printf(&b, "%s_bucket{%s%sle=\"%s\"} %" PRId64 "\n", x->name, x->labels, sep,
                      i < x->n ? s : "+Inf", cum);
        }
        sec_str(atomic_load_explicit(&x->value, memory_order_relaxed), s, sizeof(s));
        ks_buf_printf(&b, "%s_sum%s%s%s %s\n", x->name, *x->labels ? "{" : "", x->labels,
                  *x->labels ? "}" : "", s);
        ks_buf_printf(&b, "%s_count%s%s%s %" PRId64 "\n", x->name, *x->labels ? "{" : "", x->labels,
                  *x->labels ? "}" : "", atomic_load_explicit(&x->count, memory_order_relaxed));
    }
    pthread_mutex_unlock(&m->mu);
    if (!ks_buf_str(&b)) {
        ks_buf_release(&b);
        return NULL;
    }
    if (len)
        *len = b.len;
    return (char *)b.p;
}
