/* auth.c - who is calling, and may they.
 *
 * Every request is authenticated on its headers, before its body is read (http.c).
 * HTTP Basic: the API key is the user name, the password is empty. The key is hashed
 * (SHA-256) and looked up in api_keys; the answer (partner, scopes, rate limit) is cached
 * for auth.cache_ttl (never past the key's revocation time), so the hot path costs one
 * hash and one table probe.
 * Bearer: an HS256 JWT from POST /v1/auth/token, verified in memory (alg pinned); its key
 * id is checked against the same cache, so a token dies with its key or its partner.
 * A cache miss is looked up by a reader thread (reader.c) while the connection is
 * suspended: no server thread ever waits for PostgreSQL. Failed authentications and token
 * requests cost the client address a token of its bucket (auth.ip_rps, auth.ip_burst); a
 * miss is looked up only while the address has a token left, and costs one only when the
 * key turns out unknown or revoked (the refusal takes it). So a flood of made-up keys is
 * refused with 429 without a query once its failures have emptied the bucket, and a
 * partner opening more connections at once than the burst while its key is not cached (at
 * start, at the entry's expiry) is never refused. Concurrent misses for one credential
 * cost one query: a lookup already running for it, started since the last flush, answers
 * them all (struct lookup).
 * Revocations take effect at once: a trigger on api_keys and partners (ingress_auth_changed)
 * sends NOTIFY kasir_ingress_auth, and the listener thread empties the caches.
 * Token exchange: {key_id, timestamp, nonce, signature[, scope]} where signature is
 * hex HMAC-SHA256(sign_key, "<key_id>.<timestamp>.<nonce>") - with a scope,
 * "<key_id>.<timestamp>.<nonce> <scope>" - and sign_key = HMAC-SHA256(api_key,
 * "kasir-token-v1"); the timestamp must be within auth.token_window of the server clock and
 * a nonce is accepted once (kept twice the window; at most auth.nonce_max at a time).
 * Rate limits: a token bucket per partner (partners.rate_limit_rps / _burst). */
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "lib/crypto.h"
#include "lib/hash.h"
#include "lib/jwt.h"
#include "lib/log.h"
#include "producers/ingress/ingress.h"
#include "lib/banned.h"

const char *const ing_scope_names[ING_SCOPE_COUNT] = {
    "payments:write", "payments:read", "refunds:write", "refunds:read", "payouts:write",
    "payouts:read", "settlements:write", "reconciliations:read", "admin", "ops:read",
    "ledger:global",
};

/* strict: an unknown name is -1 (what a person typed); else it grants nothing and the
 * others stand (what a newer ingress stored or signed: a scope added later must not leave
 * its keys and tokens with no scope at all on an ingress that does not know it yet) */
static long scopes_parse(const char *s, int strict)
{
    long bits = 0;
    int any = 0;

    while (*s) {
        size_t n = strcspn(s, " ,{}\"");
        if (n) {
            int i, found = 0;
            for (i = 0; i < ING_SCOPE_COUNT; i++)
                if (strlen(ing_scope_names[i]) == n && strncmp(s, ing_scope_names[i], n) == 0) {
                    bits |= 1L << i;
                    found = 1;
                }
            if (!found && strict)
                return -1;
            any = 1;
            s += n;
        } else {
            s++;
        }
    }
    return any ? bits : -1;
}

long ing_scopes_parse(const char *s)
{
    return scopes_parse(s, 1);
}

