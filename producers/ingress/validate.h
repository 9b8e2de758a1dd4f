/* validate.h - strict parsing of the ingress's request bodies, and the problem catalogue.
 *
 * Pure functions (no I/O, no globals): linkable into unit tests and the fuzz target
 * without the server. Every refusal fills a struct ing_problem with the HTTP status, the
 * stable machine code of ing_codes[], the field at fault (JSON path) and the reason.
 * Parsed structs borrow their strings from root: they live until json_decref(root). */
#ifndef ING_VALIDATE_H
#define ING_VALIDATE_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "lib/ids.h"
#include "lib/money.h"

struct ing_problem {
    int status;
    const char *code; /* one of ing_codes[].code */
    char field[96];
    char detail[256];
};

struct ing_code_def {
    const char *code;
    int status;
    const char *title;
};
extern const struct ing_code_def ing_codes[];
extern const size_t ing_codes_count;

/* Sets p (status from the catalogue; 500 "internal" if code is unknown). */
void ing_problem(struct ing_problem *p, const char *code, const char *field, const char *fmt,
                 ...) __attribute__((format(printf, 4, 5)));

/* Bounds (documented in producers/ingress/README.md and the OpenAPI document). */
#define ING_MAX_ORDERS 20
#define ING_MAX_METADATA 20
#define ING_ID_MAX 64       /* buyer id, seller id, checkout id */
#define ING_IDEM_KEY_MAX 255

enum ing_method { ING_CARD, ING_VA, ING_QRIS, ING_EWALLET, ING_BANK };
extern const char *const ing_method_avro[]; /* "CARD", "VIRTUAL_ACCOUNT", ... */
extern const char *const ing_method_api[];  /* "card", "virtual_account", ... */

struct ing_order {
    const char *seller_id;
    struct ks_money amount;
    enum ing_method method;
    const char *psp;          /* or NULL */
    const char *payment_token; /* CARD only */
    const char *bank_code;    /* VIRTUAL_ACCOUNT, BANK_TRANSFER */
    const char *ewallet;      /* EWALLET */
    char oid[KS_ID_LEN];      /* derived from the payment id by publish.c, not parsed */
};

struct ing_payment {
    json_t *root;
    const char *idempotency_key; /* from the body, or NULL */
    const char *buyer_id;
    const char *checkout_id;
    size_t n_orders;
    struct ing_order orders[ING_MAX_ORDERS];
    json_t *metadata; /* borrowed; an object of strings, maybe empty; NULL when absent */
};

struct ing_refund {
    json_t *root;
    const char *idempotency_key;
    const char *order_id;
    int has_amount;
    struct ks_money amount; /* when has_amount; currency "" when it was not given: the
                             * amount (amount_text) is then in the order's currency */
    const char *amount_text;
    const char *reason;     /* or NULL */
};

struct ing_payout {
    json_t *root;
    const char *idempotency_key;
    const char *seller_id;
    struct ks_money amount;
    const char *channel; /* "BANK_ACCOUNT" | "EWALLET" */
    const char *bank_code, *ewallet, *destination, *holder, *description; /* or NULL */
};

struct ing_token_req {
    json_t *root;
    const char *key_id;
    int64_t timestamp;
    const char *nonce;
    const char *signature; /* 64 lower-case hex digits */
    const char *scope;     /* space-separated subset, or NULL for all of the key's scopes */
};

/* Each returns 0 and fills out (caller json_decref(out->root)), or -1 and fills p. */
int ing_parse_payment(const char *body, size_t len, struct ing_payment *out,
                      struct ing_problem *p);
int ing_parse_refund(const char *body, size_t len, struct ing_refund *out,
                     struct ing_problem *p);
int ing_parse_payout(const char *body, size_t len, struct ing_payout *out,
                     struct ing_problem *p);
int ing_parse_token_req(const char *body, size_t len, struct ing_token_req *out,
                        struct ing_problem *p);

/* Idempotency key: 1..255 printable ASCII without spaces at either end. */
int ing_idem_key_ok(const char *k);
/* Merges header and body keys: both present must be equal. Sets *out. 0 or -1 + p. */
int ing_idem_key_pick(const char *header, const char *body, const char **out,
                      struct ing_problem *p);

/* 1 when s holds a run of 13-19 digits (spaces/dashes allowed between) that passes the
 * Luhn check: card data that must never enter Kasir. */
int ing_has_card_number(const char *s);

/* --- settlement files (CSV, RFC 4180) ------------------------------------------------- */

struct ing_settle_row {
    long line;             /* 1-based line in the file */
    const char *reference; /* fields point into the parser's own copy */
    int64_t amount_minor, fee_minor;
    char currency[4];
    const char *status;    /* normalized: settled, refunded, paid_out, failed */
    int64_t settled_at_us;
    json_t *raw;           /* header name -> original text (new reference) */
};

/* Callback per valid row; return non-zero to stop. */
typedef int (*ing_settle_cb)(const struct ing_settle_row *row, void *opaque);

/* Parses a whole file of layout format ("sandbox" or "generic", see README.md). Rows are
 * validated first; cb runs only when every row is valid (nothing is published from an
 * invalid file). Returns the number of rows, or -1 + p naming line and column. */
long ing_settle_parse(const char *data, size_t len, const char *format, ing_settle_cb cb,
                      void *opaque, struct ing_problem *p);

/* RFC 3339 UTC ("2024-05-01T10:00:00Z", optional fraction) -> microseconds; -1 if bad. */
int64_t ing_parse_rfc3339(const char *s);

#endif
