/* sandbox.h - kasir-psp-sandbox: a PSP simulator that speaks Stripe's, Xendit's and
 * Midtrans' wire formats (see README.md for what each PSP module answers and where its
 * formats come from).
 *
 * Shape: one libmicrohttpd daemon (thread pool over poll()). A request is read whole, then
 * handled in one go under the store lock (everything lives in memory, so a call costs
 * microseconds); its answer is either queued at once or, when latency or a held timeout
 * applies, the connection is suspended and a timer thread resumes it when due. Webhooks
 * go through a due-time queue drained by sender threads with libcurl. */
#ifndef SB_SANDBOX_H
#define SB_SANDBOX_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "lib/config.h"

/* --- the PSP call: what a PSP module sees and answers ------------------------------ */

struct sb_call {
    const char *method;  /* "GET", "POST" */
    const char *path;    /* without the query string */
    const char *body;    /* NUL-terminated copy of the request body */
    size_t len;
    void *conn;          /* struct MHD_Connection *, for sb_header/sb_query */
    int force_decline;   /* fault injection: decline this charge */
};

struct sb_resp {
    int status;
    char *body;          /* malloc'd; owned by the response */
    const char *ctype;   /* static string */
    int replayed;        /* Stripe: Idempotent-Replayed: true */
    char request_id[40]; /* Stripe: Request-Id */
};

/* Request header or query argument (NULL when absent). */
const char *sb_header(const struct sb_call *c, const char *name);
const char *sb_query(const struct sb_call *c, const char *name);

/* Fills r with status and a JSON body (takes the reference of body). */
void sb_respond_json(struct sb_resp *r, int status, json_t *body);
void sb_respond_text(struct sb_resp *r, int status, const char *ctype, char *text);

/* Each PSP module: returns 1 when the path is its own (r filled), 0 otherwise. Runs with
 * the store lock held. */
int sb_stripe_handle(const struct sb_call *c, struct sb_resp *r);
int sb_xendit_handle(const struct sb_call *c, struct sb_resp *r);
int sb_midtrans_handle(const struct sb_call *c, struct sb_resp *r);
int sb_native_handle(const struct sb_call *c, struct sb_resp *r); /* /sandbox/v1/ */
/* 0 when list is a valid webhook.sandbox_events value, else -1 with msg naming the entry. */
int sb_native_events_check(const char *list, char *msg, size_t cap);
/* The PSP a path belongs to ("stripe", "xendit", "midtrans", "sandbox") or NULL. */
const char *sb_psp_of_path(const char *path);
/* 1 if path is Midtrans Iris's (/api/v1/payouts..., also under /iris), by its prefix: an
 * order id holding "/payouts" is still Core API's */
int sb_iris_path(const char *path);
/* A 5xx in the PSP's own error shape (fault injection). */
void sb_psp_5xx(const char *psp, struct sb_resp *r);
/* Is this call one that creates a charge or payout (where a decline applies)? */
int sb_is_charge_call(const char *psp, const char *method, const char *path);

/* Sandbox control API (/_sandbox/...): events, ledger, faults, settlement files. */
int sb_control_handle(const struct sb_call *c, struct sb_resp *r);

/* --- settings and global state ------------------------------------------------------ */

struct sb_faults {
    int decline_pct, error_pct, timeout_pct; /* 0..100 */
    int latency_ms, jitter_ms;
    int hold_ms;          /* a timeout-after-charge holds the connection this long, then drops */
    uint64_t seed;
};

struct sb_ctx {
    const struct ks_config *cfg;
    const char *stripe_key, *stripe_whsec;
    const char *xendit_key, *xendit_token;
    const char *midtrans_key, *iris_key, *iris_merchant_key;
    const char *native_key, *native_whsec; /* the sandbox's own API; Standard Webhooks */
    const char *native_events; /* its endpoint's subscription: "*" or "type[:method],..." */
    const char *hook_base; /* e.g. http://127.0.0.1:8080/v1/webhooks */
    const char *hook_stripe, *hook_xendit, *hook_midtrans, *hook_iris, *hook_native;
    int hook_attempts;
    int64_t payout_delay_ms;
    struct sb_faults faults;
    volatile int stopping;
};
extern struct sb_ctx SB;

