/* ingress_load.c - open-loop load generator for kasir-ingress (POST /v1/payments).
 *
 * Requests are scheduled at a fixed offered rate; latency is measured from each request's
 * scheduled time, not from when a connection was free, so a slow server cannot hide its
 * queueing (no coordinated omission). Every request carries a unique Idempotency-Key and
 * checkout_id. One thread, epoll, HTTP/1.1 keep-alive, one request in flight per connection.
 *
 *   ingress_load HOST PORT API_KEY|- RATE SECONDS CONNECTIONS [WARMUP_SECONDS]   (-: key in $INGRESS_KEY)
 * INGRESS_METHOD=card sends card orders (a PSP token) instead of QRIS (the e2e bench: a
 * card is captured at once, a QRIS code waits for its customer).
 * Prints one line: offered, sent, accepted/s, other statuses, p50, p90, p99, p99.9, max (ms),
 * and its own CPU time (cpu_us, user + system, the whole run: it shares the cores with what
 * it measures). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lib/crypto.h"

struct conn {
    int fd, busy;
    int64_t sched_ns;
    char out[2048];
    size_t olen, osent;
    char in[8192];
    size_t ilen;
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* INGRESS_TIMELINE=1: p50/p99/max per second of scheduled time on stderr, to tell a
 * steady tail from a few stalls */
static void timeline(const int64_t *lat, const int64_t *sched, long n, int64_t start,
                     time_t epoch0)
{
    /* requests complete out of order: bucket by the second they were scheduled in */
    long nsec = n ? (long)((sched[n - 1] - start) / 1000000000) + 2 : 0, s, i;
    long *cnt = calloc((size_t)nsec + 1, sizeof(long)), *fill = calloc((size_t)nsec + 1, sizeof(long));
    int64_t *v = malloc(sizeof(*v) * (size_t)(n + 1));

    for (i = 0; i < n; i++) {
        s = (long)((sched[i] - start) / 1000000000);
        if (s >= 0 && s < nsec)
            cnt[s + 1]++;
    }
    for (s = 1; s <= nsec; s++)
        cnt[s] += cnt[s - 1]; /* cnt[s]: where second s starts in v */
    for (i = 0; i < n; i++) {
        s = (long)((sched[i] - start) / 1000000000);
        if (s >= 0 && s < nsec)
            v[cnt[s] + fill[s]++] = lat[i];
    }
    for (s = 0; s < nsec; s++) {
        long m = cnt[s + 1] - cnt[s];
        int64_t *w = v + cnt[s];
        if (m < 1)
            continue;
        qsort(w, (size_t)m, sizeof(*w), cmp64);
        fprintf(stderr, "t=%lds at=%lld n=%ld p50_ms=%.2f p99_ms=%.2f max_ms=%.2f\n", s,
                (long long)(epoch0 + s), m, w[(m - 1) / 2] / 1e6,
                w[(long)((double)(m - 1) * 0.99)] / 1e6, w[m - 1] / 1e6);
    }
    free(cnt);
    free(fill);
    free(v);
}

