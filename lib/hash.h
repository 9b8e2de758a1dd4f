/* hash.h - the one string hash of Kasir's in-process tables: FNV-1a, 32 bits. For slot
 * choice in bounded tables only (caches, per-key slots, a batch's grouping); nothing that
 * must hold against keys chosen to collide relies on it for more than a slot. Inline: it
 * sits in per-request and per-message paths. */
#ifndef KS_HASH_H
#define KS_HASH_H

#include <stddef.h>
#include <stdint.h>

#define KS_HASH_INIT 2166136261u

/* h extended by len bytes of p */
static inline uint32_t ks_hash_mem(uint32_t h, const void *p, size_t len)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < len; i++)
        h = (h ^ s[i]) * 16777619u;
    return h;
}

/* h extended by the string s and a separator byte, so that the pairs ("ab", "c") and
 * ("a", "bc") hash apart: chain calls for a key of several strings */
static inline uint32_t ks_hash_str(uint32_t h, const char *s)
{
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return (h ^ 0xff) * 16777619u;
}

#endif
