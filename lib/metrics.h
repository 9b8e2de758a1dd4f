/* metrics.h - a small Prometheus registry: counters, gauges and histograms.
 *
 * Metrics are created once (a name + an optional label set, e.g. topic="a",partition="0")
 * and updated lock-free from any thread; ks_metrics_render writes the text exposition
 * format (version 0.0.4). Creating the same name and labels twice returns the same
 * metric. Histograms take values in microseconds and expose seconds. */
#ifndef KS_METRICS_H
#define KS_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct ks_metrics; /* opaque registry */
struct ks_metric;  /* opaque; lives as long as the registry */

struct ks_metrics *ks_metrics_new(void);
void ks_metrics_free(struct ks_metrics *m); /* NULL ok */

/* labels: NULL or 'k="v",k2="v2"' (the caller escapes values). NULL on no memory;
 * updating a NULL metric does nothing, so callers need not check. */
struct ks_metric *ks_metrics_counter(struct ks_metrics *m, const char *name, const char *help,
                                     const char *labels);
/* A counter of microseconds, exposed in seconds (a "_seconds_total" of time spent). */
struct ks_metric *ks_metrics_counter_us(struct ks_metrics *m, const char *name,
                                        const char *help, const char *labels);
struct ks_metric *ks_metrics_gauge(struct ks_metrics *m, const char *name, const char *help,
                                   const char *labels);
/* bounds_us: ascending upper bounds in microseconds, n of them (+Inf is implied). */
struct ks_metric *ks_metrics_histogram(struct ks_metrics *m, const char *name,
                                       const char *help, const char *labels,
                                       const int64_t *bounds_us, size_t n);

/* Removes x from the registry and frees it (a gauge of a partition no longer assigned).
 * Only the thread that updates x may remove it; NULL x ok. */
void ks_metrics_remove(struct ks_metrics *m, struct ks_metric *x);

void ks_metric_add(struct ks_metric *c, int64_t v);   /* counter or gauge */
void ks_metric_set(struct ks_metric *g, int64_t v);   /* gauge */
void ks_metric_observe(struct ks_metric *h, int64_t us); /* histogram */
int64_t ks_metric_value(const struct ks_metric *c);   /* counter or gauge */

/* The whole registry as Prometheus text; malloc'd, caller frees; NULL on no memory. */
char *ks_metrics_render(struct ks_metrics *m, size_t *len);

#endif