static int connect_to(const char *host, int port)
{
    struct sockaddr_in sa = {0};
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, host, &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        perror("connect");
        exit(1);
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: %s HOST PORT API_KEY RATE SECONDS CONNECTIONS [WARMUP]\n", argv[0]);
        return 2;
    }
    const char *host = argv[1];
    int port = atoi(argv[2]), nconn = atoi(argv[6]);
    double rate = strtod(argv[4], NULL), secs = strtod(argv[5], NULL);
    double warm = argc > 7 ? strtod(argv[7], NULL) : 0;
    char cred[256], auth[400];
    /* "-": the key comes from INGRESS_KEY, so it does not show in ps */
    snprintf(cred, sizeof(cred), "%s:", strcmp(argv[3], "-") == 0 && getenv("INGRESS_KEY") ? getenv("INGRESS_KEY") : argv[3]);
    ks_b64_encode((const uint8_t *)cred, strlen(cred), auth);
    struct conn *c = calloc((size_t)nconn, sizeof(*c));
    int ep = epoll_create1(0), i;
    for (i = 0; i < nconn; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        c[i].fd = connect_to(host, port);
        epoll_ctl(ep, EPOLL_CTL_ADD, c[i].fd, &ev);
    }
    long total = (long)(rate * (secs + warm)), warm_n = (long)(rate * warm);
    int64_t *lat = calloc((size_t)total + 1, sizeof(int64_t));
    int64_t *sched = calloc((size_t)total + 1, sizeof(int64_t));
    int64_t *sched_of = calloc((size_t)total + 1, sizeof(int64_t)); /* per measured request */
    long issued = 0, done = 0, accepted = 0, other = 0, qhead = 0, nlat = 0;
    long status_counts[600] = {0};
    unsigned run = (unsigned)time(NULL) ^ (unsigned)getpid();
    time_t epoch0 = time(NULL); /* wall clock of start, to line seconds up with other logs */
    int card = getenv("INGRESS_METHOD") && strcmp(getenv("INGRESS_METHOD"), "card") == 0;
    int64_t start = now_ns(), interval = (int64_t)(1e9 / rate), meas_start = 0, meas_end = 0;
    int *idle = malloc(sizeof(int) * (size_t)nconn), nidle = nconn;
    for (i = 0; i < nconn; i++)
        idle[i] = i;

    while (done < total) {
        int64_t t = now_ns();
        /* schedule everything due by now */
        while (issued < total && start + issued * interval <= t) {
            sched[issued] = start + issued * interval;
            issued++;
        }
        /* hand queued requests to idle connections */
        while (qhead < issued && nidle > 0) {
            struct conn *k = &c[idle[--nidle]];
            char body[512];
            int bl = snprintf(body, sizeof(body),
                              "{\"buyer\":{\"id\":\"buyer-%ld\"},\"checkout_id\":\"bench-%08x-%ld\","
                              "\"payment_orders\":[{\"seller_id\":\"seller-%ld\",\"amount\":\"150000.00\","
                              "\"currency\":\"IDR\",\"method\":\"%s}]}",
                              qhead % 1000, run, qhead, qhead % 50,
                              card ? "card\",\"payment_token\":\"tok_bench_visa\"" : "qris\"");
            k->olen = (size_t)snprintf(k->out, sizeof(k->out),
                                       "POST /v1/payments HTTP/1.1\r\nHost: %s\r\nAuthorization: Basic %s\r\n"
                                       "Content-Type: application/json\r\nIdempotency-Key: bench-%08x-%ld\r\n"
                                       "Content-Length: %d\r\n\r\n%s",
                                       host, auth, run, qhead, bl, body);
            k->osent = 0;
            k->busy = 1;
            k->sched_ns = sched[qhead];
            k->ilen = 0;
            qhead++;
            ssize_t w = write(k->fd, k->out, k->olen);
            if (w > 0)
                k->osent = (size_t)w;
            if (k->osent < k->olen) {
                struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t)(k - c)};
                epoll_ctl(ep, EPOLL_CTL_MOD, k->fd, &ev);
            }
        }
        struct epoll_event evs[256];
        int64_t next = issued < total ? start + issued * interval : t + 1000000;
        int to = (int)((next - now_ns()) / 1000000);
        if (to < 1)
            to = 1; /* requests due within the millisecond go out together */
        if (to > 10)
            to = 10;
        int n = epoll_wait(ep, evs, 256, (qhead < issued && nidle > 0) ? 0 : to);
        for (int e = 0; e < n; e++) {
            struct conn *k = &c[evs[e].data.u32];
            if (evs[e].events & EPOLLOUT && k->osent < k->olen) {
                ssize_t w = write(k->fd, k->out + k->osent, k->olen - k->osent);
                if (w > 0)
                    k->osent += (size_t)w;
                if (k->osent == k->olen) {
                    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = evs[e].data.u32};
                    epoll_ctl(ep, EPOLL_CTL_MOD, k->fd, &ev);
                }
            }
            if (!(evs[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                continue;
            ssize_t r = read(k->fd, k->in + k->ilen, sizeof(k->in) - 1 - k->ilen);
            if (r <= 0) {
                if (r < 0 && errno == EAGAIN)
                    continue;
                fprintf(stderr, "connection closed by server\n");
                return 1;
            }
            k->ilen += (size_t)r;
            k->in[k->ilen] = 0;
            char *hend = strstr(k->in, "\r\n\r\n");
            if (!hend)
                continue;
            char *cl = strcasestr(k->in, "Content-Length:");
            long blen = cl ? strtol(cl + 15, NULL, 10) : 0;
            if ((long)(k->ilen - (size_t)(hend + 4 - k->in)) < blen)
                continue;
            int status = atoi(k->in + 9);
            int64_t tt = now_ns();
            long idx = done++;
            if (idx >= warm_n) {
                if (!meas_start)
                    meas_start = tt;
                meas_end = tt;
                lat[nlat] = tt - k->sched_ns;
                sched_of[nlat++] = k->sched_ns;
                if (status == 202)
                    accepted++;
                else
                    other++;
                if (status >= 100 && status < 600)
                    status_counts[status]++;
            }
            k->busy = 0;
            k->ilen = 0;
            idle[nidle++] = (int)evs[e].data.u32;
        }
    }
    if (getenv("INGRESS_TIMELINE") && *getenv("INGRESS_TIMELINE"))
        timeline(lat, sched_of, nlat, start, epoch0);
    qsort(lat, (size_t)nlat, sizeof(int64_t), cmp64);
#define PCT(p) (nlat ? lat[(long)((double)(nlat - 1) * (p))] / 1e6 : 0.0)
    double el = (meas_end - meas_start) / 1e9;
    printf("offered=%.0f/s sent=%ld accepted=%ld accepted_per_s=%.0f other=%ld "
           "p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f p999_ms=%.2f max_ms=%.2f",
           rate, nlat, accepted, el > 0 ? accepted / el : 0.0, other, PCT(0.50), PCT(0.90),
           PCT(0.99), PCT(0.999), nlat ? lat[nlat - 1] / 1e6 : 0.0);
    for (i = 100; i < 600; i++)
        if (status_counts[i] && i != 202)
            printf(" status_%d=%ld", i, status_counts[i]);
    {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        printf(" cpu_us=%lld", (long long)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 +
                                   ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
    }
    printf("\n");
    return 0;
}
