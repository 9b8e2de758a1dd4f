/* store.c - the sandbox's memory: objects, references, idempotency records, the ledger.
 *
 * One mutex guards it all. A PSP call holds it while its handler runs (the body's parsing,
 * look-ups in jansson objects, which are hash tables, the answer's JSON); libmicrohttpd's
 * parsing and sending, and the delays a fault asks for, are outside it. One lock is
 * simpler than finer ones, and with the sandbox's 2 HTTP threads not what limits it, as
 * long as nothing under it grows with the data (below).
 *
 * A map that grows with the calls (objects, references, idempotency records, refund
 * totals) is SB_SHARDS jansson objects, the key's hash choosing one. jansson grows an object
 * by rehashing every key it holds at once: one object of 131,072 keys took 16 ms to grow on
 * a quiet core, 43 ms at 262,144, under the lock, so every PSP call waited, once per map,
 * each time the charges doubled; in the end-to-end bench a sandbox past ~130,000 charges
 * spent ~130 ms of CPU at once and the executor's calls stalled behind it
 * (docs/BENCHMARKS.md, session 37). A shard grows 1/SB_SHARDS of that at a time
 * (tests/bench/sandbox_bench.sh: the slowest call the clients saw 3-6 ms against 63-92,
 * the sandbox's CPU a call the same within the bench's noise; session 38). For the same
 * reason a refund's "refunded so far" is a total kept per charge, not a scan of the ledger
 * (4-10 ms of CPU a refund at 150,000 entries). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deploy/psp-sandbox/sandbox.h"
#include "lib/crypto.h"
#include "lib/jsonw.h"
#include "lib/money.h"
#include "lib/banned.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
#define SB_SHARDS 256
static json_t *objs;   /* kind -> shards of { id -> object } */
static json_t *refs;   /* kind -> shards of { ref -> id } */
static json_t *idem;   /* shards of { scope -> { fp, status, body, ctype, request_id } } */
static json_t *refunded; /* shards of { "psp|charge id" -> minor units refunded } */
static json_t *ledger; /* [ entry ] */
static uint64_t rng;
static uint64_t id_counter;

void sb_lock(void)
{
    pthread_mutex_lock(&mu);
}

void sb_unlock(void)
{
    pthread_mutex_unlock(&mu);
}

/* a map of SB_SHARDS empty objects (a JSON array), NULL when out of memory */
static json_t *shards_new(void)
{
    json_t *m = json_array();
    size_t i;

    for (i = 0; m && i < SB_SHARDS; i++)
        if (json_array_append_new(m, json_object()) != 0) {
            json_decref(m);
            return NULL;
        }
    return m;
}

/* the shard of map that holds key (FNV-1a of the key); NULL for a NULL key, which jansson's
 * get and set then refuse */
static json_t *shard(json_t *map, const char *key)
{
    uint32_t h = 2166136261u;

    if (!key)
        return NULL;
    for (; *key; key++)
        h = (h ^ (unsigned char)*key) * 16777619u;
    return json_array_get(map, h % SB_SHARDS);
}

static size_t largest_shard(json_t *map, size_t max)
{
    json_t *o;
    size_t i;

    json_array_foreach(map, i, o) {
        if (json_object_size(o) > max)
            max = json_object_size(o);
    }
    return max;
}

size_t sb_store_largest_object(void)
{
    json_t *roots[] = {objs, refs}, *m;
    const char *kind;
    size_t r, max = largest_shard(refunded, largest_shard(idem, 0));

    for (r = 0; r < 2; r++) {
        json_object_foreach(roots[r], kind, m)
            max = largest_shard(m, max);
    }
    return max;
}

int sb_store_init(void)
{
    objs = json_object();
    refs = json_object();
    idem = shards_new();
    refunded = shards_new();
    ledger = json_array();
    sb_reseed(SB.faults.seed);
    return objs && refs && idem && refunded && ledger ? 0 : -1;
}

void sb_store_reset(void)
{
    json_t *o;
    size_t i;

    json_object_clear(objs);
    json_object_clear(refs);
    json_array_foreach(idem, i, o) json_object_clear(o);
    json_array_foreach(refunded, i, o) json_object_clear(o);
    json_array_clear(ledger);
}

