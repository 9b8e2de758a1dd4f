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
 * and the publication queue's): each entry's lines come in consecutive rows, line 1 first.
 * The entry's own columns (kind, journal, hashes, key) are read from its first row (the
 * post statement leaves them NULL on the others). */
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
/* entry.c, the one home of the message's shape: the kasir.ledger.LedgerEntry of e in out
 * (a scratch object, every member set), with message_id; its key (LEDGER_COL_KEY). */
enum ks_code ledger_entry_value(json_t *out, const struct ledger_entry_src *e,
                                const char *message_id, struct ks_err *err);
const char *ledger_entry_key(const struct ledger_entry_src *e);
/* Emits e to topic through the batch's outbox, caused by cause. */
enum ks_code ledger_entry_emit(json_t *out, struct ks_batch *b, struct ks_msg *cause,
                               const char *topic, const struct ledger_entry_src *e,
                               struct ks_err *err);

/* The publication queue (ledger_unpublished, 840_ledger.sql), one row per line of each
 * entry claimed: the columns above, then partner (10), reference (12), posted_at in
 * microseconds (13). $1: the least age in ms of an entry claimed. Claimed entries are
 * deleted in the caller's transaction. */
extern const char LEDGER_SQL_QUEUED[];
/* The entry whose first row is row k of a LEDGER_SQL_QUEUED result, in *e; returns the
 * row after it. */
int ledger_queued_entry(PGresult *res, int k, int64_t now_us, struct ledger_entry_src *e);

/* publish.c: a thread of kasir-ledger that moves queued entries to an outbox of its own
 * every ledger.publish.every, whether outcomes flow or not. cfg must outlive it. */
struct ledger_pub;
struct ks_config;
struct ledger_pub *ledger_pub_start(const struct ks_config *cfg, struct ks_err *err);
void ledger_pub_stop(struct ledger_pub *p); /* NULL ok: stops, flushes, frees */

/* `kasir-ledger verify [-c file]`: argv[0] is "verify". Returns the exit code: 0 all
 * checks hold, 1 a violation (printed), 2 bad settings, 3 PostgreSQL unreachable. */
int ledger_verify_main(int argc, char **argv);

#endif
