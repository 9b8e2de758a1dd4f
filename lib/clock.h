/* clock.h - the two clocks Kasir reads: wall time for what is stored or sent (timestamps,
 * due times, headers) and the monotonic clock for durations and deadlines (it never steps
 * back when NTP moves the wall clock). Inline: they sit in per-message paths. */
#ifndef KS_CLOCK_H
#define KS_CLOCK_H

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

#endif
