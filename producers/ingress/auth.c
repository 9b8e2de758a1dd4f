/* auth.c - who is calling, and may they.
 *
 * HTTP Basic: the API key is the user name, the password is empty. The key is hashed
 * (SHA-256) and looked up in api_keys; the answer (partner, scopes, rate limit) is cached
 * for auth.cache_ttl so the hot path costs one hash and one table probe, and a revoked key
 * stops working within that TTL.
 * Bearer: an HS256 JWT from POST /v1/auth/token, verified in memory (alg pinned).
 * Token exchange: {key_id, timestamp, nonce, signature} where signature is
 * hex HMAC-SHA256(sign_key, "<key_id>.<timestamp>.<nonce>") and sign_key =
 * HMAC-SHA256(api_key, "kasir-token-v1"); the timestamp must be within auth.token_window of
 * the server clock and a nonce is accepted once (kept twice the window).
 * Rate limits: a token bucket per partner (partners.rate_limit_rps / _burst). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/crypto.h"
#include "lib/jwt.h"
#include "lib/log.h"
#include "producers/ingress/ingress.h"
#include "lib/banned.h"

const char *const ing_scope_names[ING_SCOPE_COUNT] = {
    "payments:write", "payments:read", "refunds:write", "refunds:read", "payouts:write",
    "payouts:read", "settlements:write", "reconciliations:read", "admin",
};

long ing_scopes_parse(const char *s)
{
    long bits = 0;

    while (*s) {
        size_t n = strcspn(s, " ,{}\"");
        if (n) {
            int i, found = 0;
            for (i = 0; i < ING_SCOPE_COUNT; i++)
                if (strlen(ing_scope_names[i]) == n && strncmp(s, ing_scope_names[i], n) == 0) {
                    bits |= 1L << i;
                    found = 1;
                }
            if (!found)
                return -1;
            s += n;
        } else {
            s++;
        }
    }
    return bits;
}

void ing_scopes_format(unsigned bits, char *buf, size_t len)
{
    size_t off = 0;
    int i;

    buf[0] = '\0';
    for (i = 0; i < ING_SCOPE_COUNT; i++)
        if (bits & (1u << i)) {
            int n = snprintf(buf + off, len - off, "%s%s", off ? " " : "", ing_scope_names[i]);
            if (n < 0 || (size_t)n >= len - off)
                return;
            off += (size_t)n;
        }
}

/* --- thread-local PostgreSQL connection for synchronous reads ------------------------- */

static __thread struct ks_db *tl_db;

struct ks_db *ing_thread_db(struct ing_problem *p)
{
    struct ks_err e = {0};

    if (!tl_db)
        tl_db = ks_db_connect(ING.pg_dsn, &e);
    else if (!ks_db_ok(tl_db) && ks_db_reconnect(tl_db, &e) != KS_OK) {
        ks_db_free(tl_db);
        tl_db = NULL;
    }
    if (!tl_db) {
        ing_problem(p, "unavailable", NULL, "the database is unreachable");
        return NULL;
    }
    return tl_db;
}

/* --- caches ------------------------------------------------------------------------ */

#define NB 1024

struct key_entry {
    uint8_t hash[KS_SHA256_LEN];
    char partner_id[KS_ID_LEN], key_id[KS_ID_LEN];
    unsigned scopes;
    int valid;
    int64_t expires_us;
    struct key_entry *next;
};

struct bucket {
    char partner_id[KS_ID_LEN];
    int64_t tokens_u; /* tokens x 1e6 */
    int64_t last_us, loaded_us;
    int rps, burst;
    struct bucket *next;
};

struct nonce {
    char id[KS_ID_LEN + 72];
    int64_t expires_us;
    struct nonce *next;
};

static struct key_entry *keys[NB];
static struct bucket *buckets[NB];
static struct nonce *nonces[NB];
static pthread_mutex_t keys_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t buckets_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t nonces_mu = PTHREAD_MUTEX_INITIALIZER;

static unsigned str_hash(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % NB;
}

int ing_auth_init(void)
{
    return 0;
}