/* --- the store (store.c): everything the sandbox knows, behind one lock --------------- */

void sb_lock(void);
void sb_unlock(void);
int sb_store_init(void);
void sb_store_reset(void); /* forget every object, key, ledger entry and webhook log */
/* The most keys one jansson object of the maps holds (they are sharded, store.c; lock
 * held). For tests/unit/test_sandbox_store.c. */
size_t sb_store_largest_object(void);

/* New id: prefix + 24 random-looking characters ("pi_", "re_", "qr_" ...). */
void sb_new_id(const char *prefix, char *out, size_t cap);
/* Uniform 0..99 from the seeded generator (lock held). */
int sb_roll(void);
void sb_reseed(uint64_t seed);

/* Objects by id: the store keeps its own reference; NULL when absent. */
json_t *sb_obj_get(const char *kind, const char *id);
void sb_obj_put(const char *kind, const char *id, json_t *obj); /* steals obj */
/* Secondary index (external_id, order_id...) -> id. */
const char *sb_ref_get(const char *kind, const char *ref);
void sb_ref_put(const char *kind, const char *ref, const char *id);

/* Idempotency: scope is "<psp>:<credential hash>:<key>"; fp the request fingerprint.
 * SB_IDEM_NEW: nothing stored; SB_IDEM_HIT: r filled with the stored answer;
 * SB_IDEM_MISMATCH: the key was used with another request. */
enum sb_idem { SB_IDEM_NEW, SB_IDEM_HIT, SB_IDEM_MISMATCH };
enum sb_idem sb_idem_lookup(const char *scope, const char *fp, struct sb_resp *r);
void sb_idem_store(const char *scope, const char *fp, const struct sb_resp *r);
/* The lookup a PSP module makes for an idempotency key: scope "<psp>:<hash of cred>:<key>"
 * and the fingerprint of c's method, path and params (sorted JSON) are written to scope
 * (400 bytes) and fp, for sb_idem_store once the call has run. */
enum sb_idem sb_idem_check(const char *psp, const char *cred, const char *key,
                           const struct sb_call *c, json_t *params, char *scope, char fp[65],
                           struct sb_resp *r);

/* The ledger: every charge, refund and payout the sandbox accepted. kind "charge",
 * "refund", "payout"; ref is the merchant's reference (order id, external id...). */
json_t *sb_ledger_add(const char *psp, const char *kind, const char *object_id,
                      const char *ref, const char *idem_key, int64_t amount_minor,
                      const char *currency, const char *method); /* borrowed; NULL: none */
json_t *sb_ledger_query(const char *psp, const char *kind); /* new reference */
json_t *sb_ledger_entries(void);                            /* borrowed; lock held */
/* A refund of refund_of (the charge's id: payment intent, order, charge) into the ledger,
 * as sb_ledger_add with kind "refund", and its amount added to refund_of's total (not when
 * the entry could not be written: NULL). */
json_t *sb_ledger_add_refund(const char *psp, const char *refund_of, const char *object_id,
                             const char *ref, const char *idem_key, int64_t amount_minor,
                             const char *currency, const char *method); /* borrowed entry */
/* Minor units refunded so far against object_id (a look-up, not a scan of the ledger). */
int64_t sb_ledger_refunded(const char *psp, const char *object_id);

/* Time helpers. */
int64_t sb_now_us(void);
/* "2024-07-04T10:53:53.123Z" (ms=1) or "2024-07-04T10:53:53Z"; tz_hours shifts the clock
 * and, when sep is ' ', gives Midtrans' "2024-07-04 17:53:53" (local time, no zone). */
void sb_time_iso(int64_t us, int ms, char *out, size_t cap);
void sb_time_local(int64_t us, int tz_hours, char *out, size_t cap);

/* Amounts as the PSPs write them: "145000.00" (Midtrans gross_amount). */
void sb_amount_str(int64_t minor, const char *currency, char *out, size_t cap);
int sb_currency_exp(const char *currency);

/* --- webhooks (notify.c) ------------------------------------------------------------- */

struct sb_hook_opts {
    int duplicates;    /* extra copies of each event */
    int out_of_order;  /* the earlier event of a pair arrives after the later one */
    int64_t delay_ms;  /* before the first delivery */
    /* when the event is due, the object_id of this kind is replaced by its copy under
     * "<kind>.final" (a payout is PENDING until its result is notified) */
    const char *apply_kind;
};

