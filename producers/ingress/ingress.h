/* ingress.h - private interfaces between the ingress's files.
 *
 *   main.c      CLI (serve, partner, key, routes, codes), config, start/stop
 *   routes.c    the route table: method, path, scope, body cap, flags, handler, label
 *   http.c      libmicrohttpd server: limits, auth at the headers, body accumulation,
 *               sending responses, metrics, logs
 *   request.c   a request's accessors and answer: headers, responses, suspend/resume
 *   handlers.c  the partner endpoints' handlers (admin_*.c, balances.c, audit_export.c:
 *               the admin ones)
 *   accept.c    the accept path: claim -> produce -> finish -> answer, its failure edges
 *   texts.c     the texts a write produces: claim and finish documents, 202s, events
 *   auth.c      API keys (Basic), JWTs (Bearer), token exchange, scopes, rate limits
 *   store.c     group-commit writer threads: idempotency claims and finishes in PostgreSQL
 *   reader.c    reader threads: every other PostgreSQL query (auth lookups, token requests,
 *               reads), with deadlines; server threads never wait for PostgreSQL
 *   publish.c   the Kafka producer and its delivery-report thread
 *   validate.c  pure request parsing (validate.h)
 *
 * Calls between files go one way (no file calls back into one that calls it): http ->
 * {routes, auth -> reader}, handlers -> accept -> {store, publish, texts}, and all of them
 * -> request. The server reaches a handler through the route table; the writers and the
 * producer report back through the function pointers accept.c gives them.
 *
 * A request lives in one struct ing_req from the first MHD callback to the completion
 * notification. It is authenticated on its headers, before any of its body is read.
 * Requests that wait for PostgreSQL or Kafka are suspended (MHD_suspend_connection) and
 * resumed by whichever thread finishes them (reader, writer or delivery-report thread)
 * through ing_req_done (or ing_auth_resume for a key lookup at the headers). */
#ifndef ING_INGRESS_H
#define ING_INGRESS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <microhttpd.h>
#include <librdkafka/rdkafka.h>

#include "lib/clock.h"
#include "lib/config.h"
#include "lib/db.h"
#include "lib/ids.h"
#include "lib/jsonw.h"
#include "producers/ingress/validate.h"

enum ing_route {
    R_TOKEN, R_PAY_POST, R_PAY_GET, R_PAY_LIST, R_REFUND_POST, R_REFUND_GET, R_PAYOUT_POST,
    R_PAYOUT_GET, R_WEBHOOK, R_SETTLE, R_RECON_GET, R_ADMIN_PARTNERS, R_ADMIN_HOLDS, R_BALANCE,
    R_ADMIN_LEDGER, R_HEALTH,
    R_READY, R_METRICS, R_OPENAPI, R_UNKNOWN, R__COUNT
};

struct ing_req;

/* the body a route takes: its cap, which holds from the headers on (routes.c) */
enum ing_body { ING_BODY_NONE, ING_BODY_SMALL, ING_BODY_WRITE, ING_BODY_WEBHOOK, ING_BODY_UPLOAD };
#define ING_RT_PROBE 0x1u    /* a probe: served on the admin listener too, not logged */
#define ING_RT_IP_LIMIT 0x2u /* unauthenticated work: the per-address limit at the headers */
#define ING_RT_PSP 0x4u      /* a PSP's own signature: no Basic challenge on a 401 */

struct ing_route_def {
    enum ing_route id;
    const char *method; /* "GET" (HEAD too) or "POST" */
    const char *path;   /* OpenAPI form, "/v1/payments/{id}" */
    unsigned scope;     /* ING_SCOPE_* needed, 0: no partner auth */
    enum ing_body body;
    unsigned flags;     /* ING_RT_* */
    void (*handle)(struct ing_req *r);
    const char *label;  /* the route of logs and /metrics; rows of one id share it */
};
extern const struct ing_route_def ing_routes[];
extern const size_t ing_routes_count;