static void bucket_set(const char *partner, int rps, int burst)
{
    unsigned h = str_hash(partner);
    struct bucket *b;

    pthread_mutex_lock(&buckets_mu);
    for (b = buckets[h]; b; b = b->next)
        if (strcmp(b->partner_id, partner) == 0)
            break;
    if (!b && (b = calloc(1, sizeof(*b)))) {
        snprintf(b->partner_id, sizeof(b->partner_id), "%s", partner);
        b->tokens_u = (int64_t)burst * 1000000;
        b->last_us = ing_now_us();
        b->next = buckets[h];
        buckets[h] = b;
    }
    if (b) {
        b->rps = rps;
        b->burst = burst;
        b->loaded_us = ing_now_us();
    }
    pthread_mutex_unlock(&buckets_mu);
}

/* 0: allowed; >0: seconds to wait; -1: the partner's limits are not loaded (or stale) */
static int bucket_take(const char *partner)
{
    unsigned h = str_hash(partner);
    struct bucket *b;
    int64_t now = ing_now_us();
    int rc = -1;

    pthread_mutex_lock(&buckets_mu);
    for (b = buckets[h]; b; b = b->next)
        if (strcmp(b->partner_id, partner) == 0)
            break;
    if (b && now - b->loaded_us < ING.auth_cache_ms * 1000) {
        int64_t cap = (int64_t)b->burst * 1000000;
        b->tokens_u += (now - b->last_us) * b->rps;
        if (b->tokens_u > cap)
            b->tokens_u = cap;
        b->last_us = now;
        if (b->tokens_u >= 1000000) {
            b->tokens_u -= 1000000;
            rc = 0;
        } else {
            rc = (int)((1000000 - b->tokens_u) / b->rps / 1000000) + 1;
        }
    }
    pthread_mutex_unlock(&buckets_mu);
    return rc;
}

static int load_partner_limits(const char *partner, struct ing_problem *p)
{
    struct ks_db *db = ing_thread_db(p);
    const char *params[1] = {partner};
    PGresult *res;
    int ok = 0;

    if (!db)
        return -1;
    res = PQexecParams(ks_db_conn(db),
                       "SELECT rate_limit_rps, rate_limit_burst FROM partners "
                       "WHERE partner_id = $1 AND disabled_at IS NULL",
                       1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ing_problem(p, "unavailable", NULL, "the database is unreachable");
    } else if (PQntuples(res) == 1) {
        bucket_set(partner, (int)strtol(PQgetvalue(res, 0, 0), NULL, 10),
                   (int)strtol(PQgetvalue(res, 0, 1), NULL, 10));
        ok = 1;
    } else {
        ing_problem(p, "unauthorized", NULL, "the partner is disabled");
    }
    PQclear(res);
    return ok ? 0 : -1;
}

/* key hash -> partner; 1 found, 0 unknown, -1 database down (p set) */
static int key_lookup(const uint8_t hash[KS_SHA256_LEN], struct ing_req *r,
                      struct ing_problem *p)
{
    unsigned h = (unsigned)(hash[0] | hash[1] << 8) % NB;
    struct key_entry *k;
    int64_t now = ing_now_us();
    int found = -2;
    struct ks_db *db;
    PGresult *res;
    char hex[2 * KS_SHA256_LEN + 3];
    const char *params[1] = {hex};

    pthread_mutex_lock(&keys_mu);
    for (k = keys[h]; k; k = k->next)
        if (memcmp(k->hash, hash, KS_SHA256_LEN) == 0 && k->expires_us > now) {
            found = k->valid;
            if (k->valid) {
                memcpy(r->partner_id, k->partner_id, sizeof(r->partner_id));
                memcpy(r->cred_id, k->key_id, sizeof(r->cred_id));
                r->scopes = k->scopes;
            }
            break;
        }
    pthread_mutex_unlock(&keys_mu);
    if (found != -2)
        return found;

