/* heap.c - see sb_heap in sandbox.h: a binary min-heap of items by due time. */
#include <stdint.h>
#include <stdlib.h>

#include "deploy/psp-sandbox/sandbox.h"
#include "lib/banned.h"

int sb_heap_push(struct sb_heap *h, int64_t due_us, void *item)
{
    size_t i;

    if (h->n == h->cap) {
        size_t nc = h->cap ? h->cap * 2 : 256;
        struct sb_due *nv = realloc(h->v, nc * sizeof(*nv));
        if (!nv)
            return -1;
        h->v = nv;
        h->cap = nc;
    }
    for (i = h->n++; i > 0 && h->v[(i - 1) / 2].due_us > due_us; i = (i - 1) / 2)
        h->v[i] = h->v[(i - 1) / 2];
    h->v[i].due_us = due_us;
    h->v[i].item = item;
    return 0;
}

void *sb_heap_pop(struct sb_heap *h)
{
    void *top;
    struct sb_due last;
    size_t i = 0;

    if (h->n == 0)
        return NULL;
    top = h->v[0].item;
    last = h->v[--h->n];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        int64_t best = last.due_us;
        if (l < h->n && h->v[l].due_us < best) {
            m = l;
            best = h->v[l].due_us;
        }
        if (r < h->n && h->v[r].due_us < best)
            m = r;
        if (m == i)
            break;
        h->v[i] = h->v[m];
        i = m;
    }
    if (h->n)
        h->v[i] = last;
    return top;
}

int64_t sb_heap_next(const struct sb_heap *h)
{
    return h->n ? h->v[0].due_us : INT64_MAX;
}

void sb_heap_release(struct sb_heap *h)
{
    free(h->v);
    h->v = NULL;
    h->n = h->cap = 0;
}
