/* pgarr.h - PostgreSQL array parameters, for one statement per batch over
 * unnest($1::text[], ...): text literals ("{...}", ks_pgarr_*) and binary arrays
 * (array_send format, ks_pgarr_bin_*) for bytea and large text, no escaping on either side.
 * A builder keeps its memory across resets; after an allocation failure it returns NULL
 * from its finishing call, so callers check once. */
#ifndef KS_PGARR_H
#define KS_PGARR_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Text literals: "{...}" parameters for INSERT ... SELECT FROM unnest($1::text[], ...). */
struct ks_pgarr {
    struct ks_buf b; /* the literal so far; b.oom after an allocation failed */
    size_t n;        /* elements */
};
void ks_pgarr_init(struct ks_pgarr *a);
void ks_pgarr_reset(struct ks_pgarr *a); /* empty, keeps the memory */
void ks_pgarr_release(struct ks_pgarr *a);
void ks_pgarr_text(struct ks_pgarr *a, const char *s); /* NULL: SQL NULL */
void ks_pgarr_textn(struct ks_pgarr *a, const char *s, size_t len);
void ks_pgarr_int(struct ks_pgarr *a, int64_t v);
void ks_pgarr_bytea(struct ks_pgarr *a, const void *p, size_t len); /* NULL p: SQL NULL */
const char *ks_pgarr_str(struct ks_pgarr *a); /* the literal; NULL after oom */

/* Binary arrays (PostgreSQL's array_send format) for bytea and large text columns: no
 * escaping on either side. Pass ks_pgarr_bin_data/len with paramFormats[i] = 1. */
#define KS_OID_BYTEA 17
#define KS_OID_INT8 20
#define KS_OID_INT4 23
#define KS_OID_TEXT 25
struct ks_pgarr_bin {
    struct ks_buf b; /* header (written by ks_pgarr_bin_data) and elements */
    size_t n;
    unsigned oid;
    int nulls;
};
void ks_pgarr_bin_init(struct ks_pgarr_bin *a, unsigned oid);
void ks_pgarr_bin_reset(struct ks_pgarr_bin *a);
void ks_pgarr_bin_release(struct ks_pgarr_bin *a);
void ks_pgarr_bin_bytes(struct ks_pgarr_bin *a, const void *p, size_t len); /* NULL p: SQL NULL */
void ks_pgarr_bin_int8(struct ks_pgarr_bin *a, int64_t v);
void ks_pgarr_bin_int4(struct ks_pgarr_bin *a, int32_t v);
/* The finished array (header written in place); NULL after oom. *len gets its size. */
const char *ks_pgarr_bin_data(struct ks_pgarr_bin *a, int *len);

#endif