    if (!(db = ing_thread_db(p)))
        return -1;
    hex[0] = '\\';
    hex[1] = 'x';
    ks_hex_encode(hash, KS_SHA256_LEN, hex + 2);
    res = PQexecParams(ks_db_conn(db),
                       "SELECT k.key_id, k.partner_id, array_to_string(k.scopes, ' '), "
                       "p.rate_limit_rps, p.rate_limit_burst FROM api_keys k "
                       "JOIN partners p USING (partner_id) WHERE k.key_hash = $1::bytea "
                       "AND (k.revoked_at IS NULL OR k.revoked_at > now()) "
                       "AND p.disabled_at IS NULL",
                       1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        ing_problem(p, "unavailable", NULL, "the database is unreachable");
        return -1;
    }
    k = calloc(1, sizeof(*k));
    if (!k) {
        PQclear(res);
        ing_problem(p, "internal", NULL, "out of memory");
        return -1;
    }
    memcpy(k->hash, hash, KS_SHA256_LEN);
    k->valid = PQntuples(res) == 1;
    /* unknown keys are remembered briefly too, so guessing does not hammer PostgreSQL */
    k->expires_us = now + (k->valid ? ING.auth_cache_ms * 1000 : 2000000);
    if (k->valid) {
        long sc = ing_scopes_parse(PQgetvalue(res, 0, 2));
        snprintf(k->key_id, sizeof(k->key_id), "%s", PQgetvalue(res, 0, 0));
        snprintf(k->partner_id, sizeof(k->partner_id), "%s", PQgetvalue(res, 0, 1));
        k->scopes = sc < 0 ? 0 : (unsigned)sc;
        bucket_set(k->partner_id, (int)strtol(PQgetvalue(res, 0, 3), NULL, 10),
                   (int)strtol(PQgetvalue(res, 0, 4), NULL, 10));
        memcpy(r->partner_id, k->partner_id, sizeof(r->partner_id));
        memcpy(r->cred_id, k->key_id, sizeof(r->cred_id));
        r->scopes = k->scopes;
    }
    PQclear(res);
    found = k->valid;
    pthread_mutex_lock(&keys_mu);
    {
        /* drop expired entries of this chain while we hold it */
        struct key_entry **pp = &keys[h];
        while (*pp) {
            if ((*pp)->expires_us <= now) {
                struct key_entry *dead = *pp;
                *pp = dead->next;
                free(dead);
            } else {
                pp = &(*pp)->next;
            }
        }
        k->next = keys[h];
        keys[h] = k;
    }
    pthread_mutex_unlock(&keys_mu);
    return found;
}

static int auth_basic(struct ing_req *r, const char *b64, struct ing_problem *p)
{
    uint8_t dec[512], hash[KS_SHA256_LEN];
    long n = ks_b64_decode(b64, strlen(b64), dec, sizeof(dec) - 1);
    uint8_t *colon;
    int rc;

    if (n <= 0 || !(colon = memchr(dec, ':', (size_t)n)) || colon + 1 != dec + n ||
        colon == dec) {
        ing_problem(p, "unauthorized", "Authorization",
                    "basic credentials must be the API key as user name and an empty password");
        return -1;
    }
    ks_sha256(dec, (size_t)(colon - dec), hash);
    memset(dec, 0, sizeof(dec));
    rc = key_lookup(hash, r, p);
    if (rc < 0)
        return -1;
    if (rc == 0) {
        ing_problem(p, "unauthorized", "Authorization", "unknown or revoked API key");
        return -1;
    }
    return 0;
}

