/* jsonmem.c - a per-thread cache of freed small blocks for jansson. See jsonmem.h.
 *
 * A size class is a glibc chunk size (16-byte steps, at least 32): a request of n bytes
 * takes a chunk of max(32, round16(n + 8)) bytes whose usable size is that less 8, and
 * malloc_usable_size of a block tells its chunk the same way. The lists are intrusive
 * (the first word of a cached block points at the next), per thread, so neither side
 * takes a lock; a block freed on another thread than it was allocated on just joins that
 * thread's list (both are malloc blocks). */
#include <jansson.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "jsonmem.h"
#include "banned.h"

#define CLASSES 66     /* chunk sizes 0, 16, ... 1040: usable sizes up to 1,032 bytes */
#define MIN_CHUNK 32

struct cache {
    void *head[CLASSES];
    size_t bytes;
    int state; /* 0: not registered for thread exit yet, 1: live, 2: thread exiting */
};

static __thread struct cache tl;
static pthread_key_t exit_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static int key_ok;

static void release(struct cache *c)
{
    for (int k = 0; k < CLASSES; k++)
        while (c->head[k]) {
            void *p = c->head[k];
            c->head[k] = *(void **)p;
            free(p);
        }
    c->bytes = 0;
}

static void on_thread_exit(void *arg)
{
    struct cache *c = arg;
    c->state = 2; /* later frees on this thread (other destructors) go straight to free */
    release(c);
}

static void make_key(void)
{
    key_ok = pthread_key_create(&exit_key, on_thread_exit) == 0;
}

/* The class of a request of n bytes, or -1 when it is too big to cache. */
static int class_of_request(size_t n)
{
    size_t chunk;
    if (n > 1024)
        return -1;
    chunk = (n + 8 + 15) & ~(size_t)15;
    if (chunk < MIN_CHUNK)
        chunk = MIN_CHUNK;
    return (int)(chunk >> 4);
}

void *ks_jsonmem_malloc(size_t size)
{
    int k = class_of_request(size);
    void *p;

    if (k >= 0 && (p = tl.head[k])) {
        tl.head[k] = *(void **)p;
        tl.bytes -= (size_t)k << 4;
        return p;
    }
    return malloc(size);
}

void ks_jsonmem_free(void *p)
{
    size_t u, chunk;

    if (!p)
        return;
    u = malloc_usable_size(p);
    chunk = u + 8;
    /* not a chunk size this cache knows (a mapped block, another allocator), the cache
     * full, or the thread on its way out: back to malloc */
    if ((chunk & 15) || chunk < MIN_CHUNK || (chunk >> 4) >= CLASSES || tl.state == 2 ||
        tl.bytes + chunk > KS_JSONMEM_MAX_BYTES) {
        free(p);
        return;
    }
    if (tl.state == 0) {
        /* first block kept on this thread: have it all freed when the thread ends */
        pthread_once(&key_once, make_key);
        if (!key_ok || pthread_setspecific(exit_key, &tl) != 0) {
            free(p);
            return;
        }
        tl.state = 1;
    }
    *(void **)p = tl.head[chunk >> 4];
    tl.head[chunk >> 4] = p;
    tl.bytes += chunk;
}

size_t ks_jsonmem_cached(void)
{
    return tl.bytes;
}

void ks_jsonmem_release(void)
{
    release(&tl);
}

void ks_jsonmem_install(void)
{
#if defined(__SANITIZE_ADDRESS__)
    /* ASan must see each free as it happens: no cache in front of it */
#else
    json_set_alloc_funcs(ks_jsonmem_malloc, ks_jsonmem_free);
#endif
}
