/* buf.c - see buf.h. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "buf.h"
#include "banned.h"

void ks_buf_init(struct ks_buf *b)
{
    b->p = NULL;
    b->len = b->cap = 0;
    b->oom = 0;
}

void ks_buf_release(struct ks_buf *b)
{
    if (!b)
        return;
    free(b->p);
    ks_buf_init(b);
}

int ks_buf_grow(struct ks_buf *b, size_t more)
{
    size_t want, nc;
    unsigned char *np;

    if (b->oom)
        return -1;
    if (more > SIZE_MAX - b->len - 1)
        goto oom;
    want = b->len + more + 1;
    if (want <= b->cap)
        return 0;
    nc = b->cap ? b->cap : 256;
    while (nc < want) {
        if (nc > SIZE_MAX / 2)
            goto oom;
        nc *= 2;
    }
    if (!(np = realloc(b->p, nc)))
        goto oom; /* the old memory and contents stay */
    b->p = np;
    b->cap = nc;
    return 0;
oom:
    b->oom = 1;
    return -1;
}

void ks_buf_printf(struct ks_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (!ks_buf_room(b, 64))
        return;
    va_start(ap, fmt);
    n = vsnprintf((char *)b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = 1;
        return;
    }
    if ((size_t)n >= b->cap - b->len) {
        if (!ks_buf_room(b, (size_t)n))
            return;
        va_start(ap, fmt);
        vsnprintf((char *)b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

const char *ks_buf_str(struct ks_buf *b)
{
    if (!ks_buf_room(b, 0))
        return NULL;
    b->p[b->len] = '\0';
    return (const char *)b->p;
}
