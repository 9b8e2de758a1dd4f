/* crypto.c - see crypto.h.
 *
 * Digests and MACs are fetched from the default provider once per process (pthread_once):
 * implicit fetches by name on every call cost a provider lookup each time, and the ingress
 * verifies an HMAC on every request.
 *
 * The hashing functions return void (crypto.h is fixed). OpenSSL's digests can fail only
 * when memory runs out; if that happens, out is filled with random bytes instead, so that
 * a signature check against it fails rather than matching a predictable value. */
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "crypto.h"

#include "banned.h"

static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;
static EVP_MD *md_sha256, *md_sha512;
static EVP_MAC *mac_hmac;

/* Never freed: they live as long as the process, like the provider that owns them. */
static void fetch_all(void)
{
    md_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    md_sha512 = EVP_MD_fetch(NULL, "SHA512", NULL);
    mac_hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
}

static void poison(uint8_t *out, size_t len)
{
    /* see the top of the file; 0xA5 only if even the RNG is gone */
    if (RAND_bytes(out, (int)len) != 1)
        memset(out, 0xA5, len);
}

static void digest(EVP_MD *md, const void *data, size_t len, uint8_t *out, size_t outlen)
{
    unsigned int n = 0;

    if (!md || EVP_Digest(data, len, out, &n, md, NULL) != 1 || n != outlen)
        poison(out, outlen);
}

void ks_sha256(const void *data, size_t len, uint8_t out[KS_SHA256_LEN])
{
    pthread_once(&fetch_once, fetch_all);
    digest(md_sha256, data, len, out, KS_SHA256_LEN);
}

void ks_sha512(const void *data, size_t len, uint8_t out[KS_SHA512_LEN])
{
    pthread_once(&fetch_once, fetch_all);
    digest(md_sha512, data, len, out, KS_SHA512_LEN);
}

static void hmac(const char *mdname, const void *key, size_t klen, const void *data,
                 size_t len, uint8_t *out, size_t outlen)
{
    EVP_MAC_CTX *ctx = NULL;
    OSSL_PARAM params[2];
    size_t n = 0;
    /* HMAC with an empty key is valid, but OpenSSL refuses a NULL key pointer */
    static const uint8_t empty_key[1];

    pthread_once(&fetch_once, fetch_all);
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)mdname, 0);
    params[1] = OSSL_PARAM_construct_end();
    if (!mac_hmac || !(ctx = EVP_MAC_CTX_new(mac_hmac)))
        goto fail;
    if (EVP_MAC_init(ctx, klen ? key : empty_key, klen, params) != 1 ||
        EVP_MAC_update(ctx, data, len) != 1 || EVP_MAC_final(ctx, out, &n, outlen) != 1 ||
        n != outlen)
        goto fail;
    goto out;
fail:
    poison(out, outlen);
out:
    EVP_MAC_CTX_free(ctx);
}

void ks_hmac_sha256(const void *key, size_t klen, const void *data, size_t len,
                    uint8_t out[KS_SHA256_LEN])
{
    hmac("SHA256", key, klen, data, len, out, KS_SHA256_LEN);
}

void ks_hmac_sha512(const void *key, size_t klen, const void *data, size_t len,
                    uint8_t out[KS_SHA512_LEN])
{
    hmac("SHA512", key, klen, data, len, out, KS_SHA512_LEN);
}

int ks_ct_equal(const void *a, const void *b, size_t len)
{
    return CRYPTO_memcmp(a, b, len) == 0;
}

int ks_ct_streq(const char *a, const char *b)
{
    size_t la, lb;
    unsigned char acc = 0;

    if (!a || !b)
        return 0;
    la = strlen(a);
    lb = strlen(b);
    /* walk all of a; bytes of b past its end read as 0, and the branch depends on
     * lengths only, never on contents */
    for (size_t i = 0; i < la; i++)
        acc |= (unsigned char)a[i] ^ (unsigned char)(i < lb ? b[i] : 0);
    return (la == lb) & (acc == 0);
}

