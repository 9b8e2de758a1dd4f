/* breaker.h - a circuit breaker per PSP and payment method.
 *
 * closed: calls go through; the last `window` results are kept, and when at least
 * `min_calls` of them are known and `failure_pct` percent or more failed (a 5xx, a
 * timeout, a transport error: the PSP is unwell, not a decline), the circuit opens.
 * open: nothing is sent for `open_ms`; the core fails over or retries later.
 * half-open: `probes` calls may go; as many successes close the circuit, one failure opens
 * it again for another `open_ms`.
 * State and transitions are metrics (kasir_executor_breaker_state{psp,method} 0 closed,
 * 1 open, 2 half-open; kasir_executor_breaker_transitions_total{psp,method,to}).
 * Single-threaded: the executor's handler thread owns every breaker. */
#ifndef KS_EXECUTOR_BREAKER_H
#define KS_EXECUTOR_BREAKER_H

#include <stdint.h>

#include "lib/metrics.h"

enum ex_breaker_state { EX_BREAKER_CLOSED, EX_BREAKER_OPEN, EX_BREAKER_HALF_OPEN };

struct ex_breaker_conf {
    int window, min_calls, failure_pct, probes;
    int64_t open_ms;
};

struct ex_breakers; /* opaque: every (psp, method) pair met so far */
struct ex_breaker;

struct ex_breakers *ex_breakers_new(const struct ex_breaker_conf *conf, struct ks_metrics *metrics);
void ex_breakers_free(struct ex_breakers *bs); /* NULL ok */
/* The breaker of psp and method, created closed on first use; NULL on no memory (then
 * every call is allowed). */
struct ex_breaker *ex_breaker_get(struct ex_breakers *bs, const char *psp, const char *method);
/* 1 when a call may be sent now (closed, or a half-open probe slot; taking the slot);
 * 0 when the circuit is open. now_ms is monotonic. */
int ex_breaker_allow(struct ex_breaker *br, int64_t now_ms);
/* Records the result of a call that was sent: ok = 1 when the PSP answered as a healthy
 * PSP does (a success or a decline), 0 for a 5xx, a timeout or a transport failure. */
void ex_breaker_record(struct ex_breaker *br, int ok, int64_t now_ms);
/* Gives back a half-open probe slot taken by ex_breaker_allow for a call never sent. */
void ex_breaker_release(struct ex_breaker *br);
enum ex_breaker_state ex_breaker_state(const struct ex_breaker *br, int64_t now_ms);

#endif