/* routes.c: sets r->route, r->rdef, r->arg and r->allow from r->method, r->url and
 * r->admin, and r->status 404 (no such path), 405 (not this method) or 0 */
void ing_route_match(struct ing_req *r);
/* the scope r's credential needs (none on the admin listener), its body cap */
unsigned ing_route_scope(const struct ing_req *r);
size_t ing_route_body_cap(const struct ing_req *r);
const char *ing_route_label(enum ing_route id); /* "unknown" for R_UNKNOWN */

/* scopes: bit i is ing_scope_names[i] */
#define ING_SCOPE_PAYMENTS_WRITE 0x001u
#define ING_SCOPE_PAYMENTS_READ 0x002u
#define ING_SCOPE_REFUNDS_WRITE 0x004u
#define ING_SCOPE_REFUNDS_READ 0x008u
#define ING_SCOPE_PAYOUTS_WRITE 0x010u
#define ING_SCOPE_PAYOUTS_READ 0x020u
#define ING_SCOPE_SETTLEMENTS_WRITE 0x040u
#define ING_SCOPE_RECON_READ 0x080u
#define ING_SCOPE_ADMIN 0x100u
#define ING_SCOPE_OPS_READ 0x200u
/* adjustments against Kasir's own accounts (fee_revenue, psp_clearing), which every partner
 * shares: an operator's scope, which admin does not imply (admin_ledger.c) */
#define ING_SCOPE_LEDGER_GLOBAL 0x400u
#define ING_SCOPE_COUNT 11
/* a partner's key by default: its payments, refunds, payouts and reconciliations. Not
 * settlements:write (settlement files are PSP data: an operator's scope), admin, ops:read,
 * ledger:global */
#define ING_SCOPES_DEFAULT 0x0bfu
extern const char *const ing_scope_names[ING_SCOPE_COUNT];
/* "a b c" or "a,b,c" -> bits; -1 for an unknown name (or nothing but separators). */
long ing_scopes_parse(const char *s);
/* the same for scopes a key has stored or a token carries: an unknown name (a scope a newer
 * ingress knows) grants nothing and the others stand; -1 only for nothing at all. Safe
 * only while every scope grants and none restricts: a scope that takes something away
 * (a "readonly") must never be added, or an older ingress would ignore it. Each stored
 * element is one name (migration 951), so no part of one is read as another */
long ing_scopes_stored(const char *s);
/* bits -> "a b c" into buf */
void ing_scopes_format(unsigned bits, char *buf, size_t len);

enum ing_state { S_NEW, S_SUSPENDED, S_DONE };
/* where a request is: headers seen (PH_NEW), suspended for a key lookup (PH_AUTH), body
 * being received (PH_BODY), handed to its handler (PH_HANDLED) */
enum ing_phase { PH_NEW, PH_AUTH, PH_BODY, PH_HANDLED };

struct ing_conn;
struct ing_rdb;

struct ing_req {
    struct MHD_Connection *conn;
    enum ing_route route;
    const struct ing_route_def *rdef;
    char method[8];
    int path_not_utf8;  /* the decoded path is not UTF-8 text */
    char not_utf8[72];  /* the first query argument that is not ("query": its name is not
                         * text, or empty), "" if none */
    char url[256];
    char arg[256];     /* the path's {name} segment, as the route table matched it */
    const char *allow; /* the Allow header of the path's methods */
    char trace_id[33];
    char span_id[17];
    int64_t t0_us;
    char *body;
    size_t len, cap, max;
    int too_large;
    _Atomic int state;
    enum ing_phase phase;
    int counted;           /* in ing_live (suspended once, or handled) */
    int admin;             /* arrived on the admin listener */
    int close;             /* answer with Connection: close */
    struct ing_conn *tc;   /* the connection's deadline tracker */
    char ip[48];

