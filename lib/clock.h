/* clock.h - the two clocks Kasir reads: wall time for what is stored or sent (timestamps,
 * due times, headers) and the monotonic clock for durations and deadlines (it never steps
 * back when NTP moves the wall clock). Inline: they sit in per-message paths. */
#ifndef KS_CLOCK_H
#define KS_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/* Milliseconds since the Unix epoch. */
static inline int64_t ks_clock_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Microseconds since the Unix epoch (Avro timestamp-micros). */
static inline int64_t ks_clock_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Microseconds of the monotonic clock: only differences mean anything. */
static inline int64_t ks_clock_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* A condition variable whose timed waits run on the monotonic clock: a deadline given to
 * pthread_cond_timedwait then does not move when the wall clock steps (with the default
 * clock, a step back of an hour made a wait computed before it last an hour). Call before
 * any thread uses c. 0, or the error of pthread_cond_init. */
static inline int ks_cond_init_mono(pthread_cond_t *c)
{
    pthread_condattr_t a;
    int rc;

    if ((rc = pthread_condattr_init(&a)) != 0)
        return rc;
    if ((rc = pthread_condattr_setclock(&a, CLOCK_MONOTONIC)) == 0)
        rc = pthread_cond_init(c, &a);
    pthread_condattr_destroy(&a);
    return rc;
}

/* The monotonic instant at_us (ks_clock_mono_us's scale) as a timespec, for timed waits and
 * joins on CLOCK_MONOTONIC (pthread_clockjoin_np). */
static inline struct timespec ks_clock_mono_at(int64_t at_us)
{
    struct timespec ts = {.tv_sec = (time_t)(at_us / 1000000),
                          .tv_nsec = (long)(at_us % 1000000) * 1000};
    return ts;
}

/* The deadline us microseconds from now on the monotonic clock, for a timed wait on a
 * condition variable made by ks_cond_init_mono. */
static inline struct timespec ks_clock_mono_deadline(int64_t us)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += (long)(us % 1000000) * 1000;
    ts.tv_sec += (time_t)(us / 1000000) + ts.tv_nsec / 1000000000;
    ts.tv_nsec %= 1000000000;
    return ts;
}

#endif
