/* ids.h - identifiers: time-ordered random ids, and deterministic derived ids.
 *
 * A time-ordered id is a UUIDv7 (RFC 9562) in canonical text form, optionally behind a
 * short prefix: "pay_0190f3c2-7b1e-7cc3-9d5e-3f1a2b4c5d6e". Ids made by one process are
 * strictly increasing even within a millisecond.
 * A derived id is a UUIDv8-shaped hash (SHA-256) of a namespace and parts: the same inputs
 * always give the same id, so retries and replays dedup downstream (message ids, the
 * idempotency key sent to a PSP). */
#ifndef KS_IDS_H
#define KS_IDS_H

#include <stddef.h>

#include "err.h"

/* prefix + '_' + 36 characters + NUL fit in this. */
#define KS_ID_LEN 64

/* Writes prefix_<uuidv7> (or just the uuid when prefix is NULL or ""). Thread-safe. */
enum ks_code ks_id_new(const char *prefix, char out[KS_ID_LEN], struct ks_err *err)
    __attribute__((warn_unused_result));

/* Deterministic: prefix_<uuid from SHA-256(ns "\0" part0 "\0" part1 ...)>. parts ends
 * with NULL. Example: ks_id_derive("msg", "ledger", out, topic, partition_str, offset_str,
 * NULL). */
void ks_id_derive(const char *prefix, const char *ns, char out[KS_ID_LEN], ...)
    __attribute__((sentinel));

/* As ks_id_derive over (after, parts...), and time-ordered with after: when after holds a
 * uuid (a bare one, prefix_<uuid>, or either followed by _<suffix>, as a retried payout's
 * <payout id>_r<n>), the id's first 48 bits are its first 48 (a UUIDv7's milliseconds, or
 * what an id derived after one copied), so ids derived from ids made in order sort in that
 * order and land at the end of a B-tree index, not on a random page of it (the ids row of
 * docs/ARCHITECTURE.md's decisions). Any other after: the hash's bits, as ks_id_derive.
 * after NULL or a bad prefix: out is "". Example:
 * ks_id_derive_after("ord", "payment-order", out, payment_id, "0", NULL). */
void ks_id_derive_after(const char *prefix, const char *ns, char out[KS_ID_LEN],
                        const char *after, ...) __attribute__((sentinel));

/* 1 if s is prefix_ + a canonical lower-case uuid (prefix may be NULL to accept any). */
int ks_id_valid(const char *s, const char *prefix);

/* A message id from bytes someone else wrote (a kasir.message_id header, a payload's
 * message_id): the bytes themselves when they are 1-63 printable ASCII characters, else
 * ks_id_derive("msg", "header", hex(SHA-256(bytes))) - never cut (two ids would become
 * one and a reader's dedup drop a message), never stored as bytes PostgreSQL refuses
 * (not UTF-8). The worker runtime and kasir-dlq read ids this one way, so a replayed copy
 * carries the id the worker gave the original. */
void ks_id_from_bytes(const void *bytes, size_t len, char out[KS_ID_LEN]);

#endif
