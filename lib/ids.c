/* ids.c - see ids.h.
 *
 * UUIDv7 layout (RFC 9562 5.7): 48-bit Unix milliseconds, 4-bit version, 12 bits rand_a,
 * 2-bit variant, 62 bits rand_b. The 74 random bits are kept as one counter
 * (rand_a:rand_b) so that ids from this process increase strictly (RFC 9562 6.2,
 * method 2 with a random increment):
 *   - in a new millisecond the counter is reseeded at random with its top bit clear, which
 *     leaves at least 2^73 of headroom for increments;
 *   - within the same millisecond, or when the clock steps back, the counter grows by a
 *     random 1..2^32, so consecutive ids are not guessable from each other;
 *   - if the counter would overflow, the timestamp is advanced by one millisecond (the
 *     id runs slightly ahead of the clock, never behind the previous id).
 * Prefix rule, for ks_id_new, ks_id_derive and ks_id_valid: 1 to KS_ID_PREFIX_MAX
 * characters of [a-z0-9_]. */
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "crypto.h"
#include "ids.h"

#include "banned.h"

/* KS_ID_LEN = prefix + '_' + 36 + NUL */
#define KS_ID_PREFIX_MAX (KS_ID_LEN - 1 - 36 - 1)
#define UUID_TEXT_LEN 36
#define RAND_A_MASK 0x0fffu                  /* 12 bits */
#define RAND_B_MASK ((UINT64_C(1) << 62) - 1) /* 62 bits */

static pthread_mutex_t v7_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t v7_ms;     /* timestamp of the last id */
static uint32_t v7_hi;     /* rand_a, 12 bits */
static uint64_t v7_lo;     /* rand_b, 62 bits */

static int prefix_ok(const char *p, size_t len)
{
    if (len == 0 || len > KS_ID_PREFIX_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9') || p[i] == '_'))
            return 0;
    return 1;
}

/* Writes [prefix_]<uuid text of b> into out. The caller has checked the prefix. */
static void write_id(const char *prefix, const uint8_t b[16], char out[KS_ID_LEN])
{
    static const char digits[] = "0123456789abcdef";
    size_t o = 0;

    if (prefix && *prefix) {
        size_t pl = strlen(prefix);
        memcpy(out, prefix, pl);
        o = pl;
        out[o++] = '_';
    }
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = digits[b[i] >> 4];
        out[o++] = digits[b[i] & 0x0f];
    }
    out[o] = '\0';
}

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

enum ks_code ks_id_new(const char *prefix, char out[KS_ID_LEN], struct ks_err *err)
{
    enum ks_code rc = KS_OK;
    uint8_t rnd[16], b[16];
    uint64_t ms, lo;
    uint32_t hi;
    int locked = 0;

    if (prefix && *prefix && !prefix_ok(prefix, strlen(prefix))) {
        rc = ks_err_set(err, KS_EINVAL, 0, NULL,
                        "id prefix must be 1 to %d characters of [a-z0-9_]", KS_ID_PREFIX_MAX);
        goto out;
    }
    /* the random bytes are drawn outside the lock; only the counter step is serialized */
    rc = ks_random_bytes(rnd, sizeof(rnd), err);
    if (rc != KS_OK)
        goto out;
    ms = now_ms();

    pthread_mutex_lock(&v7_lock);
    locked = 1;
    if (ms > v7_ms) {
        v7_ms = ms;
        v7_hi = ((uint32_t)rnd[0] << 8 | rnd[1]) & (RAND_A_MASK >> 1);
        memcpy(&v7_lo, rnd + 2, sizeof(v7_lo));
        v7_lo &= RAND_B_MASK;
    } else {
        uint32_t inc32;
        memcpy(&inc32, rnd + 10, sizeof(inc32));
        v7_lo += (uint64_t)inc32 + 1;
        if (v7_lo > RAND_B_MASK) {
            v7_lo &= RAND_B_MASK;
            if (++v7_hi > RAND_A_MASK) {
                /* 2^73 ids in one millisecond is not expected, but stay monotonic */
                v7_ms++;
                v7_hi = ((uint32_t)rnd[0] << 8 | rnd[1]) & (RAND_A_MASK >> 1);
                memcpy(&v7_lo, rnd + 2, sizeof(v7_lo));
                v7_lo &= RAND_B_MASK;
            }
        }
    }
    ms = v7_ms;
    hi = v7_hi;
    lo = v7_lo;
    pthread_mutex_unlock(&v7_lock);
    locked = 0;

    for (int i = 0; i < 6; i++)
        b[i] = (uint8_t)(ms >> (40 - 8 * i));
    b[6] = (uint8_t)(0x70 | (hi >> 8));
    b[7] = (uint8_t)hi;
    b[8] = (uint8_t)(0x80 | (lo >> 56));
    for (int i = 9; i < 16; i++)
        b[i] = (uint8_t)(lo >> (8 * (15 - i)));
    write_id(prefix, b, out);
out:
    if (locked)
        pthread_mutex_unlock(&v7_lock);
    return rc;
}

/* EVP_sha256() makes OpenSSL 3 look the implementation up in the provider on every
 * DigestInit (about 6% of a worker's main thread); fetched once, it is a plain pointer. */
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha256_md;

