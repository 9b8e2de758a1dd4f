/* risk.h - private interfaces between the files of kasir-risk.
 *
 *   main.c    the worker: validate hook, batch handler (decide, write, emit), main
 *   rules.c   the rules file: parsing with every problem reported, and the checks
 *   holds.c   `kasir-risk holds list|approve|reject`: the admin operations from a shell
 *
 * The rules are read once at start and never change while the daemon runs: a new file
 * means a restart (a rolling one across instances), so every decision of a batch is
 * taken under one set of rules. */
#ifndef RISK_H
#define RISK_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "lib/config.h"

enum risk_action { RISK_APPROVE = 0, RISK_REVIEW = 1, RISK_REJECT = 2 };
extern const char *const risk_action_names[3]; /* "APPROVE", "REVIEW", "REJECT" */

/* payment rails, in the order of the Avro enum kasir.payments.PaymentMethod */
enum risk_method { RM_CARD, RM_VIRTUAL_ACCOUNT, RM_QRIS, RM_EWALLET, RM_BANK_TRANSFER, RM__COUNT };
extern const char *const risk_method_names[RM__COUNT];
/* index of a method name, -1 when unknown */
int risk_method_parse(const char *s);

enum risk_rule_type { RT_AMOUNT_LIMIT, RT_VELOCITY, RT_BLOCKLIST, RT_NEW_BUYER_CAP };
enum risk_flow { RF_PAYMENT = 1, RF_PAYOUT = 2 };
enum risk_list { RL_BUYER, RL_SELLER, RL_CARD, RL_ACCOUNT };

/* One rule of the file, validated. Strings borrow from the parsed document, which lives
 * as long as the struct risk_rules. Amounts are minor units of currency; -1: not set. */
struct risk_rule {
    const char *id;
    enum risk_rule_type type;
    enum risk_action action;  /* REVIEW or REJECT */
    const char *reason;       /* reason code override, or NULL: the type's own codes */
    const char *partner;      /* only this partner's payments, or NULL: every partner */
    unsigned flow;            /* amount_limit: RF_PAYMENT or RF_PAYOUT */
    int method;               /* amount_limit: enum risk_method, -1 any */
    char currency[4];         /* "" when the rule has none (velocity counting every payment) */
    int64_t min, max;         /* amount_limit (per order / payout), new_buyer_cap (max) */
    int64_t window_us;        /* velocity: the window (t - window, t]; new_buyer_cap: age */
    int64_t max_count, max_amount; /* velocity */
    int velocity_idx;         /* velocity: position in the statistics arrays, else -1 */
    enum risk_list list;      /* blocklist */
    const char **values;      /* blocklist, sorted (strcmp) for bsearch */
    size_t nvalues;
};

struct risk_rules {
    json_t *doc;              /* the parsed file; the rules borrow from it */
    struct risk_rule *rule;
    size_t n;
    size_t n_velocity;        /* velocity rules, numbered 0..n_velocity-1 by velocity_idx */
    int new_buyer;            /* 1 when a new_buyer_cap rule exists */
    int64_t max_window_us;    /* the longest velocity window (history read per batch) */
};

/* Called once per problem: rule is the rule's id, or "rules[i]" when it has no usable id,
 * or NULL for the file itself; field is the JSON path at fault ("rules[3].max"). */
typedef void (*risk_report_fn)(void *ctx, const char *rule, const char *field, const char *msg);

/* Parses a rules document. Every problem is reported (not only the first); NULL when
 * there was any (*nproblems says how many), else the rules, freed with risk_rules_free. */
struct risk_rules *risk_rules_parse(const char *text, size_t len, risk_report_fn report,
                                    void *ctx, int *nproblems);
/* Reads path and parses it as above; an unreadable file is one problem. */
struct risk_rules *risk_rules_load(const char *path, risk_report_fn report, void *ctx,
                                   int *nproblems);
