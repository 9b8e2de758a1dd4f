/* exec.h - the executor's transport: every PSP call of a batch in flight at once over one
 * libcurl multi handle, each driven through its adapter's steps.
 *
 * A job is one operation (a charge, a refund, a payout) at one PSP. ex_engine_add starts
 * jobs, ex_engine_wait then, as answers arrive, hands each to the adapter and sends the next step,
 * until every job has a verdict. A job with status_first = 1 (an earlier attempt whose
 * outcome is unknown) runs the adapter's status sequence first; only EX_ABSENT lets it go
 * on to send the operation, with the same idempotency key. Nothing here writes to
 * PostgreSQL or Kafka: the journal row of each job is committed before ex_engine_add is
 * called for it, and the verdicts are the caller's to record. Requests are never logged (their
 * headers carry secrets). */
#ifndef KS_EXECUTOR_EXEC_H
#define KS_EXECUTOR_EXEC_H

#include <curl/curl.h>

#include "consumers/executor/adapter.h"
#include "lib/buf.h"

struct ex_job {
    /* in: set by the caller */
    const struct ex_adapter *ad;
    const struct ex_conf *conf;
    struct ex_cmd cmd;
    int status_first;       /* ask the PSP before sending anything */
    char known_ref[128];    /* the PSP's reference journaled by an earlier attempt, or "" */
    /* out */
    struct ex_result res;   /* the verdict (never EX_NEXT or EX_ABSENT) */
    int invalid;            /* the adapter refused to build the request: never sent */
    int sent;               /* a request of the operation itself (not a status) was sent */
    int health;             /* last answer: 1 a healthy PSP (2xx-4xx but 429), 0 5xx, 429
                             * or transport failure, -1 no call made */
    long http_status;       /* of the last answer, 0 when none */
    char transport[128];    /* curl's error text of the last call, "" when none */
    /* private to exec.c */
    int mode, step;
    int requests;           /* requests curl sent for the current call (see on_prereq) */
    struct ex_result prev;
    struct ex_req req;
    CURL *easy;
    struct curl_slist *hdrs;
    struct ks_buf resp;
    char errbuf[CURL_ERROR_SIZE];
};

struct ex_engine;

struct ex_engine_conf {
    long max_in_flight;      /* calls on the wire at once (more wait their turn) */
    long timeout_ms;         /* a call's whole time, connection included */
    long connect_timeout_ms;
};

struct ex_engine *ex_engine_new(const struct ex_engine_conf *conf);
void ex_engine_free(struct ex_engine *e); /* NULL ok */
/* Initializes job's private part; the caller then fills the "in" fields. */
void ex_job_init(struct ex_job *job);
void ex_job_release(struct ex_job *job);
/* Adds jobs[0..n-1] and puts as many as max_in_flight allows on the wire at once, without
 * waiting for answers (the caller may journal the next partition meanwhile). 0, or -1 on no
 * memory (then none of them was added). */
int ex_engine_add(struct ex_engine *e, struct ex_job *const *jobs, size_t n);
/* Runs every job added to its verdict. */
void ex_engine_wait(struct ex_engine *e);

#endif