static void sha256_fetch(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

/* The hash of ns, after (when not NULL) and the parts, as a UUIDv8 in h (RFC 9562 5.8:
 * version and variant bits over the first 16 hash bytes); 0 on failure. */
static int derive_hash(const char *ns, const char *after, va_list ap, uint8_t h[EVP_MAX_MD_SIZE])
{
    EVP_MD_CTX *ctx = NULL;
    unsigned int hl = 0;
    const char *part = after;
    int ok;

    pthread_once(&sha256_once, sha256_fetch);
    ctx = EVP_MD_CTX_new();
    ok = sha256_md && ctx && EVP_DigestInit_ex(ctx, sha256_md, NULL) == 1 &&
         EVP_DigestUpdate(ctx, ns ? ns : "", ns ? strlen(ns) : 0) == 1;
    if (!part && ok)
        part = va_arg(ap, const char *);
    /* the NUL between parts keeps ("ab","c") apart from ("a","bc") */
    for (; ok && part; part = va_arg(ap, const char *))
        ok = EVP_DigestUpdate(ctx, "", 1) == 1 && EVP_DigestUpdate(ctx, part, strlen(part)) == 1;
    ok = ok && EVP_DigestFinal_ex(ctx, h, &hl) == 1 && hl >= 16;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return 0;
    h[6] = (uint8_t)(0x80 | (h[6] & 0x0f));
    h[8] = (uint8_t)(0x80 | (h[8] & 0x3f));
    return 1;
}

/* The 36 characters at s are a canonical lower-case uuid (what follows them is the caller's
 * to check). */
static int uuid_text_ok(const char *s)
{
    for (int i = 0; i < UUID_TEXT_LEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return 0;
        }
    }
    return 1;
}

/* The first 6 bytes of the uuid in id into b: the 36 characters at its start or after one
 * of its '_', ending it or followed by '_' (prefix_<uuid>, a bare uuid, a retried payout's
 * <payout id>_r<n>); 0 when id holds none. */
static int uuid_time_bytes(const char *id, uint8_t b[6])
{
    size_t len = strlen(id);

    for (size_t i = 0; i + UUID_TEXT_LEN <= len; i++) {
        const char *s = id + i;
        if ((i > 0 && id[i - 1] != '_') || (s[UUID_TEXT_LEN] && s[UUID_TEXT_LEN] != '_') ||
            !uuid_text_ok(s))
            continue;
        /* "tttttttt-tttt-...": 8 hex digits, then 4 after the '-' */
        return ks_hex_decode(s, 8, b, 4) == 4 && ks_hex_decode(s + 9, 4, b + 4, 2) == 2;
    }
    return 0;
}

/* ks_id_derive and ks_id_derive_after: on failure (bad prefix, no after where one is
 * needed, OpenSSL out of memory) out is "": an id that ks_id_valid rejects and that no
 * table accepts, instead of a value that could collide. Nothing is written to out before
 * the hash, so out may be one of the inputs. */
static void derive(const char *prefix, const char *ns, char out[KS_ID_LEN], const char *after,
                   va_list ap)
{
    uint8_t h[EVP_MAX_MD_SIZE];

    if ((prefix && *prefix && !prefix_ok(prefix, strlen(prefix))) ||
        !derive_hash(ns, after, ap, h)) {
        out[0] = '\0';
        return;
    }
    /* after's first 48 bits (a UUIDv7's milliseconds) lead; the version and variant
     * bits of the hash stay: the id is a UUIDv8 whichever way */
    if (after)
        uuid_time_bytes(after, h);
    write_id(prefix, h, out);
}

void ks_id_derive(const char *prefix, const char *ns, char out[KS_ID_LEN], ...)
{
    va_list ap;

    va_start(ap, out);
    derive(prefix, ns, out, NULL, ap);
    va_end(ap);
}

void ks_id_derive_after(const char *prefix, const char *ns, char out[KS_ID_LEN],
                        const char *after, ...)
{
    va_list ap;

    if (!after) {
        out[0] = '\0';
        return;
    }
    va_start(ap, after);
    derive(prefix, ns, out, after, ap);
    va_end(ap);
}

int ks_id_valid(const char *s, const char *prefix)
{
    size_t len, pl;

    if (!s)
        return 0;
    len = strlen(s);
    if (len < UUID_TEXT_LEN || !uuid_text_ok(s + len - UUID_TEXT_LEN))
        return 0;
    if (len == UUID_TEXT_LEN) /* bare uuid: wanted only when no prefix is expected */
        return !prefix || !*prefix;
    /* "<prefix>_<uuid>" */
    pl = len - UUID_TEXT_LEN - 1;
    if (s[pl] != '_' || !prefix_ok(s, pl))
        return 0;
    if (prefix && *prefix)
        return strlen(prefix) == pl && memcmp(s, prefix, pl) == 0;
    /* prefix "" asks for a bare uuid; NULL accepts any prefix */
    return !prefix;
}

void ks_id_from_bytes(const void *bytes, size_t len, char out[KS_ID_LEN])
{
    const unsigned char *v = bytes;
    uint8_t sum[KS_SHA256_LEN];
    char hex[2 * KS_SHA256_LEN + 1];
    size_t i;

    for (i = 0; i < len && i < KS_ID_LEN - 1 && v[i] >= 0x20 && v[i] < 0x7f; i++)
        ;
    if (len > 0 && i == len) {
        memcpy(out, v, len);
        out[len] = '\0';
        return;
    }
    ks_sha256(v, len, sum);
    ks_hex_encode(sum, sizeof(sum), hex);
    ks_id_derive("msg", "header", out, hex, NULL);
}
