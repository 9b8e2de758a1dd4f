/* store.c - idempotency records in PostgreSQL, written by group commit.
 *
 * It carries documents and reports outcomes; what they mean is accept.c's. Claims (new
 * idempotent writes) and finishes (complete or release) come queued with their texts
 * already made (r->claim_str, r->fin_str); each outcome goes back, on the writer thread,
 * through the callbacks given to ing_store_start. Each writer thread (store.writers)
 * takes whatever is queued, up to store.batch_max of each, and runs one statement,
 * ingress_batch(), in one transaction: one round trip and one fsync for the whole batch
 * instead of one per request. While one writer waits for its commit the next one
 * collects the next batch. Claims are sorted by (partner, key) so concurrent batches lock
 * rows in the same order.
 *
 * A batch the database refuses (a constraint, a trigger: some request's data; not a lost
 * connection nor a broken or read-only database) rolls back whole; its claims, other
 * clients' requests, then run again alone, so a refused finish does not take them with it,
 * and its finishes are kept (below); kept finishes the database refuses together are then
 * applied one at a time (record_alone), so the others' rows are written within a second or
 * two (test 228). A refused claim still fails the claims of its batch (503, retried).
 * A complete finish that cannot be recorded (its event is in Kafka, PostgreSQL refused or
 * was gone) is reported unrecorded (accept.c answers 503) and kept: the writers apply it
 * alone, once a second, until it commits (or idempotency.lock has passed, when any retry
 * takes its record over anyway), and a retry of its key meanwhile takes the record over
 * at once ("force") instead of a 409.
 *
 * The housekeeping thread checks PostgreSQL and Kafka every second for /readyz; the purge
 * thread deletes expired, resolved idempotency records (ingress_purge) every
 * idempotency.purge_every, as many statements as it takes. */
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/clock.h"
#include "lib/hash.h"
#include "lib/kafka.h"
#include "lib/log.h"
#include "lib/pgarr.h"
#include "producers/ingress/ingress.h"
#include "lib/banned.h"

static const struct ing_store_ops *OPS;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static struct ing_req *claims_head, *claims_tail, *fins_head, *fins_tail;
static pthread_t writers[16], hk_thread, purge_thread, tick_thread;
static int nwriters, hk_started;
static size_t n_queued; /* claims + finishes queued, under mu */
static int n_executing; /* writers running a batch, under mu */
static _Atomic long st_batches, st_claims, st_finishes, st_exec_us;

/* --- finishes that could not be recorded, and the keys whose retry takes over ------ */

struct pending {
    char *fin;        /* the finish's JSON text */
    int64_t since_us; /* monotonic */
    struct pending *next;
};

/* The keys whose retry takes over: chained per slot, so that a key never pushes another
 * out (one key per slot did: under a PostgreSQL outage hundreds of finishes fail at once,
 * and a key whose mark was overwritten met 409s for the lock's 30 s; test 227). At most
 * FORCE_MAX marks; expired ones are unlinked as their slot is next written. */
#define FORCE_SLOTS 1024
#define FORCE_MAX 100000
struct force_key {
    char partner[KS_ID_LEN];
    char key[65];
    int64_t until_us;
    struct force_key *next;
};

static _Atomic long st_purged, st_unresolved, st_pending;
static pthread_mutex_t pend_mu = PTHREAD_MUTEX_INITIALIZER;
static struct pending *pend_head;
static _Atomic long n_pending;
static int64_t pend_next_us;
static struct force_key *forced[FORCE_SLOTS]; /* under pend_mu */
static long n_forced;
static _Atomic int64_t forced_until_us; /* the latest until_us of any mark */

static unsigned force_slot(const char *partner, const char *key)
{
    return ks_hash_str(ks_hash_str(KS_HASH_INIT, partner), key) % FORCE_SLOTS;
}

/* partner's key in its slot *head, or NULL; unlinks the expired marks it passes.
 * pend_mu held. */
static struct force_key *force_find(struct force_key **head, const char *partner,
                                    const char *key, int64_t now)
{
    struct force_key **pp = head, *f;

    while ((f = *pp)) {
        if (f->until_us <= now) {
            *pp = f->next;
            free(f);
            n_forced--;
            continue;
        }
        if (strcmp(f->partner, partner) == 0 && strcmp(f->key, key) == 0)
            return f;
        pp = &f->next;
    }
    return NULL;
}