    /* auth */
    char partner_id[KS_ID_LEN];
    char cred_id[KS_ID_LEN];
    unsigned scopes;
    int authed;
    uint8_t auth_hash[32];  /* cache key of the lookup */
    int auth_bearer;        /* 1: cred_id is a token's kid, scopes come from tok_scopes */
    unsigned tok_scopes;
    char tok_sub[KS_ID_LEN];
    int auth_rc;            /* lookup result: 1 valid, 0 unknown/revoked, -1 problem */
    int auth_reload;        /* cached, but the partner's limits are stale: query again */
    struct ing_problem auth_p;

    /* deferred PostgreSQL work (reader.c) */
    void (*job)(struct ing_req *r, struct ing_rdb *db);
    int64_t job_deadline_us;
    int job_auth;
    struct ing_req *jnext;  /* the reader queue; then the waiters of a lookup (auth.c) */

    /* response */
    int status;
    char *resp;
    size_t resp_len;
    const char *ctype;
    /* a streamed response (audit_export.c) instead of resp: MHD's content reader, its
     * argument and the callback that releases it (called once, by MHD or req_free) */
    MHD_ContentReaderCallback stream;
    void *stream_cls;
    MHD_ContentReaderFreeCallback stream_free;
    const char *code; /* problem code, for logs and metrics */
    int retry_after;  /* seconds, 0: none */
    int replayed;
    int sent;

    /* idempotent writes (K_STORE) */
    const char *route_name; /* "payments" | "refunds" | "payouts" */
    char key_hash[65];
    char fp[65];
    char rid[KS_ID_LEN];
    char *claim_str, *fin_str; /* the claim and finish documents (texts.c), made off the
                                * writer threads */
    json_t *parsed;  /* the request's root object (parsed structs borrow from it) */
    union {
        struct ing_payment pay;
        struct ing_refund refund;
        struct ing_payout payout;
        struct ing_token_req token;
    } u;
    /* reads: the query's argument, its SQL and what it reads ("payment", ...) */
    char *qarg;
    const char *qsql, *qwhat;
    int fin_complete; /* finish op: 1 complete, 0 release */
    int64_t parked_until_us; /* accept.c: parked on a payment's rows until then */
    int64_t park_next_us;    /* accept.c: its next run */
    int64_t park_step_us;    /* accept.c: the interval of its runs (doubling) */
    int park_expired;        /* accept.c: the rows took longer: answered as found */
    int park_read;               /* accept.c: parked is a read job, queued for a reader again */
    int requeued;                /* reader.c: queued again, without a place in the count */
    struct ing_req *next;
    int64_t t_queued; /* monotonic us: when it was queued for the writers (store.c) */

    int64_t t_claim, t_claimed, t_dr; /* monotonic us, for the debug timing line */

    /* publishing: what a delivery report of r's messages calls (accept.c), err NULL when
     * Kafka confirmed */
    void (*delivered)(struct ing_req *r, const char *err);
    void *payload;
    size_t payload_len;
    const char *topic;
    char msg_key[160];
    char msg_id[KS_ID_LEN];
    _Atomic long pending;   /* settlement rows: not yet confirmed (+1 while producing) */
    _Atomic long failed;    /* settlement rows: refused */
    long rows;
    char file_id[KS_ID_LEN];
    char psp[16];
    char format[16];
};

