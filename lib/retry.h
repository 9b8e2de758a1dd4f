/* retry.h - the retry schedule of the worker runtime: which retry topic a failed message
 * goes to and when it is due. Pure functions. */
#ifndef KS_RETRY_H
#define KS_RETRY_H

#include <stddef.h>
#include <stdint.h>

/* Retry schedule: delays[0..n-1] in ms, shortest first. The backoff for attempt (the
 * attempt that just failed, 1-based) is delays[0] * 2^(attempt-1), capped at the longest
 * delay, then moved by rnd (uniform 0..1e6-1) within +/- jitter_pct. *topic_idx gets the
 * retry topic: the longest delay <= the backoff (the first when none). Returns ms. */
int64_t ks_retry_backoff(const int64_t *delays, size_t n, int attempt, int jitter_pct,
                         uint32_t rnd, size_t *topic_idx);
/* Parses "5s,1m,10m" into delays (at most max); returns the count, -1 on a bad entry. The
 * names ("5s") are copied into names[i] (16 bytes each) for topic names. */
int ks_retry_parse(const char *spec, int64_t *delays, char (*names)[16], size_t max);
/* The retry topic of topic for one delay name: "<topic>.retry.<delay>", into out (cut to
 * len - 1 bytes). The one place that names it: subscription, routing and recognition. */
void ks_retry_topic(char *out, size_t len, const char *topic, const char *delay_name);

#endif