/* frees every mark; pend_mu held */
static void force_clear(void)
{
    for (size_t i = 0; i < FORCE_SLOTS; i++)
        while (forced[i]) {
            struct force_key *f = forced[i];
            forced[i] = f->next;
            free(f);
        }
    n_forced = 0;
}

/* r's finish failed after its event was published: keep it, and let its retry take over */
static void keep_unrecorded(struct ing_req *r)
{
    struct pending *pd = calloc(1, sizeof(*pd));
    struct force_key **head = &forced[force_slot(r->partner_id, r->key_hash)], *f;
    int64_t now = ks_clock_mono_us();

    pthread_mutex_lock(&pend_mu);
    if (n_forced && now > forced_until_us)
        force_clear(); /* every mark has expired: none is left to take a slot or a count */
    if (pd && r->fin_str && n_pending < 100000 && (pd->fin = strdup(r->fin_str))) {
        pd->since_us = now;
        pd->next = pend_head;
        pend_head = pd;
        n_pending++;
        st_pending = n_pending;
        pd = NULL;
    }
    f = force_find(head, r->partner_id, r->key_hash, now);
    if (!f && n_forced < FORCE_MAX && (f = calloc(1, sizeof(*f)))) {
        snprintf(f->partner, sizeof(f->partner), "%s", r->partner_id);
        snprintf(f->key, sizeof(f->key), "%s", r->key_hash);
        f->next = *head;
        *head = f;
        n_forced++;
    }
    /* without a mark (FORCE_MAX of them, or no memory) the retry waits for the lock */
    if (f) {
        f->until_us = now + ING.idem_lock_s * 1000000;
        if (f->until_us > forced_until_us) /* pend_mu serialises the writers of it */
            forced_until_us = f->until_us;
    }
    pthread_mutex_unlock(&pend_mu);
    free(pd);
}

int ing_store_forced(const char *partner, const char *key_hash)
{
    int64_t now = ks_clock_mono_us();
    int hit;

    if (now > forced_until_us)
        return 0; /* the hot path: nothing kept, or all of it past the lock */
    pthread_mutex_lock(&pend_mu);
    hit = force_find(&forced[force_slot(partner, key_hash)], partner, key_hash, now) != NULL;
    pthread_mutex_unlock(&pend_mu);
    return hit;
}

/* $5: the claims' stored answers as a binary bytea[], each claim naming its element ("b"):
 * base64 inside the JSON cost PostgreSQL's JSON parser a call per character (PostgreSQL 15)
 * and the ingress an encoding (docs/BENCHMARKS.md, session 19) */
static const char batch_sql[] =
    "SELECT ingress_batch($1::jsonb, $2::jsonb, $3::interval, $4::interval, $5::bytea[])::text";

/* Queues r; called with mu held. A writer is woken only when it has something to do: the
 * first request of an empty queue wakes an idle writer, and a full batch ends a writer's
 * gathering early. Waking the gathering writer for every request cost a
 * futex call and two context switches per request for nothing. */
static void enqueue(struct ing_req **head, struct ing_req **tail, struct ing_req *r)
{
    r->next = NULL;
    r->t_queued = ks_clock_mono_us();
    if (*tail)
        (*tail)->next = r;
    else
        *head = r;
    *tail = r;
    n_queued++;
    if (n_queued == 1 || n_queued >= (size_t)ING.batch_max)
        pthread_cond_signal(&cv);
}

void ing_store_claim(struct ing_req *r)
{
    pthread_mutex_lock(&mu);
    enqueue(&claims_head, &claims_tail, r);
    pthread_mutex_unlock(&mu);
}

void ing_store_finish(struct ing_req *r)
{
    pthread_mutex_lock(&mu);
    enqueue(&fins_head, &fins_tail, r);
    pthread_mutex_unlock(&mu);
}

static size_t take(struct ing_req **head, struct ing_req **tail, struct ing_req **out,
                   size_t max)
{
    size_t n = 0;

    while (*head && n < max) {
        out[n++] = *head;
        *head = (*head)->next;
    }
    if (!*head)
        *tail = NULL;
    n_queued -= n;
    return n;
}

static int claim_cmp(const void *a, const void *b)
{
    const struct ing_req *x = *(struct ing_req *const *)a, *y = *(struct ing_req *const *)b;
    int c = strcmp(x->partner_id, y->partner_id);
    return c ? c : strcmp(x->key_hash, y->key_hash);
}