/* --- settings, shared handles ------------------------------------------------------ */
struct ing_ctx {
    const struct ks_config *cfg;
    const char *pg_dsn;
    rd_kafka_t *rk;
    uint8_t jwt_key[32];
    int64_t jwt_ttl_s, token_window_s, auth_cache_ms;
    int64_t idem_keep_s, idem_lock_s;
    int64_t webhook_tolerance_s;
    size_t max_body, max_upload, max_webhook;
    const char *wh_stripe, *wh_xendit, *wh_midtrans, *wh_sandbox, *wh_iris;
    int writers, batch_max;
    int64_t gather_us, overlap_us;
    /* connections and deadlines (http.c) */
    int admin_port;
    const char *admin_bind;
    unsigned max_connections, per_ip_connections;
    int64_t idle_timeout_ms, request_timeout_ms, upload_timeout_ms, drain_timeout_ms;
    /* readers and the auth path */
    int readers, reader_queue_max;
    int64_t auth_timeout_ms, read_timeout_ms, export_fetch_timeout_ms, export_timeout_ms;
    int ip_rps, ip_burst, token_rps;
    long cache_max, nonce_max;
    int sandbox_enabled;
    int64_t purge_every_ms;
    long purge_batch;
    _Atomic int kafka_ok, pg_ok;
    _Atomic int draining; /* SIGTERM: new requests get 503 + Connection: close */
    _Atomic int stopping;
    /* SIGTERM: when the stop must be over (monotonic µs): the answers get http.drain_timeout
     * from the signal, the threads behind them what is left of it, 5 s at least */
    int64_t stop_by_us;
};
extern struct ing_ctx ING;

/* http.c: the server */
int ing_http_start(int port, int threads);
/* SIGTERM: refuses new work (503 + Connection: close) and waits until every request that
 * was handed to a handler has been answered (or http.drain_timeout); 0 when none is
 * left suspended, so that the server may be stopped. */
int ing_http_drain(void);
void ing_http_stop(void);
struct ing_http_stats {
    long connections, connections_total, reaped, live, requests_allocated;
};
void ing_http_metrics(struct ing_http_stats *out);
void ing_metrics_write(char **out, size_t *len);

/* request.c: a request's accessors and its answer (any thread) */
extern _Atomic long ing_inflight; /* suspended requests */
extern _Atomic long ing_live;     /* handed to a handler or suspended, not yet completed */
void ing_req_count_live(struct ing_req *r); /* once per request: it is in ing_live */
void ing_req_done(struct ing_req *r); /* resumes a suspended request (any thread) */
void ing_suspend(struct ing_req *r);
/* "ip:port" family-agnostic client address of r (text) */
const char *ing_client_ip(struct ing_req *r);
const char *ing_header(struct ing_req *r, const char *name);
/* 1 when the request's Content-Type is want (parameters after ';' allowed), else 0 with
 * an unsupported_media_type problem naming the type to send */
int ing_media_is(struct ing_req *r, const char *want, struct ing_problem *p);
void ing_respond_json(struct ing_req *r, int status, json_t *body); /* steals body */
/* Sets r's response to a JSON text (taken, may be NULL: out of memory) */
void ing_respond_text(struct ing_req *r, int status, char *json, size_t len);
/* Sets r's response to the answer stored in an ingress_batch outcome ("status", base64
 * "body"), leaving r's state as it is; 0, or -1 when there is none or it cannot be read. */
int ing_respond_stored(struct ing_req *r, json_t *res);
void ing_respond_problem(struct ing_req *r, const struct ing_problem *p);
void ing_respond_problem_x(struct ing_req *r, const struct ing_problem *p, json_t *extra);
char *ing_problem_body(const struct ing_req *r, const struct ing_problem *p, json_t *extra,
                       size_t *len);

/* handlers.c: the handlers of the route table (routes.c) */
void ing_pay_post(struct ing_req *r);
void ing_pay_get(struct ing_req *r);
void ing_pay_list(struct ing_req *r);
void ing_refund_post(struct ing_req *r);
void ing_refund_get(struct ing_req *r);
void ing_payout_post(struct ing_req *r);
void ing_payout_get(struct ing_req *r);
void ing_webhook(struct ing_req *r);
void ing_settle(struct ing_req *r);
void ing_recon_get(struct ing_req *r);
void ing_admin_partners(struct ing_req *r);
void ing_health(struct ing_req *r);
void ing_ready(struct ing_req *r);
void ing_metrics(struct ing_req *r);
void ing_openapi(struct ing_req *r);
/* waits for the settlement files' threads to end, until ING.stop_by_us: 0, or -1 (logged) */
int ing_settle_join(void);

