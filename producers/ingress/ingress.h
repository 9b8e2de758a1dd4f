/* ingress.h - private interfaces between the ingress's files.
 *
 *   main.c      CLI (serve, partner, key, routes, codes), config, start/stop
 *   http.c      libmicrohttpd server: body accumulation, routing, responses, metrics, logs
 *   handlers.c  one function per endpoint
 *   auth.c      API keys (Basic), JWTs (Bearer), token exchange, scopes, rate limits
 *   store.c     group-commit writer threads: idempotency claims and finishes in PostgreSQL
 *   publish.c   the Kafka producer, its delivery-report thread, event building
 *   validate.c  pure request parsing (validate.h)
 *
 * A request lives in one struct ing_req from the first MHD callback to the completion
 * notification. Requests that publish are suspended (MHD_suspend_connection) and resumed by
 * whichever thread finishes them (writer or delivery-report thread) through ing_req_done. */
#ifndef ING_INGRESS_H
#define ING_INGRESS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <microhttpd.h>
#include <librdkafka/rdkafka.h>

#include "lib/config.h"
#include "lib/db.h"
#include "lib/ids.h"
#include "lib/jsonw.h"
#include "producers/ingress/validate.h"

enum ing_route {
    R_TOKEN, R_PAY_POST, R_PAY_GET, R_PAY_LIST, R_REFUND_POST, R_REFUND_GET, R_PAYOUT_POST,
    R_PAYOUT_GET, R_WEBHOOK, R_SETTLE, R_RECON_GET, R_ADMIN_PARTNERS, R_ADMIN_HOLDS, R_HEALTH,
    R_READY, R_METRICS, R_OPENAPI, R_UNKNOWN, R__COUNT
};

struct ing_route_def {
    enum ing_route id;
    const char *method;
    const char *path; /* OpenAPI form, "/v1/payments/{id}" */
    unsigned scope;   /* ING_SCOPE_* needed, 0: no partner auth */
};
extern const struct ing_route_def ing_routes[];
extern const size_t ing_routes_count;

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
#define ING_SCOPE_COUNT 9
#define ING_SCOPES_DEFAULT 0x0ffu /* everything but admin */
extern const char *const ing_scope_names[ING_SCOPE_COUNT];
/* "a b c" or "a,b,c" -> bits; -1 for an unknown name. */
long ing_scopes_parse(const char *s);
/* bits -> "a b c" into buf */
void ing_scopes_format(unsigned bits, char *buf, size_t len);

enum ing_kind { K_SYNC, K_STORE, K_DIRECT, K_MULTI };
enum ing_state { S_NEW, S_SUSPENDED, S_DONE };

struct ing_req {
    struct MHD_Connection *conn;
    enum ing_route route;
    const struct ing_route_def *rdef;
    char method[8];
    char url[256];
    char trace_id[33];
    char span_id[17];
    int64_t t0_us;
    char *body;
    size_t len, cap, max;
    int too_large;
    _Atomic int state;
    enum ing_kind kind;

    /* auth */
    char partner_id[KS_ID_LEN];
    char cred_id[KS_ID_LEN];
    unsigned scopes;

    /* response */
    int status;
    char *resp;
    size_t resp_len;
    const char *ctype;
    const char *code; /* problem code, for logs and metrics */
    int retry_after;  /* seconds, 0: none */
    int replayed;
    int sent;

    /* idempotent writes (K_STORE) */
    const char *route_name; /* "payments" | "refunds" | "payouts" */
    char key_hash[65];
    char fp[65];
    char rid[KS_ID_LEN];
    struct ks_jw claim; /* the claim's members, as the handler writes them (store.c sends
                         * them to ingress_batch) */
    char *row;       /* payments: the members the complete finish adds, the rows it
                      * inserts (migration 205): "orders":[...],"checkout":...,"buyer":... */
    char *claim_str, *fin_str; /* serialized off the writer threads */
    json_t *parsed;  /* the request's root object (parsed structs borrow from it) */
    union {
        struct ing_payment pay;
        struct ing_refund refund;
        struct ing_payout payout;
    } u;
    int fin_complete; /* finish op: 1 complete, 0 release */
    int fin_store;    /* the complete finish stores the answer (migration 207) */
    struct ing_req *next;