/* "[{"i":0,<claim members>},...]" from the pre-serialized claims, and the answers a
 * payment's claim stores, in bodies: element "b" (from 1) of the batch's fifth parameter */
static char *join_claims(struct ing_req **cl, size_t n, struct ks_pgarr_bin *bodies)
{
    size_t i, len = 3, off = 0;
    char *s;

    ks_pgarr_bin_reset(bodies);
    for (i = 0; i < n; i++)
        len += (cl[i]->claim_str ? strlen(cl[i]->claim_str) : 2) + 48;
    if (!(s = malloc(len)))
        return NULL;
    s[off++] = '[';
    for (i = 0; i < n; i++) {
        const char *c = cl[i]->claim_str ? cl[i]->claim_str : "{}";
        char b[32] = "";
        if (cl[i]->claim_str && cl[i]->route == R_PAY_POST && cl[i]->resp) {
            ks_pgarr_bin_bytes(bodies, cl[i]->resp, cl[i]->resp_len);
            snprintf(b, sizeof(b), ",\"b\":%zu", bodies->n);
        }
        off += (size_t)snprintf(s + off, len - off, "%s{\"i\":%zu%s%s%s", i ? "," : "", i, b,
                                c[1] == '}' ? "" : ",", c + 1);
    }
    s[off++] = ']';
    s[off] = '\0';
    return s;
}

static char *join_fins(struct ing_req **fi, size_t n)
{
    size_t i, len = 3, off = 0;
    char *s;

    for (i = 0; i < n; i++)
        len += (fi[i]->fin_str ? strlen(fi[i]->fin_str) : 2) + 1;
    if (!(s = malloc(len)))
        return NULL;
    s[off++] = '[';
    for (i = 0; i < n; i++) {
        const char *f = fi[i]->fin_str ? fi[i]->fin_str : "{}";
        size_t l = strlen(f);
        if (i)
            s[off++] = ',';
        memcpy(s + off, f, l);
        off += l;
    }
    s[off++] = ']';
    s[off] = '\0';
    return s;
}

/* 0 when the server closed the connection while it was idle (readable socket, then a
 * broken connection); one poll(2) per batch */
static int conn_alive(struct ks_db *db)
{
    PGconn *c = ks_db_conn(db);
    struct pollfd pfd;

    if (PQstatus(c) != CONNECTION_OK)
        return 0;
    pfd.fd = PQsocket(c);
    pfd.events = POLLIN;
    pfd.revents = 0;
    if (poll(&pfd, 1, 0) > 0 && (!PQconsumeInput(c) || PQstatus(c) != CONNECTION_OK))
        return 0;
    return 1;
}

/* Runs one ingress_batch(); 0 with *res set, or -1 (retriable failures already retried).
 * *refused: the database refused the statement itself
 * on a live connection (a constraint, a trigger: the data of some request in it), not
 * because it or its schema is broken (ks_db_environmental, or read-only after a failover:
 * every batch would fail alike). quiet: no log line of its own per failure. */