void risk_rules_free(struct risk_rules *rs); /* NULL ok */

/* --- the checks ------------------------------------------------------------------------
 * What a check sees of a payment or payout: plain values, borrowed from the message. */
struct risk_order {
    const char *order_id, *seller, *currency, *token, *psp, *bank_code, *ewallet;
    int64_t amount;
    int method; /* enum risk_method */
};
struct risk_payment {
    const char *partner, *payment_id, *buyer, *checkout;
    const char *card_fp;  /* metadata card_fingerprint, or NULL */
    int64_t at_us;        /* occurred_at */
    const struct risk_order *orders;
    size_t n_orders;
};
struct risk_payout {
    const char *partner, *payout_id, *seller, *currency, *account, *bank_code, *ewallet;
    int64_t amount;
    int method; /* RM_BANK_TRANSFER (bank account) or RM_EWALLET */
};
/* From PostgreSQL, per payment: for each velocity rule k, the buyer's payments in its
 * window and their sum in its currency, this payment included; and when the buyer was
 * first seen (this payment's time when never before). */
struct risk_stats {
    const int64_t *count, *sum; /* n_velocity entries each */
    int64_t first_us;
};

#define RISK_MAX_HITS 16
/* The outcome: the strongest action of the rules that fired and (up to RISK_MAX_HITS of)
 * their reason codes and rule ids. Zeroed = APPROVE, no reasons. */
struct risk_verdict {
    enum risk_action action;
    size_t n;
    const char *code[RISK_MAX_HITS];
    const char *rule[RISK_MAX_HITS];
};

/* Velocity windows. A window of rule r for a payment at time t (occurred_at, integer
 * microseconds) holds the buyer's payments at times in (t - window, t]: the lower bound
 * is excluded, so a payment exactly one window earlier has left it. risk_window_add adds
 * one payment of the buyer at time at with its amounts a[0..n-1] (per order or per
 * currency; a currency may repeat): it counts once when any amount is in the rule's
 * currency (or always, for a rule without one), and its amounts in that currency are
 * summed. The caller adds the payment itself, the buyer's history and the batch's
 * earlier payments of the buyer. */
struct risk_amount {
    const char *currency;
    int64_t minor;
};
void risk_window_add(const struct risk_rule *r, int64_t t, int64_t at,
                     const struct risk_amount *a, size_t n, int64_t *count, int64_t *sum);

/* Rules that need nothing but the message: amount limits and blocklists. */
void risk_check_payment(const struct risk_rules *rs, const struct risk_payment *p,
                        struct risk_verdict *v);
/* Rules over the buyer's history: velocity and new-buyer caps. */
void risk_check_history(const struct risk_rules *rs, const struct risk_payment *p,
                        const struct risk_stats *st, struct risk_verdict *v);
/* 1 when a new-buyer cap could fire for p, i.e. p pays more than a cap that applies to it:
 * only then does the buyer's first payment need to be looked up. */
int risk_needs_first_seen(const struct risk_rules *rs, const struct risk_payment *p);
void risk_check_payout(const struct risk_rules *rs, const struct risk_payout *p,
                       struct risk_verdict *v);

/* Durations of the rules file: "<digits><unit>", unit ms, s, m, h or d; -1 when bad. */
int64_t risk_duration_us(const char *s);

/* --- configuration ---------------------------------------------------------------------
 * The daemon's settings (risk.*) and the full table kasir-risk loads (common, runtime,
 * risk.*), shared by the daemon and the holds subcommand. */
extern const struct ks_config_def risk_settings[];
extern const size_t risk_settings_count;
/* Loads the full table from path (may be NULL) and the environment; on problems prints
 * them (config.invalid lines) and returns NULL. */
struct ks_config *risk_config_load(const char *path);

/* holds.c: `kasir-risk holds ...`; returns the exit code */
int risk_holds_main(int argc, char **argv);

#endif