/* admin_holds.c: held payments and payouts (kasir-risk) */
void ing_admin_holds_list(struct ing_req *r);
void ing_admin_holds_decide(struct ing_req *r); /* .../approve or .../reject */

/* admin_request.c: what every admin endpoint's reader job does the same way */
/* A job's work: ING_ADMIN_FAILED (p is the answer), ING_ADMIN_ANSWERED (r has its answer),
 * ING_ADMIN_HANDED_ON (r is answered later, by a delivery report). What it parses or
 * fetches goes in body and out. */
struct ing_admin_job {
    json_t *body, *out;
    struct ing_problem p;
};
enum { ING_ADMIN_FAILED = -1, ING_ADMIN_ANSWERED = 0, ING_ADMIN_HANDED_ON = 1 };
/* Runs work on a reader thread (the fn of ing_defer_read calls it): answers the problem of
 * a failed work, frees body and out, and ends r unless work handed it on. */
void ing_admin_run(struct ing_req *r, struct ing_rdb *db,
                   int (*work)(struct ing_req *, struct ing_rdb *, struct ing_admin_job *));
/* The one jsonb answer of an admin SQL function, parsed; NULL + p (503, or 500 for an
 * answer that is not one JSON value). The functions are idempotent (a second run answers
 * "replay" or "unchanged"), so a lost connection retries them once, except with once set: a
 * statement a second run would do again (an adjustment request without an idempotency_key)
 * goes through ing_rdb_write. */
json_t *ing_admin_call(struct ing_req *r, struct ing_rdb *db, const char *sql, int n,
                       const char *const *params, int once, struct ing_problem *p);
/* Who acts: "<partner>/<credential id>" (API key or token), recorded with each act. */
#define ING_ADMIN_ACTOR_LEN (2 * KS_ID_LEN + 2)
void ing_admin_actor(const struct ing_req *r, char out[ING_ADMIN_ACTOR_LEN]);
/* The start of an act on one object: its body {"reason"} into j->body, and who acts.
 * 0, or -1 + j->p. */
int ing_admin_act(struct ing_req *r, struct ing_admin_job *j, const char **reason,
                  char actor[ING_ADMIN_ACTOR_LEN]);
/* ing_admin_call into j->out, then its "outcome": the outcome, or NULL + j->p (as
 * ing_admin_call; 404 "no <what> with this id" when the function found no such object). */
const char *ing_admin_outcome(struct ing_req *r, struct ing_rdb *db, const char *sql, int n,
                              const char *const *params, const char *what,
                              struct ing_admin_job *j);
/* 1 when r's route is a decision's .../approve, 0 for .../reject */
int ing_admin_approving(const struct ing_req *r);
/* An admin list, oldest first and paged (?status=&limit=&after=): status one of statuses
 * (def_status when absent; "all" lists every status), limit 1-1000 (100), after an id of
 * at most 200 bytes (a bad one: 400 naming it). sql takes (partner, status or NULL, limit,
 * after) and returns one jsonb per item; format rewrites an item for the API; the answer is
 * {<name>: [...], "next_after": <id_member of the last item, or null on the last page>}.
 * On a reader thread; answers r. */
struct ing_admin_list {
    const char *sql;
    const char *const *statuses;
    size_t nstatuses;
    const char *def_status, *id_member, *name;
    void (*format)(json_t *item);
};
void ing_admin_list(struct ing_req *r, struct ing_rdb *db, const struct ing_admin_list *l);
/* An admin request's JSON body: Content-Type application/json (else 415), an object whose
 * members are all in names (NULL-terminated); NULL + p naming what is wrong. */
json_t *ing_admin_body(struct ing_req *r, const char *const *names, struct ing_problem *p);
/* A string member of it: required or not, 1..max bytes; *out NULL when absent. 0 or -1 + p. */
int ing_admin_str(json_t *root, const char *name, int required, size_t max, const char **out,
                  struct ing_problem *p);
