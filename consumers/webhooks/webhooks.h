/* webhooks.h - kasir-webhooks' reading of PSP notifications (parse.c).
 *
 * wh_parse turns one verified notification (the raw body the ingress kept, and the PSP it
 * came from) into what it says about one Kasir operation: which operation (kind and
 * Kasir's reference: the order id, refund id or payout id the executor sent as the PSP's
 * merchant reference), the normalized state reached, the amount the PSP reports, the PSP's
 * own reference, and for a pending payment what the buyer must do. A notification that
 * tells nothing Kasir reports (a VA being created, an event type no outcome follows from)
 * is WH_NONE with the reason in note->reason. Pure: no I/O, no clock, no state.
 *
 * What each PSP sends, and where it is documented, is in README.md "What is read". */
#ifndef KS_WEBHOOKS_H
#define KS_WEBHOOKS_H

#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"

enum wh_kind { WH_NONE, WH_CHARGE, WH_REFUND, WH_PAYOUT };

/* Normalized states, in the order of the OutcomeStatus enum of psp_outcome.v1.avsc. */
enum wh_status { WH_SUCCEEDED, WH_FAILED, WH_PENDING_CUSTOMER, WH_EXPIRED, WH_REFUNDED,
                 WH_PAID_OUT };

#define WH_MAX_NEXT 4

struct wh_note {
    enum wh_kind kind;
    enum wh_status status;
    char reference[128];     /* Kasir's order, refund or payout id */
    char psp_reference[128]; /* the PSP's id of the operation (pi_..., VA id, ...) */
    /* appended to the ingress's event id for the dedup key, when one PSP event id covers
     * several events (Midtrans: ":" + transaction_status); "" otherwise */
    char key_suffix[48];
    int has_amount;          /* 0 when the notification carries no amount */
    int64_t amount_minor;
    char currency[4];
    int64_t fee_minor;       /* 0 when not told */
    char failure_code[64];
    char failure_message[256];
    const char *next_name[WH_MAX_NEXT]; /* static names: va_number, bank_code, qr_string, */
    char next_value[WH_MAX_NEXT][256];  /* redirect_url, expires_at */
    int n_next;
    char reason[160];        /* WH_NONE: why nothing is reported */
};

/* Reads body (len bytes, not NUL-terminated) sent by psp ("stripe", "xendit", "midtrans",
 * "sandbox") into note. KS_OK with note->kind WH_NONE when nothing is to be reported.
 * KS_EINVAL, never retriable, naming the field and the reason in err, for a body that is
 * not the PSP's format, a field missing or malformed, a Midtrans status that its signed
 * status_code contradicts, or an unknown psp. */
enum ks_code wh_parse(const char *psp, const void *body, size_t len, struct wh_note *note,
                      struct ks_err *err) __attribute__((warn_unused_result));

/* 1 when verification (WebhookReceived.verification) is the scheme the ingress checks
 * for psp: a notification that names another was not verified as its PSP signs. */
int wh_verification_ok(const char *psp, const char *verification);

/* "CHARGE", "REFUND", "PAYOUT" ("" for WH_NONE); the OutcomeStatus symbol of s. */
const char *wh_kind_name(enum wh_kind k);
const char *wh_status_name(enum wh_status s);
/* 1 for a state no operation leaves (every state but WH_PENDING_CUSTOMER). */
int wh_status_final(enum wh_status s);

/* --- the state machine of one operation (state.c) ----------------------------------- */

enum wh_result {
    WH_APPLIED,   /* a forward transition: recorded and reported */
    WH_DUPLICATE, /* the operation is already in that state */
    WH_STALE,     /* the operation is further (a regression, a pending after the payment) */
    WH_LATE,      /* a charge's success after it failed or expired: reported once, the
                   * operation stays final */
};
/* "applied", "duplicate", "stale", "late_success" (webhook_events.result). */
const char *wh_result_name(enum wh_result r);

/* What notification state to is for an operation of kind k in state cur (-1: no state
 * known yet); late_done: its late success was reported already. A final state is never
 * left; a pending after anything is not news (paid-before-pending). */
enum wh_result wh_decide(enum wh_kind k, int cur, int late_done, enum wh_status to);

/* The OutcomeStatus symbol st as an enum wh_status, -1 when it is none. */
int wh_status_parse(const char *st);
/* What the status column of payment_orders (CHARGE), refunds (REFUND) or payouts
 * (PAYOUT) says in outcome terms, -1 when it is neither pending nor final (NOT_STARTED,
 * EXECUTING, REQUESTED, HELD, ...). */
int wh_table_state(enum wh_kind k, const char *st);

#endif