static int run_batch(struct ks_db **dbp, struct ks_pg_stmt *batch, const char *fins,
                     const char *claims, struct ks_pgarr_bin *bodies, PGresult **res,
                     int *refused, int quiet)
{
    char lock[32], keep[32];
    const char *params[5] = {fins, claims, lock, keep, NULL};
    int lengths[5] = {0}, formats[5] = {0, 0, 0, 0, 1};
    int attempt;

    /* even when empty: the builder tells an allocation that failed on its first element
     * only here (a claim would name an element not there, its answer stored as NULL) */
    if (bodies && !(params[4] = ks_pgarr_bin_data(bodies, &lengths[4]))) {
        *refused = 0;
        return -1; /* out of memory: the batch's requests are answered 503 */
    }

    snprintf(lock, sizeof(lock), "%lld seconds", (long long)ING.idem_lock_s);
    snprintf(keep, sizeof(keep), "%lld seconds", (long long)ING.idem_keep_s);
    *refused = 0;
    for (attempt = 0; attempt < 3; attempt++) {
        struct ks_err e = {0};
        if (!*dbp) {
            *dbp = ks_db_connect(ING.pg_dsn, &e);
            if (!*dbp) {
                usleep(100000);
                continue;
            }
        } else if (!ks_db_ok(*dbp) && ks_db_reconnect(*dbp, &e) != KS_OK) {
            usleep(100000);
            continue;
        }
        if (!conn_alive(*dbp)) {
            /* closed by the server while idle (a restart): a fresh one before sending */
            if (ks_db_reconnect(*dbp, &e) != KS_OK) {
                usleep(100000);
                continue;
            }
        }
        /* prepared once per server session: parsing and planning the call every time
         * cost ~2 % of the writers' PostgreSQL time */
        *res = ks_pg_exec(ks_db_conn(*dbp), batch, params, lengths, formats, 0);
        if (ks_db_check(*dbp, *res, PGRES_TUPLES_OK, "ingress_batch", &e) == KS_OK)
            return 0;
        if (!quiet)
            ks_log(KS_LOG_WARN, "ingress.store.batch_failed", e.msg, "retriable",
                   e.retriable ? "true" : "false", NULL);
        PQclear(*res);
        *res = NULL;
        /* a request is waiting: retry in place only what a new try can fix at once (a lost
         * connection, a lost race); a cancel or a timeout (57014) answers 503 now */
        {
            char st[6];
            if (strcmp(ks_db_err_sqlstate(&e, st), "57014") == 0)
                return -1;
            if (!e.retriable) {
                *refused = ks_db_ok(*dbp) && !ks_db_environmental(st) &&
                           strcmp(st, "25006") != 0;
                return -1;
            }
        }
        usleep(50000 * (attempt + 1));
    }
    return -1;
}

/* Called with mu held and something queued: waits up to store.gather_us for more, unless
 * a full batch is there. A batch's fixed cost (the commit's WAL flush, the function call,
 * one executor start per statement, the produce requests of its events) is most of the
 * work when batches are small; waiting a fraction of a millisecond for a bigger batch costs
 * less latency than the CPU it saves gives back on a busy machine.
 *
 * While another writer is running a batch, this one waits for that batch to end (the
 * writer that ends one signals) and takes what queued meanwhile, in one batch of twice the
 * size instead of two that overlap; it starts in parallel only once the oldest queued
 * request has waited store.overlap_us, so a commit that runs long (a burst, a slow fsync)
 * still gets a second writer beside it. Two overlapping commits cost each other CPU too:
 * both backends insert at the right edge of the same B-tree pages. */
static void gather(size_t max)
{
    int64_t start = ks_clock_mono_us();

    while (n_queued > 0 && n_queued < max && !ING.stopping) {
        int64_t until = start + ING.gather_us, now;
        struct timespec ts;

        if (n_executing > 0 && ING.overlap_us > 0) {
            int64_t oldest = claims_head ? claims_head->t_queued : INT64_MAX;
            if (fins_head && fins_head->t_queued < oldest)
                oldest = fins_head->t_queued;
            if (oldest + ING.overlap_us > until)
                until = oldest + ING.overlap_us;
        }
        now = ks_clock_mono_us();
        if (now >= until)
            break;
        ts = ks_clock_mono_deadline(until - now); /* cv runs on the monotonic clock */
        (void)pthread_cond_timedwait(&cv, &mu, &ts);
    }
}

/* The fin texts of up to n kept finishes from list on, as one JSON array; NULL: no memory */
static char *pending_array(const struct pending *list, size_t n)
{
    const struct pending *pd;
    size_t len = 3, i;
    char *s, *off;

    for (pd = list, i = 0; pd && i < n; pd = pd->next, i++)
        len += strlen(pd->fin) + 1;
    if (!(s = off = malloc(len)))
        return NULL;
    *off++ = '[';
    for (pd = list, i = 0; pd && i < n; pd = pd->next, i++) {
        size_t l = strlen(pd->fin);
        if (i)
            *off++ = ',';
        memcpy(off, pd->fin, l);
        off += l;
    }
    *off++ = ']';
    *off = '\0';
    return s;
}

/* The database refused the kept finishes together: one of them (a constraint, a trigger
 * on its rows) must not hold back the others, which were often only in its batch (test
 * 228). Applies them one at a time, for at most 200 ms and 256 of them a pass (a writer
 * is kept from the clients' batches meanwhile), frees the recorded ones and returns the
 * rest: the ones not tried first, then the ones refused again, so that the next pass gets
 * to the others. One log line a pass. */
