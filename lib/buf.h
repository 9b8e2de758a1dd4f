/* buf.h - the growable byte buffer every module builds its output in (git's strbuf, curl's
 * dynbuf): Prometheus text, Avro bodies, PostgreSQL arrays, COPY data.
 *
 * A buffer starts empty (KS_BUF_INIT or ks_buf_init), grows by doubling, and keeps its
 * memory across ks_buf_reset. Appends are OOM-safe: when memory runs out the buffer keeps
 * what it had, remembers the failure (oom) and ignores later appends, so a caller checks
 * once at the end (ks_buf_str returns NULL, or test b->oom). The bytes are p[0..len-1];
 * there is always room for a NUL after them, which ks_buf_str writes. */
#ifndef KS_BUF_H
#define KS_BUF_H

#include <stddef.h>
#include <string.h>

struct ks_buf {
    unsigned char *p;
    size_t len, cap;
    int oom;
};
#define KS_BUF_INIT {NULL, 0, 0, 0}

void ks_buf_init(struct ks_buf *b);
/* Frees the memory; b is empty again (NULL ok). */
void ks_buf_release(struct ks_buf *b);
/* Empties b, keeping its memory, and forgets an earlier oom. */
static inline void ks_buf_reset(struct ks_buf *b)
{
    b->len = 0;
    b->oom = 0;
}
/* The slow path of ks_buf_room: makes room for more bytes (+1 for a NUL). 0, or -1 with
 * oom set and the contents unchanged. */
int ks_buf_grow(struct ks_buf *b, size_t more);
/* Room for more bytes at p + len (the caller writes them and adds to len), or NULL. */
static inline unsigned char *ks_buf_room(struct ks_buf *b, size_t more)
{
    if (b->oom)
        return NULL;
    if (b->cap - b->len <= more && ks_buf_grow(b, more) != 0)
        return NULL;
    return b->p + b->len;
}
static inline void ks_buf_add(struct ks_buf *b, const void *data, size_t n)
{
    unsigned char *d = ks_buf_room(b, n);
    if (d && n) {
        memcpy(d, data, n);
        b->len += n;
    }
}
static inline void ks_buf_addc(struct ks_buf *b, int c)
{
    unsigned char *d = ks_buf_room(b, 1);
    if (d) {
        *d = (unsigned char)c;
        b->len++;
    }
}
static inline void ks_buf_adds(struct ks_buf *b, const char *s)
{
    ks_buf_add(b, s, strlen(s));
}
/* printf onto the end. */
void ks_buf_printf(struct ks_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The contents as a NUL-terminated string (the NUL is not counted in len); NULL after an
 * oom. Valid until the next append. */
const char *ks_buf_str(struct ks_buf *b);

#endif