/* The most bytes of the reason an admin act records. */
#define ING_ADMIN_MAX_REASON 500

/* balances.c: a seller's wallet balances */
void ing_balance_get(struct ing_req *r);
/* admin_ledger.c: payout retry, manual adjustments (two-person rule) */
void ing_admin_payout_retry(struct ing_req *r);
void ing_admin_adjustments_list(struct ing_req *r);
void ing_admin_adjustment_create(struct ing_req *r);
void ing_admin_adjustment_decide(struct ing_req *r); /* .../approve or .../reject */
/* audit_export.c: GET /v1/admin/audit-export, streamed */
void ing_audit_export(struct ing_req *r);
/* at the drain's timeout: every live export's response ends now, incomplete (a stream
 * waiting for rows would otherwise keep its connection suspended); how many were cut */
int ing_audit_export_cut(void);

/* auth.c */
int ing_auth_init(void);
/* stops the listener (it notices ING.stopping within 200 ms, or at the end of a connect
 * and LISTEN, 2 s), joined by ING.stop_by_us: 0, or -1 (logged as a warning: it holds
 * nothing, the stop goes on) */
int ing_auth_stop(void);
/* At the headers: authenticates r for need (fills partner_id, cred_id, scopes), checks the
 * scope and the partner's rate limit. 0 done, -1 refused (p set), 1 suspended for a key
 * lookup: the server calls ing_auth_finish when it is resumed. */
int ing_auth_begin(struct ing_req *r, unsigned need, struct ing_problem *p);
int ing_auth_finish(struct ing_req *r, unsigned need, struct ing_problem *p);
/* Unauthenticated work of r's client address (lookups of unknown credentials, token
 * requests, failed authentications): 0 allowed, >0 seconds to wait. */
int ing_ip_take(struct ing_req *r);
void ing_token_exchange(struct ing_req *r);
struct ing_auth_stats {
    long lookups, coalesced, ip_limited, cache_entries, nonces, flushes;
};
void ing_auth_stats(struct ing_auth_stats *out);

/* reader.c: PostgreSQL off the server threads */
int ing_reader_start(void);
/* joined by ING.stop_by_us (a job ends by its own deadline): 0, or -1 */
int ing_reader_stop(void);
/* A connection for a thread that must not block (the readers, the auth listener): opened
 * asynchronously by deadline_us, named app; NULL when not (logged at debug). */
PGconn *ing_pg_connect_by(const char *app, int64_t deadline_us);
/* sql (one statement, n text params) run on c, its result awaited by deadline_us, every
 * message of it up to ReadyForQuery included: NULL with *timed_out (the statement may still
 * run: drop c) or *lost (the connection went, or the statement could not be sent). */
PGresult *ing_pg_exec_by(PGconn *c, const char *sql, int n, const char *const *params,
                         int64_t deadline_us, int *timed_out, int *lost);
/* Suspends r and queues fn(r, db) for a reader thread, to run before timeout_ms (auth: at
 * the front of the queue). 0, or -1 + p (503) when the queue is full or stopping (r is then
 * not suspended). fn answers r (ing_req_done) or, for auth, resumes it (ing_auth_resume). */
int ing_defer(struct ing_req *r, void (*fn)(struct ing_req *, struct ing_rdb *), int auth,
              int64_t timeout_ms, struct ing_problem *p);
/* r's job again, r still suspended: a read parked off the reader threads (accept.c), with
 * the deadline it had, at the head of the queue and outside readers.queue_max */
void ing_reader_requeue(struct ing_req *r);
/* ing_defer of a read (http.read_timeout), r answered with the 503 if it is refused */
void ing_defer_read(struct ing_req *r, void (*fn)(struct ing_req *, struct ing_rdb *));
/* A query on the reader's connection within r's deadline; the result (PGRES_TUPLES_OK) or
 * NULL + p (503). A connection found lost before the statement was sent is replaced; a
 * read whose connection is lost while it runs is retried once on a fresh one. */