void ks_hex_encode(const uint8_t *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0x0f];
    }
    out[2 * len] = '\0';
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long ks_hex_decode(const char *in, size_t inlen, uint8_t *out, size_t outcap)
{
    if (inlen % 2 != 0 || inlen / 2 > outcap || inlen / 2 > LONG_MAX)
        return -1;
    for (size_t i = 0; i < inlen; i += 2) {
        int hi = hex_val(in[i]), lo = hex_val(in[i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i / 2] = (uint8_t)(hi << 4 | lo);
    }
    return (long)(inlen / 2);
}

static const char b64_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t ks_b64_enclen(size_t len)
{
    return (len + 2) / 3 * 4;
}

/* Writes the encoding of in and its NUL; returns the characters written. */
static size_t b64_encode(const uint8_t *in, size_t len, char *out, const char *alpha,
                         int pad)
{
    size_t o = 0, i = 0;

    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = alpha[v >> 18 & 63];
        out[o++] = alpha[v >> 12 & 63];
        out[o++] = alpha[v >> 6 & 63];
        out[o++] = alpha[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = alpha[v >> 18 & 63];
        out[o++] = alpha[v >> 12 & 63];
        if (pad) {
            out[o++] = '=';
            out[o++] = '=';
        }
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = alpha[v >> 18 & 63];
        out[o++] = alpha[v >> 12 & 63];
        out[o++] = alpha[v >> 6 & 63];
        if (pad)
            out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

void ks_b64_encode(const uint8_t *in, size_t len, char *out)
{
    b64_encode(in, len, out, b64_std, 1);
}

void ks_b64url_encode(const uint8_t *in, size_t len, char *out)
{
    b64_encode(in, len, out, b64_url, 0);
}

static int b64_val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

/* Strict: padding only at the end and only as much as the length calls for, no
 * whitespace, and the unused low bits of the last character must be zero, so that one
 * byte string has exactly one accepted encoding per alphabet (signatures compare
 * decoded bytes; a lenient decoder would let two texts pass as one). */
long ks_b64_decode(const char *in, size_t inlen, uint8_t *out, size_t outcap)
{
    size_t n = inlen, outlen, o = 0;
    uint32_t acc = 0;
    int bits = 0;

    if (n > 0 && in[n - 1] == '=') {
        if (inlen % 4 != 0)
            return -1;
        n--;
        if (n > 0 && in[n - 1] == '=')
            n--;
    }
    if (n % 4 == 1)
        return -1;
    outlen = n / 4 * 3 + (n % 4 == 0 ? 0 : n % 4 - 1);
    if (outlen > outcap || outlen > LONG_MAX)
        return -1;
    /* with padding, the unpadded remainder must be 2 or 3 characters */
    if (n != inlen && n % 4 == 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int v = b64_val(in[i]);
        if (v < 0)
            return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0)
        return -1;
    return (long)o;
}

/* Small draws (ids, trace and span ids: several per request in the ingress) come from a
 * per-thread pool refilled POOL_SIZE bytes at a time: a RAND_bytes call costs the same
 * ~1-2 microseconds for 8 bytes as for 4 KiB (measured: 3 % of the ingress's CPU).
 * Bytes are wiped from the pool as they are handed out. A forked child discards the pool
 * it inherited (pthread_atfork bumps the generation), so parent and child never hand out
 * the same bytes. Large draws go straight to RAND_bytes. */
#define POOL_SIZE 4096
#define POOL_MAX_DRAW 256

static _Thread_local struct {
    unsigned char b[POOL_SIZE];
    size_t pos; /* bytes before pos are used */
    unsigned gen;
    int filled; /* 0 in a new thread, or after a failed refill */
} pool;
static atomic_uint pool_gen = 1;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

static void pool_forked(void)
{
    atomic_fetch_add(&pool_gen, 1);
}

static void pool_init(void)
{
    pthread_atfork(NULL, NULL, pool_forked);
}

static enum ks_code rand_direct(unsigned char *p, size_t len, struct ks_err *err)
{
    /* RAND_bytes takes an int: feed it in chunks */
    while (len > 0) {
        int chunk = len > (size_t)INT_MAX ? INT_MAX : (int)len;
        if (RAND_bytes(p, chunk) != 1)
            return ks_err_set(err, KS_EIO, 1, NULL, "could not read random bytes");
        p += chunk;
        len -= (size_t)chunk;
    }
    return KS_OK;
}

enum ks_code ks_random_bytes(void *buf, size_t len, struct ks_err *err)
{
    unsigned gen;

    if (len > POOL_MAX_DRAW)
        return rand_direct(buf, len, err);
    pthread_once(&pool_once, pool_init);
    gen = atomic_load(&pool_gen);
    if (!pool.filled || pool.gen != gen || POOL_SIZE - pool.pos < len) {
        if (RAND_bytes(pool.b, POOL_SIZE) != 1) {
            pool.filled = 0;
            return ks_err_set(err, KS_EIO, 1, NULL, "could not read random bytes");
        }
        pool.pos = 0;
        pool.gen = gen;
        pool.filled = 1;
    }
    memcpy(buf, pool.b + pool.pos, len);
    OPENSSL_cleanse(pool.b + pool.pos, len);
    pool.pos += len;
    return KS_OK;
}
