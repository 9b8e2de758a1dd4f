/* crypto.h - hashing, HMAC, constant-time compare and encodings, on OpenSSL 3.
 *
 * Outputs go into caller buffers; sizes are checked. Nothing here logs. */
#ifndef KS_CRYPTO_H
#define KS_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define KS_SHA256_LEN 32
#define KS_SHA512_LEN 64

void ks_sha256(const void *data, size_t len, uint8_t out[KS_SHA256_LEN]);
void ks_sha512(const void *data, size_t len, uint8_t out[KS_SHA512_LEN]);
void ks_hmac_sha256(const void *key, size_t klen, const void *data, size_t len,
                    uint8_t out[KS_SHA256_LEN]);
void ks_hmac_sha512(const void *key, size_t klen, const void *data, size_t len,
                    uint8_t out[KS_SHA512_LEN]);

/* 1 when a and b are equal; time depends only on len, never on where they differ. */
int ks_ct_equal(const void *a, const void *b, size_t len);
/* Strings of possibly different lengths; time depends on the lengths only. */
int ks_ct_streq(const char *a, const char *b);

/* Lower-case hex. out must hold 2*len+1 bytes. */
void ks_hex_encode(const uint8_t *in, size_t len, char *out);
/* Decodes hex (either case) into out (outcap bytes); returns bytes written or -1. */
long ks_hex_decode(const char *in, size_t inlen, uint8_t *out, size_t outcap);

/* Standard base64 with padding (RFC 4648 4). out must hold ks_b64_enclen(len)+1. */
size_t ks_b64_enclen(size_t len);
void ks_b64_encode(const uint8_t *in, size_t len, char *out);
/* base64url without padding (RFC 4648 5), as JWTs use it. */
void ks_b64url_encode(const uint8_t *in, size_t len, char *out);
/* Decodes standard or url alphabet, padding optional; returns bytes written or -1. */
long ks_b64_decode(const char *in, size_t inlen, uint8_t *out, size_t outcap);

/* Fills buf with len cryptographically random bytes; KS_EIO when the RNG fails. */
enum ks_code ks_random_bytes(void *buf, size_t len, struct ks_err *err)
    __attribute__((warn_unused_result));

#endif