long ing_scopes_stored(const char *s)
{
    return scopes_parse(s, 0);
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

/* --- caches ------------------------------------------------------------------------ */

#define NB 4096
#define NIP 8192

/* A credential: found by SHA-256 of the API key (Basic) or of "kid:<key id>" (Bearer). */
struct key_entry {
    uint8_t k[KS_SHA256_LEN];
    char partner_id[KS_ID_LEN], key_id[KS_ID_LEN];
    unsigned scopes;
    int valid;
    int64_t expires_us; /* monotonic */
    struct key_entry *next;
};

struct bucket {
    char partner_id[KS_ID_LEN];
    int64_t tokens_u; /* tokens x 1e6 */
    int64_t last_us, loaded_us;
    uint64_t gen; /* the cache generation of the lookup that read rps and burst */
    int rps, burst;
    struct bucket *next;
};

struct nonce {
    char id[KS_ID_LEN + 72];
    int64_t expires_us;
    struct nonce *next;
};

struct ipbucket {
    char ip[48];
    int64_t tokens_u, last_us;
};

static struct key_entry *keys[NB];
static struct bucket *buckets[NB];
static struct nonce *nonces[NB];
static struct ipbucket ipb[NIP];
static long n_keys, n_nonces;
static uint64_t keys_gen; /* bumped by every flush, under keys_mu */
static pthread_mutex_t keys_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t buckets_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t nonces_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t ip_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t tok_mu = PTHREAD_MUTEX_INITIALIZER;
static int64_t tok_tokens_u, tok_last_us;
static _Atomic long st_lookups, st_coalesced, st_ip_limited, st_flushes;

/* A credential being looked up, and the requests (suspended, queued after it) that wait
 * for the same answer, linked by jnext. Under keys_mu, with the cache: a miss finds either
 * the answer cached or the lookup still running, never neither while one is due. A request
 * joins only a lookup started in the current cache generation: one started before a flush
 * may have read the key before its revocation (test 235). */
struct lookup {
    uint8_t k[KS_SHA256_LEN];
    uint64_t gen;
    struct ing_req *waiters;
    struct lookup *next;
};
static struct lookup *lookups;

static unsigned str_hash(const char *s)
{
    return ks_hash_str(KS_HASH_INIT, s);
}

void ing_auth_stats(struct ing_auth_stats *out)
{
    out->lookups = st_lookups;
    out->coalesced = st_coalesced;
    out->ip_limited = st_ip_limited;
    out->cache_entries = n_keys;
    out->nonces = n_nonces;
    out->flushes = st_flushes;
}

/* Empties the credential cache and the partners' limits (they reload with the next
 * lookup): a key or a partner changed. */
static void caches_flush(void)
{
    size_t i;

    pthread_mutex_lock(&keys_mu);
    for (i = 0; i < NB; i++) {
        while (keys[i]) {
            struct key_entry *k = keys[i];
            keys[i] = k->next;
            free(k);
        }
    }
    n_keys = 0;
    keys_gen++;
    pthread_mutex_unlock(&keys_mu);
    pthread_mutex_lock(&buckets_mu);
    for (i = 0; i < NB; i++)
        for (struct bucket *b = buckets[i]; b; b = b->next)
            b->loaded_us = 0; /* stale: the next request looks its key up again */
    pthread_mutex_unlock(&buckets_mu);
    st_flushes++;
}

/* 1 valid (r filled), 0 known invalid, -1 not cached; the caller holds keys_mu */
static int cache_find(const uint8_t k[KS_SHA256_LEN], struct ing_req *r)
{
    unsigned h = (unsigned)(k[0] | k[1] << 8 | k[2] << 16) % NB;
    struct key_entry *e;
    int64_t now = ks_clock_mono_us();
    int found = -1;

    for (e = keys[h]; e; e = e->next)
        if (memcmp(e->k, k, KS_SHA256_LEN) == 0 && e->expires_us > now) {
            found = e->valid;
            if (e->valid) {
                memcpy(r->partner_id, e->partner_id, sizeof(r->partner_id));
                memcpy(r->cred_id, e->key_id, sizeof(r->cred_id));
                r->scopes = e->scopes;
            }
            break;
        }
    return found;
}

static int cache_get(const uint8_t k[KS_SHA256_LEN], struct ing_req *r)
{
    int found;

    pthread_mutex_lock(&keys_mu);
    found = cache_find(k, r);
    pthread_mutex_unlock(&keys_mu);
    return found;
}

/* Remembers a lookup made while the cache generation was gen (a flush since then means
 * the answer may predate a revocation: it is not kept). The caller holds keys_mu. */
static void cache_put(const struct key_entry *src, uint64_t gen)
{
    unsigned h = (unsigned)(src->k[0] | src->k[1] << 8 | src->k[2] << 16) % NB;
    int64_t now = ks_clock_mono_us();
    struct key_entry *e, **pp;

    if (gen != keys_gen)
        return;
    /* this chain's dead entries (and an older entry for the same credential) go */
    for (pp = &keys[h]; *pp;) {
        e = *pp;
        if (e->expires_us <= now || memcmp(e->k, src->k, KS_SHA256_LEN) == 0) {
            *pp = e->next;
            free(e);
            n_keys--;
        } else {
            pp = &e->next;
        }
    }
    if (n_keys >= ING.cache_max) {
        /* full: sweep every chain once; if still full, unknown keys are not remembered */
        size_t i;
        for (i = 0; i < NB; i++)
            for (pp = &keys[i]; *pp;) {
                e = *pp;
                if (e->expires_us <= now) {
                    *pp = e->next;
                    free(e);
                    n_keys--;
                } else {
                    pp = &e->next;
                }
            }
        if (n_keys >= ING.cache_max && !src->valid)
            return;
    }
    if ((e = malloc(sizeof(*e))) != NULL) {
        *e = *src;
        e->next = keys[h];
        keys[h] = e;
        n_keys++;
    }
}

/* A token bucket of rps tokens a second, at most burst: refills it to now and, when take,
 * takes one. 0 (a token was there), or the seconds to wait for the next token. The caller
 * holds the bucket's lock. */
static int bucket_refill_take(int64_t *tokens_u, int64_t *last_us, int64_t now, int rps,
                              int burst, int take)
{
    int64_t cap = (int64_t)burst * 1000000;

    if (rps < 1)
        rps = 1;
    *tokens_u += (now - *last_us) * rps;
    if (*tokens_u > cap)
        *tokens_u = cap;
    *last_us = now;
    if (*tokens_u >= 1000000) {
        if (take)
            *tokens_u -= 1000000;
        return 0;
    }
    return (int)((1000000 - *tokens_u) / rps / 1000000) + 1;
}

/* A partner's limits as a lookup of cache generation gen read them. They replace limits
 * read by an older lookup only: a lookup made before a change may finish after one made
 * since. They are fresh only when no flush came since the lookup began; otherwise they
 * serve that lookup's own requests, and the next request looks its key up again (test
 * 235). The caller holds keys_mu, so no flush comes between the check and the write. */
static void bucket_set(const char *partner, int rps, int burst, uint64_t gen)
{
    unsigned h = str_hash(partner) % NB;
    struct bucket *b;

    pthread_mutex_lock(&buckets_mu);
    for (b = buckets[h]; b; b = b->next)
        if (strcmp(b->partner_id, partner) == 0)
            break;
    if (b && gen < b->gen) {
        pthread_mutex_unlock(&buckets_mu);
        return;
    }
    if (!b && (b = calloc(1, sizeof(*b)))) {
        snprintf(b->partner_id, sizeof(b->partner_id), "%s", partner);
        b->tokens_u = (int64_t)burst * 1000000;
        b->last_us = ks_clock_mono_us();
        b->next = buckets[h];
        buckets[h] = b;
    }
    if (b) {
        b->rps = rps > 0 ? rps : 1;
        b->burst = burst > 0 ? burst : 1;
        b->gen = gen;
        b->loaded_us = gen == keys_gen ? ks_clock_mono_us() : 0;
    }
    pthread_mutex_unlock(&buckets_mu);
}

/* 0: allowed; >0: seconds to wait; -1: the partner's limits are not loaded (or stale; with
 * any_age, only when there is no bucket: memory ran out at the lookup, and admit lets the
 * request through untaxed) */
static int bucket_take(const char *partner, int any_age)
{
    unsigned h = str_hash(partner) % NB;
    struct bucket *b;
    int64_t now = ks_clock_mono_us();
    int rc = -1;

    pthread_mutex_lock(&buckets_mu);
    for (b = buckets[h]; b; b = b->next)
        if (strcmp(b->partner_id, partner) == 0)
            break;
    if (b && (any_age || (b->loaded_us && now - b->loaded_us < ING.auth_cache_ms * 1000)))
        rc = bucket_refill_take(&b->tokens_u, &b->last_us, now, b->rps, b->burst, 1);
    pthread_mutex_unlock(&buckets_mu);
    return rc;
}

/* The client address's bucket of unauthenticated work: refilled, and a token taken when
 * take. 0, or the seconds to wait (counted as a refusal). */
static int ip_bucket(struct ing_req *r, int take)
{
    const char *ip = ing_client_ip(r);
    struct ipbucket *b = &ipb[str_hash(ip) % NIP];
    int64_t now = ks_clock_mono_us(), cap = (int64_t)ING.ip_burst * 1000000;
    int rc;

    pthread_mutex_lock(&ip_mu);
    if (strcmp(b->ip, ip) != 0 && (!b->ip[0] || now - b->last_us > 60000000)) {
        /* a free slot, or one idle for a minute: this address's now (a busy slot is
         * shared: two addresses with the same hash share a bucket) */
        snprintf(b->ip, sizeof(b->ip), "%s", ip);
        b->tokens_u = cap;
        b->last_us = now;
    }
    rc = bucket_refill_take(&b->tokens_u, &b->last_us, now, ING.ip_rps, ING.ip_burst, take);
    pthread_mutex_unlock(&ip_mu);
    if (rc)
        st_ip_limited++;
    return rc;
}

int ing_ip_take(struct ing_req *r)
{
    return ip_bucket(r, 1);
}

/* the deployment-wide limit of token requests (auth.token_rps, burst twice that) */
static int token_take(void)
{
    int64_t now = ks_clock_mono_us();
    int rps = ING.token_rps > 0 ? ING.token_rps : 1, rc;

    pthread_mutex_lock(&tok_mu);
    if (!tok_last_us) {
        tok_tokens_u = (int64_t)2 * rps * 1000000;
        tok_last_us = now;
    }
    rc = bucket_refill_take(&tok_tokens_u, &tok_last_us, now, rps, 2 * rps, 1);
    pthread_mutex_unlock(&tok_mu);
    return rc;
}

/* --- the listener: NOTIFY kasir_ingress_auth empties the caches ----------------------- */

static pthread_t listen_thread;
static int listen_started;
static _Atomic int listen_stop;

/* connected and listening within 2 s, or NULL: a database that hangs in LISTEN after
 * taking the connection must not hold the thread, the stop waits for it */
static PGconn *listen_connect(void)
{
    int64_t deadline = ks_clock_mono_us() + 2000000;
    PGconn *c = ing_pg_connect_by("kasir-ingress-auth", deadline);
    PGresult *res = NULL;
    int timed_out = 0, lost = 0;

    if (!c)
        return NULL;
    res = ing_pg_exec_by(c, "LISTEN kasir_ingress_auth", 0, NULL, deadline, &timed_out, &lost);
    if (PQresultStatus(res) != PGRES_COMMAND_OK || lost) {
        PQclear(res);
        PQfinish(c);
        return NULL;
    }
    PQclear(res);
    return c;
}

static void *listen_main(void *arg)
{
    PGconn *c = NULL;
    (void)arg;

    while (!listen_stop && !ING.stopping) {
        struct pollfd pfd;
        PGnotify *n;
        int flush = 0;

        if (!c || PQstatus(c) != CONNECTION_OK) {
            PQfinish(c);
            if (!(c = listen_connect())) {
                for (int i = 0; i < 5 && !listen_stop && !ING.stopping; i++)
                    usleep(100000);
                continue;
            }
            /* while it was away a change may have gone unheard */
            caches_flush();
        }
        pfd.fd = PQsocket(c);
        pfd.events = POLLIN;
        pfd.revents = 0;
        if (poll(&pfd, 1, 200) > 0 && !PQconsumeInput(c))
            continue; /* the connection is gone: the next round reconnects */
        while ((n = PQnotifies(c)) != NULL) {
            flush = 1;
            PQfreemem(n);
        }
        if (flush) {
            caches_flush();
            ks_log(KS_LOG_INFO, "ingress.auth.flushed", "a key or partner changed", NULL);
        }
    }
    PQfinish(c);
    return NULL;
}

int ing_auth_init(void)
{
    listen_stop = 0;
    if (pthread_create(&listen_thread, NULL, listen_main, NULL) != 0)
        return -1;
    listen_started = 1;
    return 0;
}

int ing_auth_stop(void)
{
    if (listen_started) {
        listen_stop = 1;
        if (ing_join_by(listen_thread, "auth listener", 1) != 0)
            return -1; /* not a failed stop: the listener holds nothing */
        listen_started = 0;
    }
    return 0;
}

/* --- authentication ------------------------------------------------------------------- */

static const char key_by_hash_sql[] =
    "SELECT k.key_id, k.partner_id, array_to_string(k.scopes, ' '), p.rate_limit_rps, "
    "p.rate_limit_burst, (extract(epoch FROM k.revoked_at - now()) * 1000)::bigint "
    "FROM api_keys k JOIN partners p USING (partner_id) WHERE k.key_hash = $1::bytea "
    "AND (k.revoked_at IS NULL OR k.revoked_at > now()) AND p.disabled_at IS NULL";
static const char key_by_id_sql[] =
    "SELECT k.key_id, k.partner_id, array_to_string(k.scopes, ' '), p.rate_limit_rps, "
    "p.rate_limit_burst, (extract(epoch FROM k.revoked_at - now()) * 1000)::bigint "
    "FROM api_keys k JOIN partners p USING (partner_id) WHERE k.key_id = $1 "
    "AND (k.revoked_at IS NULL OR k.revoked_at > now()) AND p.disabled_at IS NULL";

/* the answer of a lookup, to a request that waited for it */
static void lookup_copy(struct ing_req *to, const struct ing_req *from)
{
    to->auth_rc = from->auth_rc;
    to->auth_p = from->auth_p;
    if (from->auth_rc == 1) {
        memcpy(to->partner_id, from->partner_id, sizeof(to->partner_id));
        memcpy(to->cred_id, from->cred_id, sizeof(to->cred_id));
        to->scopes = from->scopes;
    }
}

/* reader thread: the credential of r (auth_hash, or cred_id for a token). A miss queued
 * while another lookup of the same credential ran finds the answer cached, or waits for
 * that lookup: many connections of one partner opening at once cost one query. */
static void lookup_job(struct ing_req *r, struct ing_rdb *db)
{
    char hex[2 * KS_SHA256_LEN + 3];
    const char *params[1];
    struct key_entry e;
    struct lookup me, *l, **pp;
    struct ing_req *w;
    uint64_t gen;
    PGresult *res;
    int rc, rps = 0, burst = 0;

    pthread_mutex_lock(&keys_mu);
    if (!r->auth_reload && (rc = cache_find(r->auth_hash, r)) >= 0) {
        pthread_mutex_unlock(&keys_mu);
        st_coalesced++;
        r->auth_rc = rc;
        ing_auth_resume(r);
        return;
    }
    for (l = lookups; l; l = l->next)
        if (l->gen == keys_gen && memcmp(l->k, r->auth_hash, KS_SHA256_LEN) == 0)
            break;
    if (l) {
        /* r is suspended; the running lookup resumes it */
        r->jnext = l->waiters;
        l->waiters = r;
        pthread_mutex_unlock(&keys_mu);
        st_coalesced++;
        return;
    }
    memcpy(me.k, r->auth_hash, KS_SHA256_LEN);
    me.gen = gen = keys_gen;
    me.waiters = NULL;
    me.next = lookups;
    lookups = &me;
    pthread_mutex_unlock(&keys_mu);
    st_lookups++;
    if (r->auth_bearer) {
        params[0] = r->cred_id;
    } else {
        hex[0] = '\\';
        hex[1] = 'x';
        ks_hex_encode(r->auth_hash, KS_SHA256_LEN, hex + 2);
        params[0] = hex;
    }
    res = ing_rdb_query(db, r, r->auth_bearer ? key_by_id_sql : key_by_hash_sql, 1, params,
                        &r->auth_p);
    memset(&e, 0, sizeof(e));
    if (!res) {
        r->auth_rc = -1;
    } else {
        memcpy(e.k, r->auth_hash, KS_SHA256_LEN);
        e.valid = PQntuples(res) == 1;
        /* unknown keys are remembered briefly too, so guessing does not hammer PostgreSQL */
        e.expires_us = ks_clock_mono_us() + (e.valid ? ING.auth_cache_ms * 1000 : 2000000);
        if (e.valid) {
            long sc = ing_scopes_stored(PQgetvalue(res, 0, 2));
            snprintf(e.key_id, sizeof(e.key_id), "%s", PQgetvalue(res, 0, 0));
            snprintf(e.partner_id, sizeof(e.partner_id), "%s", PQgetvalue(res, 0, 1));
            e.scopes = sc < 0 ? 0 : (unsigned)sc;
            /* a key in its rotation grace is cached no longer than it has left */
            if (!PQgetisnull(res, 0, 5)) {
                int64_t left = strtoll(PQgetvalue(res, 0, 5), NULL, 10);
                if (ks_clock_mono_us() + left * 1000 < e.expires_us)
                    e.expires_us = ks_clock_mono_us() + (left > 0 ? left : 0) * 1000;
            }
            rps = (int)strtol(PQgetvalue(res, 0, 3), NULL, 10);
            burst = (int)strtol(PQgetvalue(res, 0, 4), NULL, 10);
            memcpy(r->partner_id, e.partner_id, sizeof(r->partner_id));
            memcpy(r->cred_id, e.key_id, sizeof(r->cred_id));
            r->scopes = e.scopes;
        }
        PQclear(res);
        r->auth_rc = e.valid;
    }
    /* the answer is cached and the lookup gone in one step (see struct lookup) */
    pthread_mutex_lock(&keys_mu);
    if (e.valid)
        bucket_set(e.partner_id, rps, burst, gen);
    if (res)
        cache_put(&e, gen);
    for (pp = &lookups; *pp != &me; pp = &(*pp)->next)
        ;
    *pp = me.next;
    pthread_mutex_unlock(&keys_mu);
    while ((w = me.waiters) != NULL) {
        me.waiters = w->jnext;
        lookup_copy(w, r);
        ing_auth_resume(w);
    }
    ing_auth_resume(r);
}

/* a refusal of unauthenticated work: 401 while the address has tokens, 429 after */
static int refuse(struct ing_req *r, struct ing_problem *p, const char *code, const char *detail)
{
    int wait = ing_ip_take(r);

    if (wait > 0) {
        ing_problem(p, "rate_limited", NULL,
                    "too many failed authentications from this address");
        r->retry_after = wait;
    } else {
        ing_problem(p, code, "Authorization", "%s", detail);
    }
    return -1;
}

/* scope and rate limit of an identified caller; -2 when the partner's limits must be
 * looked up first */
static int admit(struct ing_req *r, unsigned need, struct ing_problem *p, int may_lookup)
{
    int wait;

    if (r->auth_bearer) {
        /* the token's partner must still own the key; its scopes no more than the key's */
        if (strcmp(r->partner_id, r->tok_sub) != 0)
            return refuse(r, p, "unauthorized", "bearer token refused: its key is not the partner's");
        r->scopes &= r->tok_scopes;
    }
    if ((r->scopes & need) != need) {
        char want[256];
        ing_scopes_format(need, want, sizeof(want));
        ing_problem(p, "forbidden_scope", "scope", "this endpoint needs scope %s", want);
        return -1;
    }
    /* after its own lookup a request takes from the limits that lookup loaded, however
     * stale they have become since (a flush by NOTIFY in between, an auth.cache_ttl
     * shorter than the lookup): "stale" asks for a lookup, and it has just had one
     * (test 234; admitted without marking it authed, it was refused as unauthenticated) */
    wait = bucket_take(r->partner_id, !may_lookup);
    if (wait < 0 && may_lookup)
        return -2;
    if (wait > 0) {
        ing_problem(p, "rate_limited", NULL, "the partner's request rate is exceeded");
        r->retry_after = wait;
        return -1;
    }
    r->authed = 1;
    return 0;
}

static int bearer_claims(struct ing_req *r, const char *tok, struct ing_problem *p)
{
    json_t *claims = NULL;
    struct ks_err e = {0};
    enum ks_code rc = ks_jwt_verify(tok, strlen(tok), ING.jwt_key, sizeof(ING.jwt_key),
                                    (int64_t)time(NULL), 5, &claims, &e);
    const char *sub, *kid, *scope, *iss;
    long sc;
    char k[KS_ID_LEN + 8];

    if (rc != KS_OK) {
        if (rc == KS_ERANGE) {
            ing_problem(p, "token_expired", "Authorization", "bearer token refused: %s", e.msg);
            return -1;
        }
        char d[300];
        snprintf(d, sizeof(d), "bearer token refused: %s", e.msg);
        return refuse(r, p, "unauthorized", d);
    }
    sub = json_string_value(json_object_get(claims, "sub"));
    kid = json_string_value(json_object_get(claims, "kid"));
    scope = json_string_value(json_object_get(claims, "scope"));
    iss = json_string_value(json_object_get(claims, "iss"));
    sc = scope ? ing_scopes_stored(scope) : -1;
    if (!sub || !kid || sc < 0 || !iss || strcmp(iss, "kasir") != 0 ||
        strlen(sub) >= sizeof(r->tok_sub) || strlen(kid) >= sizeof(r->cred_id)) {
        json_decref(claims);
        return refuse(r, p, "unauthorized", "bearer token lacks kasir claims");
    }
    snprintf(r->tok_sub, sizeof(r->tok_sub), "%s", sub);
    snprintf(r->cred_id, sizeof(r->cred_id), "%s", kid);
    r->tok_scopes = (unsigned)sc;
    r->auth_bearer = 1;
    json_decref(claims);
    snprintf(k, sizeof(k), "kid:%s", r->cred_id);
    ks_sha256(k, strlen(k), r->auth_hash);
    return 0;
}

int ing_auth_begin(struct ing_req *r, unsigned need, struct ing_problem *p)
{
    const char *a = ing_header(r, "Authorization");
    int rc, wait;

    if (!a)
        return refuse(r, p, "unauthorized", "send HTTP Basic with the API key, or a Bearer token");
    if (strncasecmp(a, "Basic ", 6) == 0) {
        uint8_t dec[512];
        long n = ks_b64_decode(a + 6, strlen(a + 6), dec, sizeof(dec) - 1);
        uint8_t *colon;
        if (n <= 0 || !(colon = memchr(dec, ':', (size_t)n)) || colon + 1 != dec + n ||
            colon == dec)
            return refuse(r, p, "unauthorized",
                          "basic credentials must be the API key as user name and an empty password");
        ks_sha256(dec, (size_t)(colon - dec), r->auth_hash);
        memset(dec, 0, sizeof(dec));
    } else if (strncasecmp(a, "Bearer ", 7) == 0) {
        if (bearer_claims(r, a + 7, p) != 0)
            return -1;
    } else {
        return refuse(r, p, "unauthorized", "only Basic and Bearer are accepted");
    }
    rc = cache_get(r->auth_hash, r);
    if (rc == 0)
        return refuse(r, p, "unauthorized", r->auth_bearer ? "bearer token refused: its key is revoked"
                                                            : "unknown or revoked API key");
    r->auth_reload = 0;
    if (rc == 1) {
        rc = admit(r, need, p, 1);
        if (rc != -2)
            return rc;
        /* the partner's limits are stale: look the key up again */
        r->auth_reload = 1;
    }
    /* not cached: a reader looks it up while the address has a token left; the token is
     * taken only if the key turns out unknown or revoked (refuse) */
    if ((wait = ip_bucket(r, 0)) > 0) {
        ing_problem(p, "rate_limited", NULL, "too many unauthenticated requests from this address");
        r->retry_after = wait;
        return -1;
    }
    if (ing_defer(r, lookup_job, 1, ING.auth_timeout_ms, p) != 0)
        return -1;
    return 1;
}

int ing_auth_finish(struct ing_req *r, unsigned need, struct ing_problem *p)
{
    if (r->auth_rc < 0) {
        /* the lookup failed (PostgreSQL down or slow): it costs the address a token, so
         * made-up keys cannot keep the readers busy during an outage */
        (void)ing_ip_take(r);
        *p = r->auth_p;
        return -1;
    }
    if (r->auth_rc == 0)
        return refuse(r, p, "unauthorized", r->auth_bearer ? "bearer token refused: its key is revoked"
                                                            : "unknown or revoked API key");
    return admit(r, need, p, 0);
}

/* --- token exchange ------------------------------------------------------------------ */

/* 1 if fresh (now remembered), 0 if seen before, -1 when the cache is full */
static int nonce_fresh(const char *key_id, const char *nonce)
{
    char id[sizeof(((struct nonce *)0)->id)];
    unsigned h;
    struct nonce *n, **pp;
    int64_t now = ks_clock_mono_us();
    int fresh = 1;

    snprintf(id, sizeof(id), "%s/%s", key_id, nonce);
    h = str_hash(id) % NB;
    pthread_mutex_lock(&nonces_mu);
    for (pp = &nonces[h]; *pp;) {
        n = *pp;
        if (n->expires_us <= now) {
            *pp = n->next;
            free(n);
            n_nonces--;
            continue;
        }
        if (strcmp(n->id, id) == 0)
            fresh = 0;
        pp = &n->next;
    }
    if (fresh && n_nonces >= ING.nonce_max) {
        size_t i;
        for (i = 0; i < NB; i++)
            for (pp = &nonces[i]; *pp;) {
                n = *pp;
                if (n->expires_us <= now) {
                    *pp = n->next;
                    free(n);
                    n_nonces--;
                } else {
                    pp = &n->next;
                }
            }
        /* still full: refusing is safe, forgetting a nonce would allow its replay */
        if (n_nonces >= ING.nonce_max)
            fresh = -1;
    }
    if (fresh == 1 && (n = calloc(1, sizeof(*n)))) {
        snprintf(n->id, sizeof(n->id), "%s", id);
        n->expires_us = now + 2 * ING.token_window_s * 1000000;
        n->next = nonces[h];
        nonces[h] = n;
        n_nonces++;
    }
    pthread_mutex_unlock(&nonces_mu);
    return fresh;
}

/* reader thread: the key's sign key, the signature, the nonce, the token */
static void token_job(struct ing_req *r, struct ing_rdb *db)
{
    struct ing_token_req *t = &r->u.token;
    struct ing_problem p;
    PGresult *res;
    const char *params[1] = {t->key_id};
    uint8_t sign_key[64], mac[KS_SHA256_LEN], sig[KS_SHA256_LEN];
    long sklen, keybits, want;
    char msg[1024], scopes[256], *tok = NULL;
    int64_t now = (int64_t)time(NULL);
    json_t *claims = NULL, *body;
    struct ks_err e = {0};
    uint8_t jti[12];
    char jtihex[25];
    int fresh;

    res = ing_rdb_query(db, r,
                        "SELECT k.partner_id, encode(k.sign_key, 'hex'), "
                        "array_to_string(k.scopes, ' ') FROM api_keys k JOIN partners p "
                        "USING (partner_id) WHERE k.key_id = $1 AND (k.revoked_at IS NULL OR "
                        "k.revoked_at > now()) AND p.disabled_at IS NULL",
                        1, params, &p);
    if (!res)
        goto fail;
    /* the scope asked for is signed too (after a space, which no other part contains):
     * a scope cannot be added to, nor taken from, a signed request */
    if (t->scope)
        snprintf(msg, sizeof(msg), "%s.%lld.%s %s", t->key_id, (long long)t->timestamp, t->nonce,
                 t->scope);
    else
        snprintf(msg, sizeof(msg), "%s.%lld.%s", t->key_id, (long long)t->timestamp, t->nonce);
    if (PQntuples(res) != 1 ||
        (sklen = ks_hex_decode(PQgetvalue(res, 0, 1), strlen(PQgetvalue(res, 0, 1)), sign_key,
                               sizeof(sign_key))) <= 0) {
        /* same work and answer as a wrong signature: key ids are not probed this way */
        ks_hmac_sha256("x", 1, msg, strlen(msg), mac);
        ing_problem(&p, "auth_signature_invalid", "signature", "signature does not match");
        goto fail;
    }
    ks_hmac_sha256(sign_key, (size_t)sklen, msg, strlen(msg), mac);
    if (ks_hex_decode(t->signature, 64, sig, sizeof(sig)) != KS_SHA256_LEN ||
        !ks_ct_equal(mac, sig, KS_SHA256_LEN)) {
        ing_problem(&p, "auth_signature_invalid", "signature", "signature does not match");
        goto fail;
    }
    fresh = nonce_fresh(t->key_id, t->nonce);
    if (fresh < 0) {
        ing_problem(&p, "rate_limited", NULL, "too many token requests; retry later");
        r->retry_after = (int)ING.token_window_s;
        goto fail;
    }
    if (!fresh) {
        ing_problem(&p, "auth_nonce_replayed", "nonce", "this nonce was already used");
        goto fail;
    }
    keybits = ing_scopes_stored(PQgetvalue(res, 0, 2));
    want = t->scope ? ing_scopes_parse(t->scope) : keybits;
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
                       PQgetvalue(res, 0, 0), "kid", t->key_id, "scope", scopes, "jti", jtihex,
                       "iat", (json_int_t)now, "exp", (json_int_t)(now + ING.jwt_ttl_s));
    tok = claims ? ks_jwt_sign(claims, ING.jwt_key, sizeof(ING.jwt_key), &e) : NULL;
    if (!tok) {
        ing_problem(&p, "internal", NULL, "could not sign the token");
        goto fail;
    }
    snprintf(r->partner_id, sizeof(r->partner_id), "%s", PQgetvalue(res, 0, 0));
    snprintf(r->cred_id, sizeof(r->cred_id), "%s", t->key_id);
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
    PQclear(res);
    ing_req_done(r);
}

void ing_token_exchange(struct ing_req *r)
{
    struct ing_token_req *t = &r->u.token;
    struct ing_problem p;
    int64_t now = (int64_t)time(NULL);

    if (ing_parse_token_req(r->body, r->len, t, &p) != 0)
        goto fail;
    r->parsed = t->root;
    if (t->timestamp < now - ING.token_window_s || t->timestamp > now + ING.token_window_s) {
        ing_problem(&p, "auth_timestamp_skew", "timestamp",
                    "timestamp must be within %lld s of the server clock (now %lld)",
                    (long long)ING.token_window_s, (long long)now);
        goto fail;
    }
    if (token_take() != 0) {
        ing_problem(&p, "rate_limited", NULL, "too many token requests; retry later");
        r->retry_after = 1;
        goto fail;
    }
    if (ing_defer(r, token_job, 1, ING.auth_timeout_ms, &p) != 0)
        goto fail;
    return;
fail:
    ing_respond_problem(r, &p);
}