static int auth_bearer(struct ing_req *r, const char *tok, struct ing_problem *p)
{
    json_t *claims = NULL;
    struct ks_err e = {0};
    enum ks_code rc = ks_jwt_verify(tok, strlen(tok), ING.jwt_key, sizeof(ING.jwt_key),
                                    (int64_t)time(NULL), 5, &claims, &e);
    const char *sub, *kid, *scope;
    long sc;

    if (rc != KS_OK) {
        ing_problem(p, rc == KS_ERANGE ? "token_expired" : "unauthorized", "Authorization",
                    "bearer token refused: %s", e.msg);
        return -1;
    }
    sub = json_string_value(json_object_get(claims, "sub"));
    kid = json_string_value(json_object_get(claims, "kid"));
    scope = json_string_value(json_object_get(claims, "scope"));
    sc = scope ? ing_scopes_parse(scope) : -1;
    if (!sub || !kid || sc < 0 || strcmp(json_string_value(json_object_get(claims, "iss"))
                                             ? json_string_value(json_object_get(claims, "iss"))
                                             : "", "kasir") != 0) {
        json_decref(claims);
        ing_problem(p, "unauthorized", "Authorization", "bearer token lacks kasir claims");
        return -1;
    }
    snprintf(r->partner_id, sizeof(r->partner_id), "%s", sub);
    snprintf(r->cred_id, sizeof(r->cred_id), "%s", kid);
    r->scopes = (unsigned)sc;
    json_decref(claims);
    return 0;
}

int ing_authenticate(struct ing_req *r, unsigned need, struct ing_problem *p)
{
    const char *a = ing_header(r, "Authorization");
    int wait;

    if (!a) {
        ing_problem(p, "unauthorized", "Authorization",
                    "send HTTP Basic with the API key, or a Bearer token");
        return -1;
    }
    if (strncasecmp(a, "Basic ", 6) == 0) {
        if (auth_basic(r, a + 6, p) != 0)
            return -1;
    } else if (strncasecmp(a, "Bearer ", 7) == 0) {
        if (auth_bearer(r, a + 7, p) != 0)
            return -1;
    } else {
        ing_problem(p, "unauthorized", "Authorization", "only Basic and Bearer are accepted");
        return -1;
    }
    if ((r->scopes & need) != need) {
        char want[256];
        ing_scopes_format(need, want, sizeof(want));
        ing_problem(p, "forbidden_scope", "scope", "this endpoint needs scope %s", want);
        return -1;
    }
    wait = bucket_take(r->partner_id);
    if (wait < 0) {
        if (load_partner_limits(r->partner_id, p) != 0)
            return -1;
        wait = bucket_take(r->partner_id);
    }
    if (wait > 0) {
        ing_problem(p, "rate_limited", NULL, "the partner's request rate is exceeded");
        r->retry_after = wait;
        return -1;
    }
    return 0;
}

/* 1 if fresh (now remembered), 0 if seen before */
static int nonce_fresh(const char *key_id, const char *nonce)
{
    char id[sizeof(((struct nonce *)0)->id)];
    unsigned h;
    struct nonce *n, **pp;
    int64_t now = ing_now_us();
    int fresh = 1;

    snprintf(id, sizeof(id), "%s/%s", key_id, nonce);
    h = str_hash(id);
    pthread_mutex_lock(&nonces_mu);
    for (pp = &nonces[h]; *pp;) {
        n = *pp;
        if (n->expires_us <= now) {
            *pp = n->next;
            free(n);
            continue;
        }
        if (strcmp(n->id, id) == 0)
            fresh = 0;
        pp = &n->next;
    }
    if (fresh && (n = calloc(1, sizeof(*n)))) {
        snprintf(n->id, sizeof(n->id), "%s", id);
        n->expires_us = now + 2 * ING.token_window_s * 1000000;
        n->next = nonces[h];
        nonces[h] = n;
    }
    pthread_mutex_unlock(&nonces_mu);
    return fresh;
}

