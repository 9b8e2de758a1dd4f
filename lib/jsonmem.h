/* jsonmem.h - a per-thread cache of freed small blocks for jansson's allocations.
 *
 * A worker decodes a whole batch into jansson trees (about 60 small blocks per
 * PaymentRequested, 2,000 messages a batch), hands them to its handler, then frees them
 * all. glibc's own per-thread cache holds 7 blocks per size, so most of those frees and
 * the next batch's allocations go through its slower bins (consolidation, splitting,
 * page faults after a trim): in kasir-risk a third of its CPU was malloc and free.
 *
 * ks_jsonmem_install() makes jansson allocate through a cache in front of malloc: a freed
 * block of up to 1,024 usable bytes goes on a list of the freeing thread, by size; the
 * next allocation of that size on that thread takes it back. Blocks are plain malloc
 * blocks (the class comes from malloc_usable_size), so a block jansson allocated before
 * the install, or on another thread, is freed correctly, and nothing changes in what a
 * json_t may be used for or how long it lives. At most KS_JSONMEM_MAX_BYTES are kept per
 * thread (beyond that a block goes back to free); a thread's cache is freed when the
 * thread exits. Under AddressSanitizer the install does nothing, so ASan still sees every
 * free. */
#ifndef KS_JSONMEM_H
#define KS_JSONMEM_H

#include <stddef.h>

#define KS_JSONMEM_MAX_BYTES ((size_t)32 << 20)

/* Sets jansson's allocation functions (json_set_alloc_funcs); idempotent. Call it before
 * other threads use jansson (the worker runtime does, at start). */
void ks_jsonmem_install(void);

/* The allocation functions themselves (exposed for the unit test). */
void *ks_jsonmem_malloc(size_t size);
void ks_jsonmem_free(void *p);
/* Bytes kept in the calling thread's cache now (unit test). */
size_t ks_jsonmem_cached(void);
/* Frees what the calling thread's cache holds (a thread's own is freed when it exits;
 * the main thread's at process exit is not). */
void ks_jsonmem_release(void);

#endif