    int64_t t_claim, t_claimed, t_dr; /* monotonic us, for the debug timing line */

    /* publishing */
    void *payload;
    size_t payload_len;
    const char *topic;
    char msg_key[160];
    char msg_id[KS_ID_LEN];
    _Atomic long pending;   /* K_MULTI: messages not yet confirmed (+1 while producing) */
    _Atomic long failed;    /* K_MULTI: messages refused */
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
    const char *wh_stripe, *wh_xendit, *wh_midtrans, *wh_sandbox;
    int writers, batch_max;
    int64_t gather_us;
    _Atomic int kafka_ok, pg_ok;
    _Atomic int stopping;
};
extern struct ing_ctx ING;

/* http.c */
extern _Atomic long ing_inflight; /* suspended requests */
int ing_http_start(int port, int threads);
void ing_http_quiesce(void);
void ing_http_stop(void);
void ing_req_done(struct ing_req *r); /* resumes a suspended request (any thread) */
void ing_suspend(struct ing_req *r);
void ing_respond_json(struct ing_req *r, int status, json_t *body); /* steals body */
void ing_respond_problem(struct ing_req *r, const struct ing_problem *p);
void ing_respond_problem_x(struct ing_req *r, const struct ing_problem *p, json_t *extra);
char *ing_problem_body(const struct ing_req *r, const struct ing_problem *p, json_t *extra,
                       size_t *len);
const char *ing_header(struct ing_req *r, const char *name);
void ing_metrics_write(char **out, size_t *len);

/* handlers.c */
void ing_handle(struct ing_req *r);
/* K_MULTI: drops one hold; the last one answers. */
void ing_multi_release(struct ing_req *r);

/* admin_holds.c: held payments and payouts (kasir-risk) */
enum ing_route ing_admin_holds_route(const char *url, const char *method);
void ing_admin_holds(struct ing_req *r);

/* auth.c */
int ing_auth_init(void);
/* Authenticates r (fills partner_id, cred_id, scopes), checks need and the rate limit. */
int ing_authenticate(struct ing_req *r, unsigned need, struct ing_problem *p);
void ing_token_exchange(struct ing_req *r);
/* thread-local PostgreSQL connection of the calling server thread (NULL + p when down) */
struct ks_db *ing_thread_db(struct ing_problem *p);

/* store.c */
int ing_store_start(void);
void ing_store_stop(void);
void ing_store_claim(struct ing_req *r);  /* r suspended; result comes back via publish */
void ing_store_finish(struct ing_req *r, int complete);
struct ing_store_stats {
    long batches, claims, finishes, exec_us; /* exec_us: wall time in ingress_batch() */
};
void ing_store_stats(struct ing_store_stats *out);

/* publish.c */
int ing_publish_start(void);
void ing_publish_stop(void);
/* Sets r's response to a JSON text (taken, may be NULL: out of memory) */
void ing_respond_text(struct ing_req *r, int status, char *json, size_t len);
/* Sets r's response to the answer stored in an ingress_batch outcome ("status", base64
 * "body"), leaving r's state as it is; 0, or -1 when there is none or it cannot be read. */
int ing_respond_stored(struct ing_req *r, json_t *res);
/* Produces r->payload to r->topic with key r->msg_key; 0, or -1 when refused at once. */
int ing_produce(struct ing_req *r);
int ing_produce_bytes(struct ing_req *r, const char *topic, const char *key, const void *buf,
                      size_t len, const char *msg_id, int block);
/* Payments: the 202 body (set as r's response) and the rows of the finish, for r->rid;
 * 0, or -1 when out of memory (r then holds a 500). */
int ing_payment_texts(struct ing_req *r);
/* An amount in the API's decimal form ("150000.00") */
void ing_amount_fmt(int64_t minor, const char *cur, char buf[KS_MONEY_STRLEN]);
/* Builds the event and the success response of a claimed write; 0 or -1 + p. */
int ing_build_claimed(struct ing_req *r, json_t *claim_result, struct ing_problem *p);

int64_t ing_now_us(void);
int64_t ing_mono_us(void); /* CLOCK_MONOTONIC */

#endif
