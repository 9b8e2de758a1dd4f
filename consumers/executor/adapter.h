/* adapter.h - one interface for every PSP kasir-executor talks to: sandbox, Stripe, Xendit,
 * Midtrans (Core API and Iris).
 *
 * An adapter is pure. It turns a command into HTTP requests and the PSP's answers into a
 * verdict, and does nothing else: no sockets, no PostgreSQL, no Kafka, no clock, no state
 * kept between calls. The executor core owns the transport (libcurl multi), the journal
 * ("attempt committed before the call"), retries, circuit breakers, failover and the
 * outcome message. Keeping adapters pure is what lets each one be tested byte for byte
 * against its PSP's documented request and response fixtures, without a network
 * (tests/unit/test_executor_<psp>.c).
 *
 * A call is a short sequence of steps: most operations are one request; a Stripe card
 * charge may be two (create the PaymentIntent, confirm it). The core asks build() for step
 * 0, sends it, and hands the answer to parse(). parse() either ends the call with a verdict
 * or answers EX_NEXT, and the core asks build() for the next step, passing the result so
 * far (res->psp_reference carries what the PSP returned, e.g. the PaymentIntent id).
 *
 * An outcome that is unknown (a timeout after the request was sent, a dropped connection,
 * a 5xx the PSP documents as "may have been processed", a 2xx the adapter cannot read) is
 * never resent blind: the core first runs the status sequence (build_status/parse_status),
 * keyed by what the PSP can be asked by (the merchant reference derived from Kasir's ids,
 * or res->psp_reference when one is known). Only EX_ABSENT ("the PSP has no such
 * operation") makes a resend safe; the idempotency key is sent again anyway.
 *
 * Transport failures are the core's to classify, not the adapter's: nothing sent
 * (connection refused, DNS) is EX_RETRY; anything after the first request byte left is
 * EX_UNKNOWN. */
#ifndef KS_EXECUTOR_ADAPTER_H
#define KS_EXECUTOR_ADAPTER_H

#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "lib/err.h"

enum ex_op {
    EX_OP_CHARGE,
    EX_OP_REFUND,
    EX_OP_PAYOUT,
};

/* A name/value pair: command details in, next_action out. */
struct ex_kv {
    const char *name;
    const char *value;
};

/* What the core knows about the operation. Strings are never NULL: "" when absent. */
struct ex_cmd {
    enum ex_op op;
    const char *command_id; /* Kasir's id of the command, the same across retries */
    const char *partner_id;
    const char *payment_id; /* CHARGE, REFUND */
    const char *order_id;   /* CHARGE, REFUND: the merchant reference the PSP keeps */
    const char *refund_id;  /* REFUND: its merchant reference */
    const char *payout_id;  /* PAYOUT: its merchant reference */
    const char *idem_key;   /* psp_idempotency_key: deterministic, sent as the PSP's header */
    int64_t amount_minor;   /* > 0, minor units of currency (lib/money.h exponents) */
    const char *currency;   /* ISO 4217 */
    const char *method;     /* CARD, VIRTUAL_ACCOUNT, QRIS, EWALLET, BANK_TRANSFER */
    const struct ex_kv *details; /* command details: payment_token, bank_code, ewallet_channel,
                                  * destination_account, account_holder, ... */
    size_t n_details;
    const char *charge_ref; /* REFUND: the PSP's reference of the captured charge */
};

/* Where and how to reach one PSP; from the executor's settings, secrets never logged. */
struct ex_conf {
    const char *base_url;        /* e.g. https://api.stripe.com, or the sandbox's URL */
    const char *secret;          /* API secret / server key */
    const char *payout_base_url; /* Midtrans Iris; "" when the PSP uses base_url */
    const char *payout_secret;   /* Midtrans Iris creator key; "" when not used */
    const char *notify_url;      /* where the PSP should send webhooks, "" for its default */
};

/* One HTTP request. The core owns the memory (ex_req_init/ex_req_release) and reuses it. */
struct ex_req {
    const char *method;       /* "GET" or "POST", static */
    const char *content_type; /* static; NULL when there is no body */
    struct ks_buf url;        /* absolute: conf->base_url + path + query */
    struct ks_buf body;
    /* Extra header lines, each "Name: value\n" (Authorization, Idempotency-Key, ...). May
     * hold a secret: the core never logs them. */
    struct ks_buf headers;
};

