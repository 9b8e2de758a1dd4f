/* test_metrics.c - the Prometheus registry (lib/metrics.c). */
#include <stdlib.h>
#include <string.h>

#include "lib/metrics.h"
#include "tests/unit/ktest.h"

KT_TEST(test_metrics_render)
{
    struct ks_metrics *m = ks_metrics_new();
    static const int64_t bounds[] = {1000, 10000};
    struct ks_metric *c = ks_metrics_counter(m, "x_total", "things", NULL);
    struct ks_metric *h = ks_metrics_histogram(m, "x_seconds", "time", NULL, bounds, 2);
    char *txt;
    KT_CHECK(ks_metrics_counter(m, "x_total", "things", NULL) == c);
    ks_metric_add(c, 3);
    ks_metric_observe(h, 500);
    ks_metric_observe(h, 5000);
    ks_metric_observe(h, 50000);
    ks_metric_set(ks_metrics_gauge(m, "lag", "behind", "topic=\"t\",partition=\"0\""), 7);
    txt = ks_metrics_render(m, NULL);
    KT_CHECK(strstr(txt, "# TYPE x_total counter\nx_total 3\n") != NULL);
    KT_CHECK(strstr(txt, "x_seconds_bucket{le=\"0.001000\"} 1\n") != NULL);
    KT_CHECK(strstr(txt, "x_seconds_bucket{le=\"0.010000\"} 2\n") != NULL);
    KT_CHECK(strstr(txt, "x_seconds_bucket{le=\"+Inf\"} 3\n") != NULL);
    KT_CHECK(strstr(txt, "x_seconds_sum 0.055500\n") != NULL);
    KT_CHECK(strstr(txt, "x_seconds_count 3\n") != NULL);
    KT_CHECK(strstr(txt, "lag{topic=\"t\",partition=\"0\"} 7\n") != NULL);
    free(txt);
    ks_metrics_free(m);
}

KT_TEST(test_metrics_remove)
{
    struct ks_metrics *m = ks_metrics_new();
    struct ks_metric *a = ks_metrics_gauge(m, "lag", "behind", "partition=\"0\"");
    struct ks_metric *b = ks_metrics_gauge(m, "lag", "behind", "partition=\"1\"");
    struct ks_metric *c;
    char *txt;
    ks_metric_set(a, 5);
    ks_metric_set(b, 6);
    ks_metrics_remove(m, b); /* the tail */
    ks_metrics_remove(m, NULL);
    c = ks_metrics_gauge(m, "lag", "behind", "partition=\"2\""); /* appended after a */
    ks_metric_set(c, 7);
    ks_metrics_remove(m, a); /* the head */
    txt = ks_metrics_render(m, NULL);
    KT_CHECK(strstr(txt, "partition=\"0\"") == NULL);
    KT_CHECK(strstr(txt, "partition=\"1\"") == NULL);
    KT_CHECK(strstr(txt, "lag{partition=\"2\"} 7\n") != NULL);
    free(txt);
    ks_metrics_free(m);
}

/* Label sets of one name first seen at different times (a route's first 404 long after its
 * first 200) still render as one block under one HELP/TYPE: Prometheus refuses a name whose
 * samples are split. */
KT_TEST(test_metrics_name_stays_contiguous)
{
    struct ks_metrics *m = ks_metrics_new();
    char *txt, *p;
    ks_metric_add(ks_metrics_counter(m, "req_total", "requests", "code=\"200\""), 1);
    ks_metric_set(ks_metrics_gauge(m, "conns", "open", NULL), 2);
    ks_metric_add(ks_metrics_counter(m, "req_total", "requests", "code=\"404\""), 3);
    txt = ks_metrics_render(m, NULL);
    KT_CHECK(strstr(txt, "# TYPE req_total counter\nreq_total{code=\"200\"} 1\n"
                         "req_total{code=\"404\"} 3\n# HELP conns") != NULL);
    p = strstr(txt, "# TYPE req_total");
    KT_CHECK(p && strstr(p + 1, "# TYPE req_total") == NULL);
    free(txt);
    ks_metrics_free(m);
}

KT_TEST(test_metrics_counter_us_in_seconds)
{
    struct ks_metrics *m = ks_metrics_new();
    struct ks_metric *c = ks_metrics_counter_us(m, "spent_seconds_total", "time", NULL);
    char *txt;
    ks_metric_add(c, 2500001);
    txt = ks_metrics_render(m, NULL);
    KT_CHECK(strstr(txt, "# TYPE spent_seconds_total counter\nspent_seconds_total 2.500001\n") != NULL);
    free(txt);
    ks_metrics_free(m);
}

KT_MAIN(test_metrics_render, test_metrics_remove, test_metrics_name_stays_contiguous,
        test_metrics_counter_us_in_seconds)