/* splitmix64: a seeded, reproducible stream for fault decisions (tests set the seed) */
static uint64_t next_rand(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void sb_reseed(uint64_t seed)
{
    rng = seed;
}

int sb_roll(void)
{
    return (int)(next_rand() % 100);
}

void sb_new_id(const char *prefix, char *out, size_t cap)
{
    static const char alnum[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    uint8_t rnd[16];
    char tail[25];
    struct ks_err e = {0};
    uint64_t n = __atomic_add_fetch(&id_counter, 1, __ATOMIC_RELAXED);
    int i;

    /* ids are unique by the counter (lock held); the random part keeps them from being
     * guessable across runs, as the PSPs' are */
    if (ks_random_bytes(rnd, sizeof(rnd), &e) != KS_OK)
        memset(rnd, 0, sizeof(rnd));
    for (i = 0; i < 12; i++)
        tail[i] = alnum[rnd[i] % 62];
    for (i = 23; i >= 12; i--) {
        tail[i] = alnum[n % 62];
        n /= 62;
    }
    tail[24] = '\0';
    snprintf(out, cap, "%s%s", prefix, tail);
}

/* the shard of root[kind] that holds key; root[kind] made on first use */
static json_t *kind_map(json_t *root, const char *kind, const char *key)
{
    json_t *m = json_object_get(root, kind);

    if (!m) {
        m = shards_new();
        if (json_object_set_new(root, kind, m) != 0) /* out of memory: m is freed */
            return NULL;
    }
    return shard(m, key);
}

json_t *sb_obj_get(const char *kind, const char *id)
{
    return id ? json_object_get(kind_map(objs, kind, id), id) : NULL;
}

void sb_obj_put(const char *kind, const char *id, json_t *obj)
{
    json_object_set_new(kind_map(objs, kind, id), id, obj);
}

const char *sb_ref_get(const char *kind, const char *ref)
{
    return ref ? json_string_value(json_object_get(kind_map(refs, kind, ref), ref)) : NULL;
}

void sb_ref_put(const char *kind, const char *ref, const char *id)
{
    json_object_set_new(kind_map(refs, kind, ref), ref, json_string(id));
}

enum sb_idem sb_idem_lookup(const char *scope, const char *fp, struct sb_resp *r)
{
    json_t *rec = json_object_get(shard(idem, scope), scope);
    const char *body;

    if (!rec)
        return SB_IDEM_NEW;
    if (strcmp(json_string_value(json_object_get(rec, "fp")), fp) != 0)
        return SB_IDEM_MISMATCH;
    body = json_string_value(json_object_get(rec, "body"));
    r->status = (int)json_integer_value(json_object_get(rec, "status"));
    r->body = strdup(body ? body : "");
    r->ctype = "application/json";
    r->replayed = 1;
    snprintf(r->request_id, sizeof(r->request_id), "%s",
             json_string_value(json_object_get(rec, "request_id")));
    return SB_IDEM_HIT;
}

enum sb_idem sb_idem_check(const char *psp, const char *cred, const char *key,
                           const struct sb_call *c, json_t *params, char *scope, char fp[65],
                           struct sb_resp *r)
{
    char tag[17], *canon = json_dumps(params, JSON_SORT_KEYS | JSON_COMPACT);

    sb_cred_tag(cred, tag);
    snprintf(scope, 400, "%s:%s:%.*s", psp, tag, (int)ks_utf8_prefix(key, 300), key);
    sb_fingerprint(c->method, c->path, canon ? canon : "", fp);
    free(canon);
    return sb_idem_lookup(scope, fp, r);
}

void sb_idem_store(const char *scope, const char *fp, const struct sb_resp *r)
{
    json_object_set_new(shard(idem, scope), scope,
                        json_pack("{s:s, s:i, s:s, s:s}", "fp", fp, "status", r->status, "body",
                                  r->body ? r->body : "", "request_id", r->request_id));
}

json_t *sb_ledger_add(const char *psp, const char *kind, const char *object_id,
                      const char *ref, const char *idem_key, int64_t amount_minor,
                      const char *currency, const char *method)
{
    json_t *e = json_pack("{s:I, s:s, s:s, s:s, s:s?, s:s?, s:I, s:s, s:s?, s:I}", "seq",
                          (json_int_t)json_array_size(ledger) + 1, "psp", psp, "kind", kind,
                          "object_id", object_id, "reference", ref, "idempotency_key",
                          idem_key, "amount", (json_int_t)amount_minor, "currency", currency,
                          "method", method, "at_us", (json_int_t)sb_now_us());

    /* NULL (a string that is not UTF-8, or out of memory): no entry, and no other one
     * handed back in its place */
    return e && json_array_append_new(ledger, e) == 0 ? e : NULL;
}

json_t *sb_ledger_entries(void)
{
    return ledger;
}

static void refund_key(const char *psp, const char *object_id, char *out, size_t cap)
{
    snprintf(out, cap, "%s|%s", psp, object_id);
}

json_t *sb_ledger_add_refund(const char *psp, const char *refund_of, const char *object_id,
                             const char *ref, const char *idem_key, int64_t amount_minor,
                             const char *currency, const char *method)
{
    json_t *e = sb_ledger_add(psp, "refund", object_id, ref, idem_key, amount_minor, currency,
                              method);
    char k[400];

    if (!e)
        return NULL;
    json_object_set_new(e, "refund_of", json_string(refund_of));
    refund_key(psp, refund_of, k, sizeof(k));
    json_object_set_new(shard(refunded, k), k,
                        json_integer((json_int_t)(sb_ledger_refunded(psp, refund_of) +
                                                  amount_minor)));
    return e;
}

int64_t sb_ledger_refunded(const char *psp, const char *object_id)
{
    char k[400];

    refund_key(psp, object_id, k, sizeof(k));
    return (int64_t)json_integer_value(json_object_get(shard(refunded, k), k));
}

/* Entries of psp/kind (NULL: all) with the counts a test asks for: references charged,
 * refunded or paid out more than once. */
json_t *sb_ledger_query(const char *psp, const char *kind)
{
    json_t *out = json_array(), *seen = json_object(), *twice = json_object(), *e;
    size_t i;

    json_array_foreach(ledger, i, e) {
        const char *p = json_string_value(json_object_get(e, "psp"));
        const char *k = json_string_value(json_object_get(e, "kind"));
        const char *ref = json_string_value(json_object_get(e, "reference"));
        char key[600];
        json_t *n;

        if ((psp && *psp && strcmp(psp, p) != 0) || (kind && *kind && strcmp(kind, k) != 0))
            continue;
        json_array_append(out, e);
        if (!ref)
            continue;
        snprintf(key, sizeof(key), "%s|%s|%s", p, k, ref);
        n = json_object_get(seen, key);
        json_object_set_new(seen, key, json_integer(n ? json_integer_value(n) + 1 : 1));
        if (n)
            json_object_set_new(twice, key, json_integer(json_integer_value(n) + 1));
    }
    json_decref(seen);
    return json_pack("{s:o, s:I, s:o}", "entries", out, "count", (json_int_t)json_array_size(out),
                     "duplicates", twice);
}

int64_t sb_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void sb_time_iso(int64_t us, int ms, char *out, size_t cap)
{
    time_t t = (time_t)(us / 1000000);
    struct tm tm;
    char base[32];

    gmtime_r(&t, &tm);
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    if (ms)
        snprintf(out, cap, "%s.%03dZ", base, (int)((us / 1000) % 1000));
    else
        snprintf(out, cap, "%sZ", base);
}

void sb_time_local(int64_t us, int tz_hours, char *out, size_t cap)
{
    time_t t = (time_t)(us / 1000000) + (time_t)tz_hours * 3600;
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%d %H:%M:%S", &tm);
}

int sb_currency_exp(const char *currency)
{
    char up[4];
    int i;

    for (i = 0; i < 3 && currency[i]; i++)
        up[i] = (char)(currency[i] >= 'a' && currency[i] <= 'z' ? currency[i] - 32 : currency[i]);
    up[i] = '\0';
    return ks_money_exponent(up);
}

void sb_amount_str(int64_t minor, const char *currency, char *out, size_t cap)
{
    struct ks_money m = {.minor = minor};
    char buf[KS_MONEY_STRLEN];
    int i;

    for (i = 0; i < 3 && currency[i]; i++)
        m.currency[i] =
            (char)(currency[i] >= 'a' && currency[i] <= 'z' ? currency[i] - 32 : currency[i]);
    m.currency[i] = '\0';
    if (ks_money_exponent(m.currency) < 0) {
        snprintf(out, cap, "%lld", (long long)minor);
        return;
    }
    ks_money_format(&m, buf, sizeof(buf));
    snprintf(out, cap, "%s", buf);
}
