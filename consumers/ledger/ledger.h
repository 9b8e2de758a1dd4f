/* ledger.h - what the two halves of kasir-ledger share: the poster (main.c) and
 * `kasir-ledger verify` (verify.c). */
#ifndef KS_LEDGER_H
#define KS_LEDGER_H

#include <stdint.h>
#include <string.h>
#include <jansson.h>
#include <libpq-fe.h>

#include "lib/err.h"

/* Largest amount an outcome may carry: 10^15 minor units, so that an amount plus its fee
 * and a batch's sums stay far inside int64. */
#define KS_LEDGER_MAX_MINOR 1000000000000000LL

/* 1 when s can be part of an account code: not empty, no '/' (the code's separator). */
static inline int ledger_id_ok(const char *s)
{
    return s && *s && !strchr(s, '/');
}

/* Columns of a result row that carries one line of a posted entry (the post statement's
 * and the publication queue's): each entry's lines come in consecutive rows. */
enum {
    LEDGER_COL_ENTRY = 1, LEDGER_COL_KIND = 2, LEDGER_COL_JOURNAL = 3, LEDGER_COL_PREV = 4,
    LEDGER_COL_HASH = 5,
    /* the message key: the seller's wallet the entry is about (seller_wallet/<partner>/
     * <seller>/<CUR>, also for a payout hold's entries), else the PSP clearing account it
     * moves (settlements), else its first line's account */
    LEDGER_COL_KEY = 6,
    LEDGER_COL_ACCOUNT = 7, LEDGER_COL_AMOUNT = 8, LEDGER_COL_CURRENCY = 9
};

/* A posted entry: rows [from, to) of res, and what the rows do not carry. */
struct ledger_entry_src {
    PGresult *res;
    int from, to;
    const char *partner;   /* NULL: an entry of Kasir's own accounts */
    const char *reference; /* what caused it: the outcome's message id, "payout:<id>", ... */
    int64_t posted_us, now_us;
};

struct ks_batch;
struct ks_msg;
/* Emits e as a kasir.ledger.LedgerEntry to topic through the batch's outbox, caused by
 * cause (entry.c: the one home of the message's shape). out: a scratch object. */
enum ks_code ledger_entry_emit(json_t *out, struct ks_batch *b, struct ks_msg *cause,
                               const char *topic, const struct ledger_entry_src *e,
                               struct ks_err *err);

/* `kasir-ledger verify [-c file]`: argv[0] is "verify". Returns the exit code: 0 all
 * checks hold, 1 a violation (printed), 2 bad settings, 3 PostgreSQL unreachable. */
int ledger_verify_main(int argc, char **argv);

#endif
