/* jwt.h - JSON Web Tokens signed with HMAC-SHA256 (RFC 7519, JWS RFC 7515), nothing else.
 *
 * The algorithm is pinned: a token whose header says anything but "HS256" (including
 * "none", "hs256", RS256) is refused before any signature work, and the header may carry
 * only "alg", "typ" ("JWT") and "kid". Claims are a jansson object; "exp" (integer seconds)
 * is required on verification and "nbf"/"iat" are honoured when present. */
#ifndef KS_JWT_H
#define KS_JWT_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "err.h"

/* Longest token accepted by ks_jwt_verify. */
#define KS_JWT_MAX_LEN 4096

/* Signs claims with key; returns a malloc'd token (caller frees) or NULL + err. */
char *ks_jwt_sign(const json_t *claims, const void *key, size_t klen, struct ks_err *err)
    __attribute__((warn_unused_result));

/* Verifies token (len bytes, not necessarily NUL-terminated) at time now (unix seconds)
 * with leeway_s seconds of clock skew. On success *claims is a new reference the caller
 * decrefs. KS_EAUTH for a malformed token, another algorithm or a bad signature; KS_ERANGE
 * for an expired or not-yet-valid token. err->msg says which, never echoing the token. */
enum ks_code ks_jwt_verify(const char *token, size_t len, const void *key, size_t klen,
                           int64_t now, int64_t leeway_s, json_t **claims, struct ks_err *err)
    __attribute__((warn_unused_result));

#endif
