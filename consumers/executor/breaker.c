/* breaker.c - see breaker.h. */
#include "consumers/executor/breaker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/banned.h"

#define WINDOW_MAX 1024

struct ex_breaker {
    char psp[32], method[32];
    enum ex_breaker_state state;
    unsigned char ring[WINDOW_MAX]; /* 1 = failed */
    int head, count, failures;
    int64_t opened_ms;
    int probes_out, probes_ok;
    const struct ex_breaker_conf *conf;
    struct ks_metric *m_state, *m_to[3];
};

struct ex_breakers {
    struct ex_breaker_conf conf;
    struct ks_metrics *metrics;
    struct ex_breaker **v;
    size_t n;
};

static const char *const STATE_NAMES[] = {"closed", "open", "half_open"};

struct ex_breakers *ex_breakers_new(const struct ex_breaker_conf *conf, struct ks_metrics *metrics)
{
    struct ex_breakers *bs = calloc(1, sizeof(*bs));

    if (!bs)
        return NULL;
    bs->conf = *conf;
    if (bs->conf.window < 1 || bs->conf.window > WINDOW_MAX)
        bs->conf.window = bs->conf.window < 1 ? 1 : WINDOW_MAX;
    if (bs->conf.probes < 1)
        bs->conf.probes = 1;
    bs->metrics = metrics;
    return bs;
}

void ex_breakers_free(struct ex_breakers *bs)
{
    if (!bs)
        return;
    for (size_t i = 0; i < bs->n; i++)
        free(bs->v[i]);
    free(bs->v);
    free(bs);
}

struct ex_breaker *ex_breaker_get(struct ex_breakers *bs, const char *psp, const char *method)
{
    struct ex_breaker *br, **nv;
    char labels[128];

    if (!bs)
        return NULL;
    for (size_t i = 0; i < bs->n; i++)
        if (strcmp(bs->v[i]->psp, psp) == 0 && strcmp(bs->v[i]->method, method) == 0)
            return bs->v[i];
    if (!(nv = realloc(bs->v, (bs->n + 1) * sizeof(*nv))))
        return NULL;
    bs->v = nv;
    if (!(br = calloc(1, sizeof(*br))))
        return NULL;
    snprintf(br->psp, sizeof(br->psp), "%s", psp);
    snprintf(br->method, sizeof(br->method), "%s", method);
    br->conf = &bs->conf;
    snprintf(labels, sizeof(labels), "psp=\"%s\",method=\"%s\"", br->psp, br->method);
    br->m_state = ks_metrics_gauge(bs->metrics, "kasir_executor_breaker_state",
                                   "circuit of a PSP and method: 0 closed, 1 open, 2 half-open",
                                   labels);
    for (int s = 0; s < 3; s++) {
        char l2[160];
        snprintf(l2, sizeof(l2), "%s,to=\"%s\"", labels, STATE_NAMES[s]);
        br->m_to[s] = ks_metrics_counter(bs->metrics, "kasir_executor_breaker_transitions_total",
                                         "circuit state changes, by the state entered", l2);
    }
    bs->v[bs->n++] = br;
    return br;
}

static void move(struct ex_breaker *br, enum ex_breaker_state to, int64_t now_ms)
{
    if (br->state == to)
        return;
    ks_log(to == EX_BREAKER_OPEN ? KS_LOG_WARN : KS_LOG_INFO, "executor.breaker.state",
           "circuit changed state", "psp", br->psp, "method", br->method, "from",
           STATE_NAMES[br->state], "to", STATE_NAMES[to], NULL);
    br->state = to;
    ks_metric_set(br->m_state, (int64_t)to);
    ks_metric_add(br->m_to[to], 1);
    if (to == EX_BREAKER_OPEN)
        br->opened_ms = now_ms;
    if (to == EX_BREAKER_HALF_OPEN)
        br->probes_out = br->probes_ok = 0;
    if (to == EX_BREAKER_CLOSED)
        br->head = br->count = br->failures = 0;
}

enum ex_breaker_state ex_breaker_state(const struct ex_breaker *br, int64_t now_ms)
{
    if (!br)
        return EX_BREAKER_CLOSED;
    if (br->state == EX_BREAKER_OPEN && now_ms - br->opened_ms >= br->conf->open_ms)
        return EX_BREAKER_HALF_OPEN;
    return br->state;
}

int ex_breaker_allow(struct ex_breaker *br, int64_t now_ms)
{
    if (!br)
        return 1;
    if (br->state == EX_BREAKER_OPEN && now_ms - br->opened_ms >= br->conf->open_ms)
        move(br, EX_BREAKER_HALF_OPEN, now_ms);
    switch (br->state) {
    case EX_BREAKER_CLOSED:
        return 1;
    case EX_BREAKER_OPEN:
        return 0;
    case EX_BREAKER_HALF_OPEN:
        if (br->probes_out >= br->conf->probes)
            return 0;
        br->probes_out++;
        return 1;
    }
    return 1;
}

void ex_breaker_release(struct ex_breaker *br)
{
    if (br && br->state == EX_BREAKER_HALF_OPEN && br->probes_out > 0)
        br->probes_out--;
}

void ex_breaker_record(struct ex_breaker *br, int ok, int64_t now_ms)
{
    if (!br)
        return;
    if (br->state == EX_BREAKER_HALF_OPEN) {
        if (!ok)
            move(br, EX_BREAKER_OPEN, now_ms);
        else if (++br->probes_ok >= br->conf->probes)
            move(br, EX_BREAKER_CLOSED, now_ms);
        return;
    }
    if (br->state == EX_BREAKER_OPEN)
        return; /* a call sent before the circuit opened */
    if (br->count == br->conf->window)
        br->failures -= br->ring[br->head];
    else
        br->count++;
    br->ring[br->head] = (unsigned char)!ok;
    br->failures += !ok;
    br->head = (br->head + 1) % br->conf->window;
    if (br->count >= br->conf->min_calls && br->failures * 100 >= br->conf->failure_pct * br->count)
        move(br, EX_BREAKER_OPEN, now_ms);
}