static struct pending *record_alone(struct ks_db **db, struct ks_pg_stmt *batch,
                                    struct pending *list)
{
    struct pending *pd, **pp = &list, *failed = NULL, **ft = &failed;
    int n = 0, n_ok = 0, n_refused = 0, refused = 0;
    int64_t until = ks_clock_mono_us() + 200000;

    while ((pd = *pp) && n++ < 256 && !ING.stopping && ks_clock_mono_us() < until) {
        char *one = pending_array(pd, 1);
        PGresult *res = NULL;
        int ok;

        if (!one)
            break;
        ok = run_batch(db, batch, one, "[]", NULL, &res, &refused, 1) == 0;
        PQclear(res);
        free(one);
        if (!ok && !refused)
            break; /* the database, not this finish: all of them wait */
        *pp = pd->next;
        if (ok) {
            free(pd->fin);
            free(pd);
            n_pending--;
            n_ok++;
        } else {
            n_refused++;
            pd->next = NULL;
            *ft = pd;
            ft = &pd->next;
        }
    }
    st_pending = n_pending;
    while (*pp)
        pp = &(*pp)->next;
    *pp = failed; /* after the ones not tried */
    {
        char a[16], b[16];
        snprintf(a, sizeof(a), "%d", n_ok);
        snprintf(b, sizeof(b), "%d", n_refused);
        ks_log(n_refused ? KS_LOG_WARN : KS_LOG_INFO, "ingress.store.unrecorded_alone",
               "kept finishes the database refused together, applied one at a time",
               "recorded", a, "refused", b, NULL);
    }
    return list;
}

static void retry_unrecorded(struct ks_db **db, struct ks_pg_stmt *batch)
{
    struct pending *list, *pd, **pp;
    int64_t now = ks_clock_mono_us();
    char *fins;
    PGresult *res = NULL;
    int ok, refused = 0;

    if (!n_pending)
        return;
    pthread_mutex_lock(&pend_mu);
    if (!pend_head || now < pend_next_us) {
        pthread_mutex_unlock(&pend_mu);
        return;
    }
    list = pend_head;
    pend_head = NULL;
    pend_next_us = now + 1000000;
    pthread_mutex_unlock(&pend_mu);
    /* past the lock, any retry takes the record over: nothing left to keep */
    for (pp = &list; *pp;) {
        pd = *pp;
        if (now - pd->since_us > ING.idem_lock_s * 1000000) {
            ks_log(KS_LOG_WARN, "ingress.store.unrecorded_dropped",
                   "a published request's finish was never recorded; a retry resumes it",
                   NULL);
            *pp = pd->next;
            free(pd->fin);
            free(pd);
            n_pending--;
            st_pending = n_pending;
        } else {
            pp = &pd->next;
        }
    }
    if (!list)
        return;
    if (!(fins = pending_array(list, SIZE_MAX)))
        goto keep;
    ok = run_batch(db, batch, fins, "[]", NULL, &res, &refused, 0) == 0;
    PQclear(res);
    free(fins);
    if (ok) {
        ks_log(KS_LOG_INFO, "ingress.store.unrecorded_recorded",
               "finishes of published requests recorded after all", NULL);
        while (list) {
            pd = list;
            list = pd->next;
            free(pd->fin);
            free(pd);
            n_pending--;
        }
        st_pending = n_pending;
        return;
    }
    if (refused && list->next)
        list = record_alone(db, batch, list);
    if (!list)
        return;
keep:
    pthread_mutex_lock(&pend_mu);
    /* a second from the end of this pass: a long one must not let the other writer start
     * the next meanwhile (both kept from the clients' batches) */
    pend_next_us = ks_clock_mono_us() + 1000000;
    for (pd = list; pd->next; pd = pd->next)
        ;
    pd->next = pend_head;
    pend_head = list;
    pthread_mutex_unlock(&pend_mu);
}

