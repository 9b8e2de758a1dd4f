/* ocf.c - an Avro object container file writer (Avro specification, "Object Container
 * Files"): the header (magic "Obj" 1, metadata map with avro.schema and avro.codec,
 * 16-byte sync marker), then blocks of records (count, byte size, the records, the
 * marker). A Kasir message body already is the Avro binary encoding of the record under
 * its writer schema, so records are copied as they are: no decode and re-encode, and
 * the file holds exactly the bytes the producer wrote. */
#include <stdlib.h>
#include <string.h>

#include "ocf.h"
#include "lib/crypto.h"
#include "lib/banned.h"

#define BLOCK_RECORDS 4096
#define BLOCK_BYTES (256 * 1024)

static size_t put_long(unsigned char *p, int64_t v)
{
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); /* zigzag */
    size_t n = 0;

    while (z > 0x7f) {
        p[n++] = (unsigned char)((z & 0x7f) | 0x80);
        z >>= 7;
    }
    p[n++] = (unsigned char)z;
    return n;
}

static int put_bytes(FILE *f, const void *p, size_t len)
{
    unsigned char l[10];
    size_t n = put_long(l, (int64_t)len);
    return fwrite(l, 1, n, f) == n && fwrite(p, 1, len, f) == len ? 0 : -1;
}

enum ks_code tap_ocf_open(struct tap_ocf *o, FILE *f, const char *schema_json, struct ks_err *err)
{
    static const unsigned char magic[4] = {'O', 'b', 'j', 1};
    unsigned char two = 4, zero = 0; /* zigzag 2 entries, then the end of the map */

    memset(o, 0, sizeof(*o));
    o->f = f;
    if (ks_random_bytes(o->sync, sizeof(o->sync), err) != KS_OK)
        return err->code;
    if (fwrite(magic, 1, 4, f) != 4 || fwrite(&two, 1, 1, f) != 1 ||
        put_bytes(f, "avro.schema", 11) || put_bytes(f, schema_json, strlen(schema_json)) ||
        put_bytes(f, "avro.codec", 10) || put_bytes(f, "null", 4) || fwrite(&zero, 1, 1, f) != 1 ||
        fwrite(o->sync, 1, 16, f) != 16)
        return ks_err_set(err, KS_EIO, 0, NULL, "could not write the Avro file header");
    return KS_OK;
}

enum ks_code tap_ocf_flush(struct tap_ocf *o, struct ks_err *err)
{
    unsigned char h[20];
    size_t n;

    if (o->count == 0)
        return KS_OK;
    n = put_long(h, o->count);
    n += put_long(h + n, (int64_t)o->len);
    if (fwrite(h, 1, n, o->f) != n || fwrite(o->buf, 1, o->len, o->f) != o->len ||
        fwrite(o->sync, 1, 16, o->f) != 16)
        return ks_err_set(err, KS_EIO, 0, NULL, "could not write an Avro block");
    o->count = 0;
    o->len = 0;
    return KS_OK;
}

enum ks_code tap_ocf_add(struct tap_ocf *o, const void *body, size_t len, struct ks_err *err)
{
    if (o->len + len > o->cap) {
        size_t cap = o->cap ? o->cap : BLOCK_BYTES;
        unsigned char *nb;
        while (cap < o->len + len)
            cap *= 2;
        if (!(nb = realloc(o->buf, cap)))
            return ks_err_set(err, KS_ENOMEM, 0, NULL, "out of memory");
        o->buf = nb;
        o->cap = cap;
    }
    memcpy(o->buf + o->len, body, len);
    o->len += len;
    o->count++;
    if (o->count >= BLOCK_RECORDS || o->len >= BLOCK_BYTES)
        return tap_ocf_flush(o, err);
    return KS_OK;
}

void tap_ocf_release(struct tap_ocf *o)
{
    free(o->buf);
    o->buf = NULL;
    o->len = o->cap = 0;
}