/* Queues a notification. psp selects the signature scheme: "stripe" (Stripe-Signature,
 * signed at send time), "xendit" (x-callback-token + webhook-id), "midtrans" (signature
 * in the body, already there), "iris" (Iris-Signature over the body), "sandbox" (Standard
 * Webhooks, signed at send time). body is taken over.
 * url NULL: the configured endpoint of that psp. Lock need not be held. */
void sb_hook_send(const char *psp, const char *event, const char *object_id, const char *url,
                  char *body, int64_t delay_ms);
/* Same, applying duplicates; order decides the pair slot (0 first, 1 second). */
void sb_hook_emit(const char *psp, const char *event, const char *object_id, const char *url,
                  json_t *body, const struct sb_hook_opts *o, int order);
int sb_hooks_start(int threads);
void sb_hooks_stop(void);
json_t *sb_hooks_log(void); /* new reference: every delivery and its attempts */
void sb_hooks_reset(void);

/* PSP events fired by the control API (lock held). Return 0, or -1 with msg set. */
int sb_stripe_event(const char *what, const char *id, const struct sb_hook_opts *o, char *msg,
                    size_t cap);
int sb_xendit_event(const char *what, const char *id, int64_t amount,
                    const struct sb_hook_opts *o, char *msg, size_t cap);
int sb_midtrans_event(const char *what, const char *id, const struct sb_hook_opts *o,
                      char *msg, size_t cap);
int sb_native_event(const char *what, const char *id, const struct sb_hook_opts *o, char *msg,
                    size_t cap);

/* --- settlement files (settle.c) ----------------------------------------------------- */

/* CSV of psp's settlement report for date (YYYY-MM-DD, UTC) from the ledger, in format
 * "native" (the PSP's layout) or "kasir" (the ingress's generic layout), with the
 * discrepancies of spec ("missing:1,amount:2,..."); injected gets one entry per change.
 * Returns a malloc'd CSV or NULL with msg set. Lock held. */
char *sb_settlement_csv(const char *psp, const char *date, const char *spec, const char *format,
                        uint64_t seed, json_t *injected, char *msg, size_t cap);

/* --- a due-time queue (heap.c), for delayed answers and webhooks ---------------------- */

struct sb_due {
    int64_t due_us;
    void *item;
};
/* Zero-initialise; not thread-safe (callers hold their own lock). */
struct sb_heap {
    struct sb_due *v;
    size_t n, cap;
};
int sb_heap_push(struct sb_heap *h, int64_t due_us, void *item); /* 0, or -1 out of memory */
void *sb_heap_pop(struct sb_heap *h);            /* the earliest item; NULL when empty */
int64_t sb_heap_next(const struct sb_heap *h);   /* its due time; INT64_MAX when empty */
void sb_heap_release(struct sb_heap *h);

/* --- small shared helpers ------------------------------------------------------------ */

/* Parses an application/x-www-form-urlencoded body (Stripe's encoding, with a[b]=c and
 * a[]=c / a[0]=c nesting) into an object. NULL with msg set on a malformed body. */
json_t *sb_form_parse(const char *s, size_t len, char *msg, size_t cap);
/* Basic-auth user name of an Authorization header, or the Bearer token; out "" if none. */
void sb_auth_user(const char *authz, char *out, size_t cap);
/* Fingerprint of a request for idempotency: hex SHA-256 of method, path and body. */
void sb_fingerprint(const char *method, const char *path, const char *canon, char out[65]);
/* Short hash of a credential, so scopes never hold a secret. */
void sb_cred_tag(const char *cred, char out[17]);
/* 1 if an idempotency key header fits the store: at most 255 bytes of UTF-8 (each PSP
 * answers a 0 in its own error format) */
int sb_idem_key_ok(const char *key);
/* 1 if path is prefix, an id of 1 to cap - 1 bytes holding no '/', then suffix ("" for
 * none), the id copied to id; 0 otherwise. The whole path must match: sscanf's %127[^/]
 * cut a longer id (a request for A + "ZZZ" answered for A) and accepted any text after it */
int sb_path_id(const char *path, const char *prefix, const char *suffix, char *id, size_t cap);

#endif
