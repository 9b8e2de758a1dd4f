/* ocf.h - Avro object container files for kasir-tap (see ocf.c).
 *
 *   struct tap_ocf o;
 *   tap_ocf_open(&o, f, schema_json, &err);   header: schema embedded, codec null
 *   tap_ocf_add(&o, body, len, &err);          one record's Avro binary body
 *   tap_ocf_flush(&o, &err);                   the pending block (before a commit, at the end)
 *   tap_ocf_release(&o);                       frees the block buffer; f stays the caller's
 * Every record must be encoded with schema_json. Errors: KS_EIO (write), KS_ENOMEM. */
#ifndef KS_TAP_OCF_H
#define KS_TAP_OCF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "lib/err.h"

struct tap_ocf {
    FILE *f;
    unsigned char sync[16];
    unsigned char *buf; /* the block being filled */
    size_t len, cap;
    int64_t count;
};

enum ks_code tap_ocf_open(struct tap_ocf *o, FILE *f, const char *schema_json, struct ks_err *err)
    __attribute__((warn_unused_result));
enum ks_code tap_ocf_add(struct tap_ocf *o, const void *body, size_t len, struct ks_err *err)
    __attribute__((warn_unused_result));
enum ks_code tap_ocf_flush(struct tap_ocf *o, struct ks_err *err)
    __attribute__((warn_unused_result));
void tap_ocf_release(struct tap_ocf *o);

#endif
