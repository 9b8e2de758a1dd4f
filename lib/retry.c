/* retry.c - the retry schedule. See retry.h. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "retry.h"
#include "banned.h"

int ks_retry_parse(const char *spec, int64_t *delays, char (*names)[16], size_t max)
{
    size_t n = 0;
    const char *p = spec;

    while (p && *p) {
        size_t len = strcspn(p, ",");
        char tok[16];
        int64_t v = 0, mult;
        size_t i, digits = 0;

        while (len && *p == ' ')
            p++, len--;
        if (len == 0 || len >= sizeof(tok) || n >= max)
            return -1;
        memcpy(tok, p, len);
        tok[len] = '\0';
        while (len && tok[len - 1] == ' ')
            tok[--len] = '\0';
        for (i = 0; tok[i] >= '0' && tok[i] <= '9'; i++, digits++) {
            if (v > 100000000)
                return -1;
            v = v * 10 + (tok[i] - '0');
        }
        if (digits == 0 || v == 0)
            return -1;
        if (strcmp(tok + i, "ms") == 0)
            mult = 1;
        else if (strcmp(tok + i, "s") == 0)
            mult = 1000;
        else if (strcmp(tok + i, "m") == 0)
            mult = 60000;
        else if (strcmp(tok + i, "h") == 0)
            mult = 3600000;
        else
            return -1;
        delays[n] = v * mult;
        if (n > 0 && delays[n] <= delays[n - 1])
            return -1; /* shortest first, no repeats: topic choice depends on it */
        if (names)
            snprintf(names[n], 16, "%s", tok);
        n++;
        p += strcspn(p, ",");
        if (*p == ',')
            p++;
    }
    return (int)n;
}

int64_t ks_retry_backoff(const int64_t *delays, size_t n, int attempt, int jitter_pct,
                         uint32_t rnd, size_t *topic_idx)
{
    int64_t d, span, cap;
    size_t i, idx = 0;

    if (n == 0) {
        if (topic_idx)
            *topic_idx = 0;
        return 0;
    }
    cap = delays[n - 1];
    d = delays[0];
    for (i = 1; i < (size_t)(attempt > 0 ? attempt : 1) && d < cap; i++)
        d = d > cap / 2 ? cap : d * 2; /* a doubling past cap could overflow */
    if (d > cap)
        d = cap;
    if (jitter_pct < 0)
        jitter_pct = 0;
    if (jitter_pct > 100)
        jitter_pct = 100;
    /* full-range jitter around d: d * (1 + j * (2u - 1)), u in [0,1). Split so no
     * product overflows: the parser accepts delays of ~1e9 hours, and 1e6 * span did */
    span = d / 100 * jitter_pct + d % 100 * jitter_pct / 100;
    if (span > 0) {
        int64_t k = 2 * (int64_t)(rnd % 1000000) - 1000000; /* -1e6 .. 1e6 - 2 */
        int64_t off = k * (span / 1000000) + k * (span % 1000000) / 1000000;
        d = off > 0 && d > INT64_MAX - off ? INT64_MAX : d + off;
    }
    if (d < 0)
        d = 0;
    for (i = 0; i < n; i++)
        if (delays[i] <= d)
            idx = i;
    if (topic_idx)
        *topic_idx = idx;
    return d;
}

void ks_retry_topic(char *out, size_t len, const char *topic, const char *delay_name)
{
    snprintf(out, len, "%s.retry.%s", topic, delay_name);
}