static void *writer_main(void *arg)
{
    struct ks_db *db = NULL;
    struct ks_pg_stmt batch = KS_PG_STMT("ingress_batch", batch_sql, 5);
    size_t max = (size_t)ING.batch_max;
    struct ing_req **cl = calloc(max, sizeof(*cl)), **fi = calloc(max, sizeof(*fi));
    struct ks_pgarr_bin bodies;
    (void)arg;

    ks_pgarr_bin_init(&bodies, KS_OID_BYTEA);
    if (!cl || !fi) {
        free(cl);
        free(fi);
        return NULL;
    }
    for (;;) {
        size_t nc, nf, i;
        char *sc, *sf;
        int64_t t0;
        int ok, ok_claims = 0, refused = 0;
        PGresult *res = NULL;

        retry_unrecorded(&db, &batch);
        pthread_mutex_lock(&mu);
        while (!claims_head && !fins_head && !ING.stopping) {
            if (n_pending) {
                /* kept finishes are retried once a second */
                struct timespec until = ks_clock_mono_deadline(1000000);
                if (pthread_cond_timedwait(&cv, &mu, &until) != 0)
                    break;
            } else {
                pthread_cond_wait(&cv, &mu);
            }
        }
        if (!claims_head && !fins_head) {
            int stop = ING.stopping;
            pthread_mutex_unlock(&mu);
            if (stop)
                break;
            continue;
        }
        if (ING.gather_us > 0 || ING.overlap_us > 0)
            gather(max);
        nf = take(&fins_head, &fins_tail, fi, max);
        nc = take(&claims_head, &claims_tail, cl, max);
        if (claims_head || fins_head)
            pthread_cond_signal(&cv); /* more than a batch was queued: the next writer */
        if (nf + nc > 0)
            n_executing++;
        pthread_mutex_unlock(&mu);
        if (nf + nc == 0)
            continue; /* the other writer took it while this one gathered */

        qsort(cl, nc, sizeof(*cl), claim_cmp);
        sc = join_claims(cl, nc, &bodies);
        sf = join_fins(fi, nf);

        t0 = ks_clock_mono_us();
        ok = sc && sf && run_batch(&db, &batch, sf, sc, &bodies, &res, &refused, 0) == 0;
        if (!ok && refused && nf > 0 && nc > 0) {
            /* the database refused the batch, not the connection: most likely a finish
             * (a constraint, a trigger on a row); the claims beside it must not share its
             * fate (they were other clients' requests; test 228): they run again alone,
             * and the finishes are kept below as refused */
            int refused_again;
            ok_claims = run_batch(&db, &batch, "[]", sc, &bodies, &res, &refused_again,
                                  0) == 0;
        }
        st_exec_us += ks_clock_mono_us() - t0;
        pthread_mutex_lock(&mu);
        n_executing--;
        if (n_queued)
            pthread_cond_broadcast(&cv); /* a writer waiting for this batch's end (gather) */
        pthread_mutex_unlock(&mu);
        st_batches++;
        st_claims += (long)nc;
        st_finishes += (long)nf;
        if (!ok) {
            if (!refused) /* the database is down or broken, not one request's data */
                ING.pg_ok = 0;
            for (i = 0; i < nf; i++) {
                if (fi[i]->fin_complete)
                    keep_unrecorded(fi[i]);
                OPS->finished(fi[i], 0);
            }
            if (!ok_claims)
                for (i = 0; i < nc; i++)
                    OPS->claimed(cl[i], NULL, "could not record the request");
        }
        if (ok || ok_claims) {
            int rows = PQntuples(res), k;
            /* finishes first: their answers were waiting for this commit */
            for (i = 0; ok && i < nf; i++)
                OPS->finished(fi[i], 1);
            for (k = 0; k < rows; k++) {
                json_t *o = json_loads(PQgetvalue(res, k, 0), 0, NULL);
                json_int_t idx = json_integer_value(json_object_get(o, "i"));
                if (o && idx >= 0 && (size_t)idx < nc && cl[idx]) {
                    OPS->claimed(cl[idx], o, NULL);
                    cl[idx] = NULL;
                }
                json_decref(o);
            }
            for (i = 0; i < nc; i++)
                if (cl[i])
                    OPS->claimed(cl[i], NULL, "the claim returned no outcome");
        }
        PQclear(res);
        free(sc);
        free(sf);
    }
    ks_db_free(db);
    ks_pgarr_bin_release(&bodies);
    free(cl);
    free(fi);
    return NULL;
}

void ing_store_health(struct ing_store_health *out)
{
    out->purged = st_purged;
    out->unresolved = st_unresolved;
    out->pending_finishes = st_pending;
}

void ing_store_stats(struct ing_store_stats *out)
{
    out->batches = st_batches;
    out->claims = st_claims;
    out->finishes = st_finishes;
    out->exec_us = st_exec_us;
}