PGresult *ing_rdb_query(struct ing_rdb *db, struct ing_req *r, const char *sql, int n,
                        const char *const *params, struct ing_problem *p);
/* The same for a statement that must not run twice: never sent twice, and not sent with
 * less than 250 ms of the deadline left (503); a connection lost or the deadline passed
 * while it runs is a 500 outcome_unknown (not a 503 with Retry-After: a blind retry could
 * do it twice), unless the server's own error came first (then nothing was done: 503). */
PGresult *ing_rdb_write(struct ing_rdb *db, struct ing_req *r, const char *sql, int n,
                        const char *const *params, struct ing_problem *p);
void ing_auth_resume(struct ing_req *r);

/* accept.c: the accept path of writes */
/* The idempotency key (header or body), the fingerprint and a new resource id of r, a
 * payment, refund or payout whose body is parsed (r->parsed, r->u); 0, or -1 + p (also
 * when Kafka is down: nothing is claimed then). */
int ing_accept_prepare(struct ing_req *r, const char *route_name, const char *body_key,
                       const char *rid_prefix, struct ing_problem *p);
/* Claims the prepared write r; suspends it unless suspended (a reader's job). From here
 * accept.c answers it. */
void ing_accept_claim(struct ing_req *r, int suspended);
/* Produces r->payload (texts.c) and answers r's response as set on the delivery report
 * (a 503 if Kafka refuses; refused: the detail of an immediate refusal). */
void ing_accept_direct(struct ing_req *r, int suspended, const char *refused);
/* A settlement file: begin (suspends r, the parser's hold), one row, release (the parser's
 * hold, after its rows): answered when the last hold goes. */
void ing_accept_rows_begin(struct ing_req *r);
int ing_accept_row(struct ing_req *r, const char *key, const void *buf, size_t len,
                   const char *msg_id);
void ing_accept_rows_release(struct ing_req *r);
int ing_accept_start(void); /* starts the writers (store.c) with accept.c's callbacks */
/* A read job that did not find ids ("a" or "a,b,c": payment ids, or order ids when
 * orders) of r's partner: when one of them is a payment (or an order of one) this process
 * answered in the last second, whose rows kasir-risk has not written yet, parks r and
 * returns 1: the job ends without touching r, and runs again (from its start) about 8 ms
 * later, then at doubling intervals up to 128 ms, until it finds them or its wait is over
 * (a second after its first park or after the 202, whichever is first, then at its next
 * run; r's deadline at the latest), then answered as it finds them. 0: nothing to wait for, the job goes on. A
 * read after a 202 sees the payment, and no reader thread waits for it (test 229). */
int ing_accept_park_read(struct ing_req *r, const char *ids, int orders);
/* requests parked now, and runs of parked requests so far (for /metrics) */
void ing_accept_stats(long *parked_now, long *reruns);

/* texts.c: the texts of writes (pure; NULL or -1: out of memory or not encodable) */
/* lower-case hex SHA-256 of d: idempotency keys, fingerprints, body-derived ids */
void ing_sha256_hex(const void *d, size_t n, char out[65]);
/* An amount in the API's decimal form ("150000.00") */
void ing_amount_fmt(int64_t minor, const char *cur, char buf[KS_MONEY_STRLEN]);
/* payments: the 202 body (returned, *len) and the order ids, for r->rid */
char *ing_text_payment(struct ing_req *r, size_t *len);
/* A resumed payment claim: the order ids its stored answer (r->resp) told the client, into
 * the orders for its event (an earlier release may have derived them otherwise). -1 when
 * the answer does not name one valid order id per order. */
int ing_orders_from_answer(struct ing_req *r);
/* the claim document of r (force: take over the record even if in flight) */
char *ing_text_claim(struct ing_req *r, int force);
/* the finish document of r: complete (the rows, a refund's or payout's answer) or release */
char *ing_text_finish(struct ing_req *r, int complete);
/* The event of a claimed write into r->payload, topic, msg_key, msg_id and, for refunds
 * and payouts, the 202 body (*accepted); res: the claim's outcome. 0 or -1 + p. */