void ing_token_exchange(struct ing_req *r)
{
    struct ing_token_req t;
    struct ing_problem p;
    struct ks_db *db;
    PGresult *res = NULL;
    const char *params[1];
    uint8_t sign_key[64], mac[KS_SHA256_LEN], sig[KS_SHA256_LEN];
    long sklen, keybits, want;
    char msg[256], scopes[256], *tok = NULL;
    int64_t now = (int64_t)time(NULL);
    json_t *claims = NULL, *body;
    struct ks_err e = {0};
    uint8_t jti[12];
    char jtihex[25];

    if (ing_parse_token_req(r->body, r->len, &t, &p) != 0)
        goto fail;
    if (t.timestamp < now - ING.token_window_s || t.timestamp > now + ING.token_window_s) {
        ing_problem(&p, "auth_timestamp_skew", "timestamp",
                    "timestamp must be within %lld s of the server clock (now %lld)",
                    (long long)ING.token_window_s, (long long)now);
        goto fail;
    }
    if (!(db = ing_thread_db(&p)))
        goto fail;
    params[0] = t.key_id;
    res = PQexecParams(ks_db_conn(db),
                       "SELECT k.partner_id, encode(k.sign_key, 'hex'), "
                       "array_to_string(k.scopes, ' ') FROM api_keys k JOIN partners p "
                       "USING (partner_id) WHERE k.key_id = $1 AND (k.revoked_at IS NULL OR "
                       "k.revoked_at > now()) AND p.disabled_at IS NULL",
                       1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ing_problem(&p, "unavailable", NULL, "the database is unreachable");
        goto fail;
    }
    snprintf(msg, sizeof(msg), "%s.%lld.%s", t.key_id, (long long)t.timestamp, t.nonce);
    if (PQntuples(res) != 1 ||
        (sklen = ks_hex_decode(PQgetvalue(res, 0, 1), strlen(PQgetvalue(res, 0, 1)), sign_key,
                               sizeof(sign_key))) <= 0) {
        /* same work and answer as a wrong signature: key ids are not probed this way */
        ks_hmac_sha256("x", 1, msg, strlen(msg), mac);
        ing_problem(&p, "auth_signature_invalid", "signature", "signature does not match");
        goto fail;
    }
    ks_hmac_sha256(sign_key, (size_t)sklen, msg, strlen(msg), mac);
    if (ks_hex_decode(t.signature, 64, sig, sizeof(sig)) != KS_SHA256_LEN ||
        !ks_ct_equal(mac, sig, KS_SHA256_LEN)) {
        ing_problem(&p, "auth_signature_invalid", "signature", "signature does not match");
        goto fail;
    }
    if (!nonce_fresh(t.key_id, t.nonce)) {
        ing_problem(&p, "auth_nonce_replayed", "nonce", "this nonce was already used");
        goto fail;
    }
    keybits = ing_scopes_parse(PQgetvalue(res, 0, 2));
    want = t.scope ? ing_scopes_parse(t.scope) : keybits;
    if (want < 0) {
        ing_problem(&p, "value_not_allowed", "scope", "unknown scope name");
        goto fail;
    }
    if (keybits < 0 || (want & ~keybits) || want == 0) {
        ing_problem(&p, "forbidden_scope", "scope", "the key does not hold the scopes asked for");
        goto fail;
    }
    ing_scopes_format((unsigned)want, scopes, sizeof(scopes));
    if (ks_random_bytes(jti, sizeof(jti), &e) != KS_OK) {
        ing_problem(&p, "internal", NULL, "no randomness");
        goto fail;
    }
    ks_hex_encode(jti, sizeof(jti), jtihex);
    claims = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I}", "iss", "kasir", "sub",
                       PQgetvalue(res, 0, 0), "kid", t.key_id, "scope", scopes, "jti", jtihex,
                       "iat", (json_int_t)now, "exp", (json_int_t)(now + ING.jwt_ttl_s));
    tok = claims ? ks_jwt_sign(claims, ING.jwt_key, sizeof(ING.jwt_key), &e) : NULL;
    if (!tok) {
        ing_problem(&p, "internal", NULL, "could not sign the token");
        goto fail;
    }
    snprintf(r->partner_id, sizeof(r->partner_id), "%s", PQgetvalue(res, 0, 0));
    snprintf(r->cred_id, sizeof(r->cred_id), "%s", t.key_id);
    body = json_pack("{s:s, s:s, s:I, s:s}", "access_token", tok, "token_type", "Bearer",
                     "expires_in", (json_int_t)ING.jwt_ttl_s, "scope", scopes);
    ing_respond_json(r, 200, body);
    goto out;
fail:
    ing_respond_problem(r, &p);
out:
    if (tok) {
        memset(tok, 0, strlen(tok));
        free(tok);
    }
    json_decref(claims);
    json_decref(t.root);
    PQclear(res);
}