static void *housekeeping_main(void *arg)
{
    struct ks_db *db = NULL;
    (void)arg;

    while (!ING.stopping) {
        struct ks_err e = {0};
        if (!db)
            db = ks_db_connect(ING.pg_dsn, &e);
        else if (!ks_db_ok(db) && ks_db_reconnect(db, &e) != KS_OK)
            ks_log(KS_LOG_DEBUG, "ingress.pg.down", e.msg, NULL);
        ING.pg_ok = db && ks_db_health(db, &e) == KS_OK;
        ING.kafka_ok = ks_kafka_health(ING.rk, 1000, &e) == KS_OK;
        /* a dependency that is down is looked at 5 times a second: requests are refused
         * while kafka_ok is 0, so that must end as soon as the broker is back */
        for (int i = 0; i < (ING.pg_ok && ING.kafka_ok ? 10 : 2) && !ING.stopping; i++)
            usleep(100000);
    }
    ks_db_free(db);
    return NULL;
}

/* The tick, on a thread that waits for nothing else: the health checks above can block for
 * as long as the database or the broker hangs (a connect, a SELECT 1 over a link that lost
 * its peer), and the requests parked on a payment's rows must still run again when due and
 * be let go after their second (test 229) */
static void *tick_main(void *arg)
{
    (void)arg;
    while (!ING.stopping) {
        usleep(10000);
        OPS->tick();
    }
    return NULL;
}

/* A full pass of the purge (from the oldest record) this often; the passes between start
 * where the previous one began */
#define PURGE_FULL_EVERY_US (600 * 1000000LL)

/* Deletes expired, resolved idempotency records (ingress_purge), a statement of
 * idempotency.purge_batch at a time until none is left, every idempotency.purge_every;
 * counts the expired records that are not resolved (ingress_unresolved) twice a minute.
 *
 * A pass deletes what expired since the previous pass began (less a second: a claim's
 * transaction sets expires_at from its start, so a record a pass could not see yet expired
 * before that pass only if its transaction lasted longer than idempotency.keep), not from
 * the oldest record: the records purged since the table's last vacuum keep their entries in
 * the index on expires_at until then, and a scan from the start walks through all of them,
 * every 2 s (at a day's steady state, hours of them; docs/BENCHMARKS.md, session 26). The
 * first pass, every PURGE_FULL_EVERY_US, and the first after a failed one start from the
 * oldest: a record unresolved at its pass (a payment whose rows risk wrote later) is
 * purged by the next full one. The point is the database's clock (now() of the pass's
 * first statement), so the ingress's own clock never decides what has expired. */