int ing_text_claimed(struct ing_req *r, json_t *res, json_t **accepted, struct ing_problem *p);
/* The PayoutRequested event of payout_id (r's partner) into r->payload, with its topic,
 * key and message id (derived from payout_id); 0 or -1 + p. */
int ing_payout_event(struct ing_req *r, const char *payout_id, const struct ing_payout *po,
                     struct ing_problem *p);
/* A verified notification (headers taken), as a WebhookReceived event into r->payload,
 * topic, msg_key, msg_id; 0 or -1 + p. */
struct ing_webhook_ev {
    const char *psp, *webhook_id, *event_id, *verification; /* event_id NULL: none */
    int64_t received_s;
    json_t *headers;
};
int ing_text_webhook(struct ing_req *r, const struct ing_webhook_ev *w, struct ing_problem *p);
/* A settlement row of r's file as a SettlementRow event (*buf, malloc'd) and its message
 * id; 0 or -1. */
int ing_text_settle_row(const struct ing_req *r, const struct ing_settle_row *row,
                        char msg_id[KS_ID_LEN], void **buf, size_t *len);

/* store.c: carries r->claim_str and r->fin_str to ingress_batch(); each outcome goes to
 * the callbacks, on a writer thread */
struct ing_store_ops {
    /* the claim's outcome (an ingress_batch row), or NULL + why there is none */
    void (*claimed)(struct ing_req *r, json_t *res, const char *why);
    /* the finish committed (1) or not (0; a complete one is kept and retried) */
    void (*finished)(struct ing_req *r, int recorded);
    /* about every 10 ms, on a thread of its own that waits for nothing else */
    void (*tick)(void);
};
int ing_store_start(const struct ing_store_ops *ops);
/* Stops the writers and the housekeeping, tick and purge threads, waiting for them until
 * ING.stop_by_us: 0, or -1 (logged: which thread) when one is still in a statement the
 * database does not answer (nothing interrupts a libpq call). After -1 the caller exits
 * without them; it must not call this again (threads half joined). */
int ing_store_stop(void);
/* t joined by ING.stop_by_us: 0, or -1 + a line naming what did not stop (main.c): an
 * error, or a warning for a thread that holds nothing (the stop is not failed by it) */
int ing_join_by(pthread_t t, const char *what, int holds_nothing);
void ing_store_claim(struct ing_req *r);
void ing_store_finish(struct ing_req *r); /* r->fin_complete says which */
/* 1 when partner's key belongs to a request whose finish could not be recorded: its
 * retry takes the record over at once */
int ing_store_forced(const char *partner, const char *key_hash);
struct ing_store_stats {
    long batches, claims, finishes, exec_us; /* exec_us: wall time in ingress_batch() */
};
void ing_store_stats(struct ing_store_stats *out);
struct ing_store_health {
    long purged, unresolved, pending_finishes;
};
void ing_store_health(struct ing_store_health *out);

/* publish.c */
int ing_publish_start(void);
/* flushes for what is left until ING.stop_by_us (1 s at least), then closes the producer */
void ing_publish_stop(void);
/* Produces r->payload to r->topic with key r->msg_key; its delivery report goes to
 * delivered; 0, or -1 when refused at once. */
int ing_produce(struct ing_req *r, void (*delivered)(struct ing_req *r, const char *err));
/* The same for any bytes, reported to r->delivered (set before); flags: */
#define ING_PRODUCE_BLOCK 0x1u    /* wait for room in the producer's queue */
#define ING_PRODUCE_UPLOADER 0x2u /* headers naming who uploaded (settlement rows) */
int ing_produce_bytes(struct ing_req *r, const char *topic, const char *key, const void *buf,
                      size_t len, const char *msg_id, unsigned flags);

#endif