enum ex_verdict {
    EX_NEXT,             /* this step is done; build the next one */
    EX_SUCCEEDED,        /* money moved (charge captured, refund or payout done) */
    EX_PENDING_CUSTOMER, /* waiting for the buyer (VA, QRIS, e-wallet): next_action set */
    EX_PENDING,          /* accepted, the result comes by webhook (payouts, refunds) */
    EX_FAILED,           /* final refusal (decline, invalid account): failure_code set */
    EX_RETRY,            /* the PSP did not act (5xx before running, 429, lock): resend later */
    EX_UNKNOWN,          /* the PSP may have acted: resolve by status before any resend */
    EX_ABSENT,           /* status sequence only: the PSP has no such operation */
};

#define EX_MAX_NEXT_ACTION 6

struct ex_result {
    enum ex_verdict verdict;
    char psp_reference[128]; /* the PSP's id of the operation (pi_..., VA id, transaction_id) */
    int64_t amount_minor;    /* as the PSP reports it, minor units; 0 when not reported */
    int64_t fee_minor;       /* 0 when unknown */
    char failure_code[64];   /* normalized, e.g. card_declined, insufficient_funds */
    char failure_message[256]; /* the PSP's text, never card data */
    /* PENDING_CUSTOMER: va_number, bank_code, qr_string, redirect_url, expires_at
     * (RFC 3339 UTC). Values point into next_action_buf. */
    struct ex_kv next_action[EX_MAX_NEXT_ACTION];
    size_t n_next_action;
    char next_action_buf[1024];
};

struct ex_adapter {
    const char *name; /* the command's psp field: "sandbox", "stripe", "xendit", "midtrans" */
    /* 1 when this adapter can run op for method (and currency), else 0. */
    int (*supports)(enum ex_op op, const char *method, const char *currency);
    /* Request for step of the operation; prev is the result of step-1 (NULL for step 0).
     * Bad command data (a missing payment_token, an amount the PSP cannot take) is
     * KS_INVALID naming the field: the core fails the order, it is never sent. */
    enum ks_code (*build)(const struct ex_conf *conf, const struct ex_cmd *cmd, int step,
                          const struct ex_result *prev, struct ex_req *req, struct ks_err *err);
    /* Reads the answer of step (http_status 100-599, body as received, not NUL-terminated)
     * into res. A body it cannot read is EX_UNKNOWN, never an error. */
    void (*parse)(const struct ex_conf *conf, const struct ex_cmd *cmd, int step,
                  long http_status, const char *body, size_t len, struct ex_result *res);
    /* The status sequence for an operation whose outcome is unknown; prev->psp_reference
     * is "" when the PSP never told one. Same step rules. */
    enum ks_code (*build_status)(const struct ex_conf *conf, const struct ex_cmd *cmd, int step,
                                 const struct ex_result *prev, struct ex_req *req,
                                 struct ks_err *err);
    void (*parse_status)(const struct ex_conf *conf, const struct ex_cmd *cmd, int step,
                         long http_status, const char *body, size_t len,
                         struct ex_result *res);
};

extern const struct ex_adapter ex_adapter_sandbox;
extern const struct ex_adapter ex_adapter_stripe;
extern const struct ex_adapter ex_adapter_xendit;
extern const struct ex_adapter ex_adapter_midtrans;

/* The adapter named name, or NULL. */
const struct ex_adapter *ex_adapter_find(const char *name);

void ex_req_init(struct ex_req *req);
/* Empties req for the next build, keeping its memory. */
void ex_req_reset(struct ex_req *req);
void ex_req_release(struct ex_req *req);
/* Clears res (verdict EX_UNKNOWN, empty strings) before a parse. */
void ex_result_clear(struct ex_result *res);
/* Appends a next_action pair, copying both strings into res->next_action_buf; 0, or -1 when
 * it does not fit (the pair is dropped). */
int ex_result_add_next(struct ex_result *res, const char *name, const char *value);

#endif