static void *purge_main(void *arg)
{
    struct ks_db *db = NULL;
    int64_t next_count = 0, next_full = 0;
    int one_arg = 0; /* the database has only ingress_purge(lim) */
    char lim[24], since[64] = "-infinity";
    (void)arg;

    snprintf(lim, sizeof(lim), "%ld", ING.purge_batch);
    while (!ING.stopping) {
        struct ks_err e = {0};
        const char *params[2] = {lim, since};
        char began[64] = "";
        long total = 0, got = -1;
        int64_t t0 = ks_clock_mono_us();

        if (t0 >= next_full) {
            snprintf(since, sizeof(since), "-infinity");
            next_full = t0 + PURGE_FULL_EVERY_US;
        }
        if (!db)
            db = ks_db_connect(ING.pg_dsn, &e);
        else if (!ks_db_ok(db) && ks_db_reconnect(db, &e) != KS_OK)
            ks_log(KS_LOG_DEBUG, "ingress.pg.down", e.msg, NULL);
        while (db && ks_db_ok(db) && !ING.stopping) {
            /* the point as text any DateStyle reads back */
            PGresult *res = PQexecParams(
                ks_db_conn(db),
                one_arg ? "SELECT ingress_purge($1::int)"
                        : "SELECT ingress_purge($1::int, $2::timestamptz), "
                          "to_char((now() - interval '1 second') AT TIME ZONE 'UTC', "
                          "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00\"')",
                one_arg ? 1 : 2, NULL, params, NULL, NULL, 0);
            got = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1
                      ? strtol(PQgetvalue(res, 0, 0), NULL, 10) : -1;
            if (got < 0 && !one_arg && PQresultErrorField(res, PG_DIAG_SQLSTATE) &&
                strcmp(PQresultErrorField(res, PG_DIAG_SQLSTATE), "42883") == 0) {
                /* a database not yet migrated (functions/ingress_purge.sql goes first):
                 * every pass from the oldest, as before */
                ks_log(KS_LOG_WARN, "ingress.idempotency.purge_old_form",
                       "ingress_purge(lim, since) is missing: purging from the oldest record "
                       "each pass until the ingress restarts after the migration", NULL);
                one_arg = 1;
                PQclear(res);
                continue;
            }
            if (got < 0)
                ks_log(KS_LOG_WARN, "ingress.idempotency.purge_failed",
                       PQresultErrorMessage(res), NULL);
            else if (!began[0] && !one_arg)
                snprintf(began, sizeof(began), "%s", PQgetvalue(res, 0, 1));
            PQclear(res);
            if (got <= 0)
                break;
            total += got;
            st_purged += got;
            if (got < ING.purge_batch)
                break;
        }
        if (got >= 0 && began[0])
            snprintf(since, sizeof(since), "%s", began); /* the pass went to its end */
        else
            next_full = 0; /* a pass that failed or never ran: the next one is full */
        if (total) {
            char c[24], ms[24];
            snprintf(c, sizeof(c), "%ld", total);
            snprintf(ms, sizeof(ms), "%lld", (long long)((ks_clock_mono_us() - t0) / 1000));
            ks_log(KS_LOG_INFO, "ingress.idempotency.purged", NULL, "count", c, "ms", ms, NULL);
        }
        if (db && ks_db_ok(db) && ks_clock_mono_us() >= next_count) {
            PGresult *res = PQexec(ks_db_conn(db), "SELECT count(*) FROM (SELECT 1 FROM "
                                                   "ingress_unresolved LIMIT 100000) u");
            if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
                long n = strtol(PQgetvalue(res, 0, 0), NULL, 10);
                if (n && n != st_unresolved)
                    ks_log(KS_LOG_WARN, "ingress.idempotency.unresolved",
                           "expired records whose event may be in Kafka without a record "
                           "(view ingress_unresolved); a retry with the same key resolves one",
                           "count", PQgetvalue(res, 0, 0), NULL);
                st_unresolved = n;
            }
            PQclear(res);
            next_count = ks_clock_mono_us() + 30000000;
        }
        for (int64_t waited = 0; waited < ING.purge_every_ms && !ING.stopping; waited += 100)
            usleep(100000);
    }
    ks_db_free(db);
    return NULL;
}

int ing_store_start(const struct ing_store_ops *ops)
{
    int i;

    OPS = ops;
    /* the writers' timed waits (gather, the kept finishes' retry) are deadlines on the
     * monotonic clock: a wall clock stepped back would otherwise stretch them by the step */
    if (ks_cond_init_mono(&cv) != 0)
        return -1;
    nwriters = ING.writers < 1 ? 1 : ING.writers > 16 ? 16 : ING.writers;
    for (i = 0; i < nwriters; i++)
        if (pthread_create(&writers[i], NULL, writer_main, NULL) != 0)
            return -1;
    if (pthread_create(&hk_thread, NULL, housekeeping_main, NULL) != 0 ||
        pthread_create(&purge_thread, NULL, purge_main, NULL) != 0 ||
        pthread_create(&tick_thread, NULL, tick_main, NULL) != 0)
        return -1;
    hk_started = 1;
    return 0;
}

int ing_store_stop(void)
{
    /* ING.stop_by_us leaves 5 s at least: the housekeeping thread may be in a 1 s check of
     * the broker, and the others notice the stop between 100 ms naps */
    int i;

    pthread_mutex_lock(&mu);
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    for (i = 0; i < nwriters; i++)
        if (ing_join_by(writers[i], "group-commit writer", 0) != 0)
            return -1;
    if (hk_started && (ing_join_by(hk_thread, "health thread", 0) != 0 ||
                       ing_join_by(purge_thread, "purge thread", 0) != 0 ||
                       ing_join_by(tick_thread, "tick thread", 0) != 0))
        return -1;
    nwriters = 0;
    hk_started = 0;
    if (n_pending > 0)
        ks_logf(KS_LOG_WARN, "ingress.store.unrecorded_dropped", "%ld finishes of published "
                "refunds or payouts were still not recorded at the stop (answered 503): each "
                "is resumed by its retry after idempotency.lock", (long)n_pending);
    return 0;
}
