/* main.c - kasir-ingress: the HTTP door into Kasir, and its partner/key CLI.
 *
 *   kasir-ingress [serve] [--config FILE]
 *   kasir-ingress partner add NAME [--rps N] [--burst N] [--scopes "a b"]
 *   kasir-ingress partner disable|enable PARTNER_ID
 *   kasir-ingress key add PARTNER_ID [--scopes "a b"]
 *   kasir-ingress key rotate KEY_ID [--grace SECONDS]
 *   kasir-ingress key revoke KEY_ID
 *   kasir-ingress routes | codes | scopes
 * The CLI prints a new API key once, on stdout; only its hashes are stored. A scope name it
 * does not know is an error (exit 2), never the default set. Changes to keys and partners
 * reach every running ingress at once (NOTIFY, functions/ingress_auth_changed.sql). */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/crypto.h"
#include "lib/log.h"
#include "lib/serde.h"
#include "producers/ingress/ingress.h"
#include "lib/banned.h"

struct ing_ctx ING;

static const struct ks_config_def own_defs[] = {
    {"http.threads", KS_CFG_INT, "2", 0, "libmicrohttpd thread pool size (poll() per thread)"},
    {"http.max_body", KS_CFG_INT, "65536", 0, "largest JSON body accepted, bytes (413 beyond)"},
    {"http.max_upload", KS_CFG_INT, "67108864", 0,
     "largest settlement file accepted, bytes (read only after the caller is authenticated)"},
    {"http.max_connections", KS_CFG_INT, "4000", 0,
     "most open connections of the API port (lowered to stay 256 below the descriptor limit)"},
    {"http.per_ip_connections", KS_CFG_INT, "256", 0,
     "most open connections from one client address"},
    {"http.idle_timeout", KS_CFG_DURATION_MS, "30s", 0,
     "a connection's next request line must arrive within this (after connecting or after "
     "its previous answer)"},
    {"http.request_timeout", KS_CFG_DURATION_MS, "10s", 0,
     "a request's headers and body must arrive within this after its request line"},
    {"http.upload_timeout", KS_CFG_DURATION_MS, "120s", 0,
     "the same for an authenticated settlement file upload"},
    {"http.drain_timeout", KS_CFG_DURATION_MS, "20s", 0,
     "at SIGTERM, how long requests in flight may take to be answered; the threads behind "
     "them get what is left of it, 5 s at least (the producer's flush 1 s), so the process "
     "ends within about this + 6 s (7 s if an audit export is cut); at most 1h"},
    {"http.admin_port", KS_CFG_INT, "0", 0,
     "a listener of its own for /healthz, /readyz and /metrics, without credentials (0: none; "
     "on the API port /readyz and /metrics need scope ops:read)"},
    {"http.admin_bind", KS_CFG_STRING, "127.0.0.1", 0, "IPv4 address of the admin listener"},
    {"readers.threads", KS_CFG_INT, "2", 0,
     "threads (PostgreSQL connections) for key lookups, token requests and reads"},
    {"readers.read_timeout", KS_CFG_DURATION_MS, "5s", 0,
     "a read's budget: queue, connection and query (then 503; an admin act that is not "
     "idempotent, past it while it runs: 500 outcome_unknown)"},
    {"readers.queue_max", KS_CFG_INT, "2048", 0, "requests waiting for a reader (then 503)"},
    {"readers.export_fetch_timeout", KS_CFG_DURATION_MS, "5m", 0,
     "an audit export's wait for each chunk of its rows (1,000) from PostgreSQL; past it the "
     "export ends incomplete (no end record) and frees its slot and connection; 1s to 24h"},
    {"readers.export_timeout", KS_CFG_DURATION_MS, "10m", 0,
     "an audit export's whole time, however slowly its client reads; past it the export "
     "ends incomplete (its snapshot holds back PostgreSQL's cleanup of every table while it "
     "lasts); 1s to 24h"},
    {"auth.jwt_secret", KS_CFG_STRING, "", 0,
     "HS256 key of bearer tokens (>= 32 characters); empty: random per process"},
    {"auth.jwt_ttl", KS_CFG_DURATION_MS, "15m", 0, "lifetime of tokens from /v1/auth/token"},
    {"auth.token_window", KS_CFG_DURATION_MS, "60s", 0,
     "allowed clock difference of a token request's timestamp (replay window)"},
    {"auth.cache_ttl", KS_CFG_DURATION_MS, "30s", 0,
     "how long an API key lookup and a partner's rate limit are cached (changes to keys and "
     "partners empty the cache at once, by NOTIFY)"},
    {"auth.cache_max", KS_CFG_INT, "100000", 0, "most cached credentials"},
    {"auth.timeout", KS_CFG_DURATION_MS, "1s", 0,
     "a key lookup's or token request's budget: queue, connection and query (then 503)"},
    {"auth.ip_rps", KS_CFG_INT, "20", 0,
     "per client address: unauthenticated work per second (failed authentications and "
     "credential lookups, token requests; an uncached credential is looked up only while a "
     "token is left); 429 beyond"},
    {"auth.ip_burst", KS_CFG_INT, "50", 0, "per client address: the burst of auth.ip_rps"},
    {"auth.token_rps", KS_CFG_INT, "50", 0,
     "token requests per second for the whole process (burst: twice that)"},
    {"auth.nonce_max", KS_CFG_INT, "100000", 0,
     "most token nonces remembered; beyond, token requests get 429"},
    {"idempotency.keep", KS_CFG_DURATION_MS, "24h", 0, "how long idempotency keys are kept"},
    {"idempotency.lock", KS_CFG_DURATION_MS, "30s", 0,
     "after this an in-flight record may be taken over by a retry (crash recovery)"},
    {"idempotency.purge_every", KS_CFG_DURATION_MS, "2s", 0,
     "how often expired, resolved idempotency records are purged"},
    {"idempotency.purge_batch", KS_CFG_INT, "20000", 0,
     "most records one purge statement deletes (a purge runs statements until none is left)"},
    {"psp.sandbox", KS_CFG_BOOL, "false", 0,
     "accept psp_preference \"sandbox\" (the sandbox PSP; never in production)"},
    {"store.writers", KS_CFG_INT, "2", 0, "group-commit writer threads (PostgreSQL connections)"},
    {"store.batch_max", KS_CFG_INT, "256", 0, "most claims (and finishes) in one transaction"},
    {"store.gather_us", KS_CFG_INT, "250", 0,
     "a writer waits up to this many microseconds for a bigger batch (0: takes what is queued)"},
    {"store.overlap_us", KS_CFG_INT, "1500", 0,
     "while another writer commits, a writer starts a batch only once the oldest queued "
     "request has waited this many microseconds (or a batch is full); 0: at once; at most "
     "1000000"},
    {"webhook.tolerance", KS_CFG_DURATION_MS, "300s", 0, "webhook timestamp tolerance"},
    {"webhook.max_body", KS_CFG_INT, "262144", 0, "largest webhook body accepted, bytes"},
    {"webhook.stripe.secret", KS_CFG_STRING, "", 0, "Stripe endpoint secret (whsec_...); empty: off"},
    {"webhook.xendit.token", KS_CFG_STRING, "", 0, "Xendit callback verification token; empty: off"},
    {"webhook.midtrans.server_key", KS_CFG_STRING, "", 0, "Midtrans server key; empty: off"},
    {"webhook.iris.merchant_key", KS_CFG_STRING, "", 0,
     "Midtrans Iris (payouts) merchant key, checks Iris-Signature; empty: off"},
    {"webhook.sandbox.secret", KS_CFG_STRING, "", 0,
     "sandbox PSP Standard Webhooks secret (whsec_<base64>); empty: off"},
};

static struct ks_config_def *defs_all(size_t *n)
{
    size_t nc = ks_common_settings_count, no = sizeof(own_defs) / sizeof(own_defs[0]), i;
    struct ks_config_def *d = calloc(nc + no, sizeof(*d));

    if (!d)
        return NULL;
    for (i = 0; i < nc; i++) {
        d[i] = ks_common_settings[i];
        if (strcmp(d[i].name, "http.port") == 0)
            d[i].def = "8080";
    }
    for (i = 0; i < no; i++)
        d[nc + i] = own_defs[i];
    *n = nc + no;
    return d;
}

static volatile sig_atomic_t got_signal;
static void on_signal(int sig)
{
    got_signal = sig;
}

int ing_join_by(pthread_t t, const char *what, int holds_nothing)
{
    struct timespec deadline = ks_clock_mono_at(ING.stop_by_us);

    if (pthread_clockjoin_np(t, NULL, CLOCK_MONOTONIC, &deadline) == 0)
        return 0;
    if (holds_nothing)
        ks_logf(KS_LOG_WARN, "ingress.stopped.left", "the %s was still running at the stop "
                "(a host name look-up in libpq has no deadline); it holds nothing and ends "
                "with the process", what);
    else
        ks_logf(KS_LOG_ERROR, "ingress.stopped", "the %s did not stop in time (a statement "
                "the database does not answer, or a check of a dependency that hangs)", what);
    return -1;
}

/* Everything behind the server, in order, each joined by ING.stop_by_us: 0, or -1 (logged)
 * when a thread is still stuck. A thread stuck in a statement of a database that hangs
 * (nothing in libpq interrupts it) is not waited for: every request was answered by now and
 * every event confirmed, and what a writer still holds is the kept finishes of refunds and
 * payouts answered 503, whose retries take their records over once idempotency.lock has
 * passed, or releases of records that idempotency.lock frees too: the state kill -9
 * leaves (test 230). The caller then exits with _exit(1). */
static int stop_behind(void)
{
    ING.stopping = 1; /* the listener notices it too */
    if (ing_reader_stop() != 0 || ing_settle_join() != 0 || ing_store_stop() != 0)
        return -1;
    ing_publish_stop();
    /* last, and not a failed stop: it holds nothing, and a connect of its own may be stuck
     * where no deadline reaches (libpq resolves a host name synchronously) */
    ing_auth_stop();
    return 0;
}

static int serve(const struct ks_config *cfg)
{
    struct ks_err e = {0};
    const char *secret = ks_config_str(cfg, "auth.jwt_secret");
    int port = (int)ks_config_int(cfg, "http.port");
    char portbuf[16];
    sigset_t stop_sigs, run_mask;

    ING.cfg = cfg;
    ING.pg_dsn = ks_config_str(cfg, "pg.dsn");
    ING.jwt_ttl_s = ks_config_ms(cfg, "auth.jwt_ttl") / 1000;
    ING.token_window_s = ks_config_ms(cfg, "auth.token_window") / 1000;
    ING.auth_cache_ms = ks_config_ms(cfg, "auth.cache_ttl");
    ING.idem_keep_s = ks_config_ms(cfg, "idempotency.keep") / 1000;
    ING.idem_lock_s = ks_config_ms(cfg, "idempotency.lock") / 1000;
    ING.webhook_tolerance_s = ks_config_ms(cfg, "webhook.tolerance") / 1000;
    ING.max_body = (size_t)ks_config_int(cfg, "http.max_body");
    ING.max_upload = (size_t)ks_config_int(cfg, "http.max_upload");
    ING.max_webhook = (size_t)ks_config_int(cfg, "webhook.max_body");
    ING.wh_stripe = ks_config_str(cfg, "webhook.stripe.secret");
    ING.wh_xendit = ks_config_str(cfg, "webhook.xendit.token");
    ING.wh_midtrans = ks_config_str(cfg, "webhook.midtrans.server_key");
    ING.wh_iris = ks_config_str(cfg, "webhook.iris.merchant_key");
    ING.wh_sandbox = ks_config_str(cfg, "webhook.sandbox.secret");
    ING.max_connections = (unsigned)ks_config_int(cfg, "http.max_connections");
    ING.per_ip_connections = (unsigned)ks_config_int(cfg, "http.per_ip_connections");
    ING.idle_timeout_ms = ks_config_ms(cfg, "http.idle_timeout");
    ING.request_timeout_ms = ks_config_ms(cfg, "http.request_timeout");
    ING.upload_timeout_ms = ks_config_ms(cfg, "http.upload_timeout");
    ING.drain_timeout_ms = ks_config_ms(cfg, "http.drain_timeout");
    if (ING.drain_timeout_ms < 0 || ING.drain_timeout_ms > 3600000) {
        /* a stop is bounded by it (and its deadline must not overflow) */
        ks_log(KS_LOG_ERROR, "config.invalid", "http.drain_timeout must be 0 to 1h",
               "setting", "http.drain_timeout", NULL);
        return 2;
    }
    ING.admin_port = (int)ks_config_int(cfg, "http.admin_port");
    ING.admin_bind = ks_config_str(cfg, "http.admin_bind");
    ING.readers = (int)ks_config_int(cfg, "readers.threads");
    ING.read_timeout_ms = ks_config_ms(cfg, "readers.read_timeout");
    ING.export_fetch_timeout_ms = ks_config_ms(cfg, "readers.export_fetch_timeout");
    if (ING.export_fetch_timeout_ms < 1000 || ING.export_fetch_timeout_ms > 86400000) {
        ks_log(KS_LOG_ERROR, "config.invalid", "readers.export_fetch_timeout must be 1s to 24h",
               "setting", "readers.export_fetch_timeout", NULL);
        return 2;
    }
    ING.export_timeout_ms = ks_config_ms(cfg, "readers.export_timeout");
    if (ING.export_timeout_ms < 1000 || ING.export_timeout_ms > 86400000) {
        ks_log(KS_LOG_ERROR, "config.invalid", "readers.export_timeout must be 1s to 24h",
               "setting", "readers.export_timeout", NULL);
        return 2;
    }
    ING.reader_queue_max = (int)ks_config_int(cfg, "readers.queue_max");
    ING.auth_timeout_ms = ks_config_ms(cfg, "auth.timeout");
    ING.cache_max = (long)ks_config_int(cfg, "auth.cache_max");
    ING.ip_rps = (int)ks_config_int(cfg, "auth.ip_rps");
    ING.ip_burst = (int)ks_config_int(cfg, "auth.ip_burst");
    ING.token_rps = (int)ks_config_int(cfg, "auth.token_rps");
    ING.nonce_max = (long)ks_config_int(cfg, "auth.nonce_max");
    ING.purge_every_ms = ks_config_ms(cfg, "idempotency.purge_every");
    ING.purge_batch = (long)ks_config_int(cfg, "idempotency.purge_batch");
    ING.sandbox_enabled = ks_config_bool(cfg, "psp.sandbox");
    if (ING.per_ip_connections < 1)
        ING.per_ip_connections = 1;
    if (ING.ip_rps < 1)
        ING.ip_rps = 1;
    if (ING.ip_burst < 1)
        ING.ip_burst = 1;
    if (ING.purge_batch < 100)
        ING.purge_batch = 100;
    if (ING.purge_every_ms < 100)
        ING.purge_every_ms = 100;
    ING.writers = (int)ks_config_int(cfg, "store.writers");
    ING.batch_max = (int)ks_config_int(cfg, "store.batch_max");
    ING.gather_us = ks_config_int(cfg, "store.gather_us");
    ING.overlap_us = ks_config_int(cfg, "store.overlap_us");
    if (ING.gather_us < 0 || ING.gather_us > 100000)
        ING.gather_us = 0;
    if (ING.overlap_us < 0 || ING.overlap_us > 1000000) {
        /* beyond a second a writer whose batch hangs (PostgreSQL stuck) holds the other
         * back with it, what the setting's bound is for; and oldest + overlap_us must not
         * overflow */
        ks_log(KS_LOG_ERROR, "config.invalid", "store.overlap_us must be 0 to 1000000",
               "setting", "store.overlap_us", NULL);
        return 2;
    }
    if (ING.batch_max < 1)
        ING.batch_max = 1;
    if (ING.idem_keep_s < 86400)
        ks_log(KS_LOG_WARN, "ingress.config", "idempotency.keep is below the 24 h of SPEC 4", NULL);
    if (*secret && strlen(secret) < 32) {
        ks_log(KS_LOG_ERROR, "config.invalid", "auth.jwt_secret needs at least 32 characters",
               "setting", "auth.jwt_secret", NULL);
        return 2;
    }
    if (*secret) {
        ks_sha256(secret, strlen(secret), ING.jwt_key);
    } else {
        if (ks_random_bytes(ING.jwt_key, sizeof(ING.jwt_key), &e) != KS_OK)
            return 1;
        ks_log(KS_LOG_WARN, "ingress.config",
               "auth.jwt_secret is empty: bearer tokens are signed with a random key and die "
               "with this process", NULL);
    }
    if (ks_serde_init(&e) != KS_OK) {
        ks_log(KS_LOG_ERROR, "ingress.serde.init", e.msg, NULL);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    /* the stop signals go to this thread only, and only inside sigsuspend below: one that
     * came between a test of got_signal and a pause() was not seen until a second one (the
     * threads started from here on inherit the mask) */
    sigemptyset(&stop_sigs);
    sigaddset(&stop_sigs, SIGTERM);
    sigaddset(&stop_sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_sigs, &run_mask);
    if (ing_publish_start() != 0 || ing_accept_start() != 0 || ing_reader_start() != 0 ||
        ing_auth_init() != 0)
        return 1;
    if (ing_http_start(port, (int)ks_config_int(cfg, "http.threads")) != 0) {
        ks_logf(KS_LOG_ERROR, "ingress.http.start", "could not listen on port %d", port);
        ING.stop_by_us = ks_clock_mono_us() + 5000000;
        if (stop_behind() != 0)
            _exit(1);
        return 1;
    }
    snprintf(portbuf, sizeof(portbuf), "%d", port);
    ks_log(KS_LOG_INFO, "ingress.started", "listening", "port", portbuf, NULL);
    /* unblocked while waiting even if the process was started with them blocked */
    sigdelset(&run_mask, SIGTERM);
    sigdelset(&run_mask, SIGINT);
    while (!got_signal)
        sigsuspend(&run_mask);
    ks_log(KS_LOG_INFO, "ingress.stopping", "draining requests in flight", NULL);
    ING.stop_by_us = ks_clock_mono_us() + ING.drain_timeout_ms * 1000;
    /* 1. new requests get 503 + Connection: close; every request handed to a handler
     *    (suspended for PostgreSQL or Kafka included) gets its answer sent */
    if (ing_http_drain() != 0) {
        /* requests are still suspended: stopping the server under them would abort, and
         * the writers or the producer may still resume them. Nothing was acknowledged
         * that is not recorded; the retries resume the rest. */
        ks_log(KS_LOG_ERROR, "ingress.stopped", "requests still in flight at the drain timeout",
               NULL);
        _exit(1);
    }
    /* 2. the server (nothing suspended is left), then whatever served it, within what is
     *    left of the drain's time, 5 s at least */
    ing_http_stop();
    if (ING.stop_by_us < ks_clock_mono_us() + 5000000)
        ING.stop_by_us = ks_clock_mono_us() + 5000000;
    if (stop_behind() != 0)
        _exit(1);
    ks_serde_shutdown();
    ks_log(KS_LOG_INFO, "ingress.stopped", NULL, NULL);
    return 0;
}

/* --- CLI --------------------------------------------------------------------------- */

static const char *opt(int argc, char **argv, const char *name, const char *def)
{
    int i;
    for (i = 0; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return def;
}

static PGconn *cli_db(const struct ks_config *cfg, struct ks_db **db)
{
    struct ks_err e = {0};

    *db = ks_db_connect(ks_config_str(cfg, "pg.dsn"), &e);
    if (!*db) {
        fprintf(stderr, "kasir-ingress: %s\n", e.msg);
        return NULL;
    }
    return ks_db_conn(*db);
}

static int sql_ok(PGresult *res, PGconn *c)
{
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(stderr, "kasir-ingress: %s", PQerrorMessage(c));
    PQclear(res);
    return ok;
}

/* Creates a key for partner with scopes; prints key_id and api_key. */
static int make_key(PGconn *c, const char *partner, unsigned scopes)
{
    uint8_t raw[32], h[KS_SHA256_LEN], sk[KS_SHA256_LEN];
    char api_key[64], key_id[KS_ID_LEN], hh[2 * KS_SHA256_LEN + 3], skh[2 * KS_SHA256_LEN + 3],
        sc[512], arr[520];
    const char *params[5];
    struct ks_err e = {0};

    if (ks_random_bytes(raw, sizeof(raw), &e) != KS_OK || ks_id_new("key", key_id, &e) != KS_OK)
        return 1;
    memcpy(api_key, "ksk_", 4);
    ks_b64url_encode(raw, sizeof(raw), api_key + 4);
    ks_sha256(api_key, strlen(api_key), h);
    ks_hmac_sha256(api_key, strlen(api_key), "kasir-token-v1", 14, sk);
    memcpy(hh, "\\x", 2);
    ks_hex_encode(h, sizeof(h), hh + 2);
    memcpy(skh, "\\x", 2);
    ks_hex_encode(sk, sizeof(sk), skh + 2);
    ing_scopes_format(scopes, sc, sizeof(sc));
    snprintf(arr, sizeof(arr), "{%s}", sc);
    for (char *q = arr; *q; q++)
        if (*q == ' ')
            *q = ',';
    params[0] = key_id;
    params[1] = partner;
    params[2] = hh;
    params[3] = skh;
    params[4] = arr;
    if (!sql_ok(PQexecParams(c, "INSERT INTO api_keys (key_id, partner_id, key_hash, sign_key, "
                                "scopes) VALUES ($1, $2, $3::bytea, $4::bytea, $5::text[])",
                             5, NULL, params, NULL, NULL, 0), c))
        return 1;
    printf("key_id=%s\napi_key=%s\nscopes=%s\n", key_id, api_key, sc);
    memset(api_key, 0, sizeof(api_key));
    return 0;
}

/* --scopes of argv: the default set when absent; -1 (after a message) when it names a
 * scope that does not exist or none at all */
static long scopes_opt(int argc, char **argv)
{
    const char *s = opt(argc, argv, "--scopes", NULL);
    long bits;

    if (!s)
        return ING_SCOPES_DEFAULT;
    bits = ing_scopes_parse(s);
    if (bits <= 0) {
        fprintf(stderr, "kasir-ingress: --scopes \"%s\": unknown scope (known: see "
                        "`kasir-ingress scopes`)\n", s);
        return -1;
    }
    return bits;
}

static int cli(const struct ks_config *cfg, int argc, char **argv)
{
    struct ks_db *db = NULL;
    PGconn *c;
    int rc = 1;
    long scopes;

    if (argc >= 3 && strcmp(argv[0], "partner") == 0 && strcmp(argv[1], "add") == 0) {
        char pid[KS_ID_LEN];
        struct ks_err e = {0};
        const char *params[4];
        if ((scopes = scopes_opt(argc, argv)) < 0)
            return 2;
        if (!(c = cli_db(cfg, &db)) || ks_id_new("ptn", pid, &e) != KS_OK)
            goto out;
        params[0] = pid;
        params[1] = argv[2];
        params[2] = opt(argc, argv, "--rps", "2000");
        params[3] = opt(argc, argv, "--burst", params[2]);
        if (!sql_ok(PQexecParams(c, "INSERT INTO partners (partner_id, name, rate_limit_rps, "
                                    "rate_limit_burst) VALUES ($1, $2, $3::int, $4::int)",
                                 4, NULL, params, NULL, NULL, 0), c))
            goto out;
        printf("partner_id=%s\n", pid);
        rc = make_key(c, pid, (unsigned)scopes);
    } else if (argc >= 3 && strcmp(argv[0], "partner") == 0 &&
               (strcmp(argv[1], "disable") == 0 || strcmp(argv[1], "enable") == 0)) {
        const char *params[1] = {argv[2]};
        PGresult *res;
        if (!(c = cli_db(cfg, &db)))
            goto out;
        /* disabled: every key and token of the partner is refused at once (NOTIFY) */
        res = PQexecParams(c, strcmp(argv[1], "disable") == 0
                                  ? "UPDATE partners SET disabled_at = now() WHERE partner_id = $1 "
                                    "AND disabled_at IS NULL RETURNING partner_id"
                                  : "UPDATE partners SET disabled_at = NULL WHERE partner_id = $1 "
                                    "AND disabled_at IS NOT NULL RETURNING partner_id",
                           1, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
            fprintf(stderr, "kasir-ingress: no %s partner %s\n",
                    strcmp(argv[1], "disable") == 0 ? "enabled" : "disabled", argv[2]);
            PQclear(res);
            goto out;
        }
        PQclear(res);
        printf("%s=%s\n", strcmp(argv[1], "disable") == 0 ? "disabled" : "enabled", argv[2]);
        rc = 0;
    } else if (argc >= 3 && strcmp(argv[0], "key") == 0 && strcmp(argv[1], "add") == 0) {
        if ((scopes = scopes_opt(argc, argv)) < 0)
            return 2;
        if (!(c = cli_db(cfg, &db)))
            goto out;
        rc = make_key(c, argv[2], (unsigned)scopes);
    } else if (argc >= 3 && strcmp(argv[0], "key") == 0 &&
               (strcmp(argv[1], "rotate") == 0 || strcmp(argv[1], "revoke") == 0)) {
        int revoke = strcmp(argv[1], "revoke") == 0;
        const char *params[2] = {argv[2], revoke ? "0" : opt(argc, argv, "--grace", "0")};
        PGresult *res;
        if (!(c = cli_db(cfg, &db)))
            goto out;
        /* rotation: a new key with the same partner and scopes; the old one keeps working
         * for --grace seconds so the partner can deploy the new one. Revocation ends a key
         * at once, in its grace too (revoked_at in the future). One transaction: a rotation
         * that cannot make the new key revokes nothing */
        if (!sql_ok(PQexec(c, "BEGIN"), c))
            goto out;
        res = PQexecParams(c, revoke
                              ? "UPDATE api_keys SET revoked_at = now() WHERE key_id = $1 "
                                "AND (revoked_at IS NULL OR revoked_at > now()) "
                                "RETURNING partner_id, array_to_string(scopes, ' ')"
                              : "UPDATE api_keys SET revoked_at = now() + ($2 || ' seconds')::interval "
                                "WHERE key_id = $1 AND revoked_at IS NULL "
                                "RETURNING partner_id, array_to_string(scopes, ' ')",
                           revoke ? 1 : 2, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
            fprintf(stderr, "kasir-ingress: no active key %s\n", argv[2]);
            PQclear(res);
            goto out; /* the session ends: its transaction with it */
        }
        rc = 0;
        if (strcmp(argv[1], "rotate") == 0) {
            /* the new key has exactly the old one's scopes (none stays none): a scope this
             * ingress does not know (a newer one's) would be lost, so it refuses */
            const char *stored = PQgetvalue(res, 0, 1);
            scopes = ing_scopes_parse(stored);
            if (scopes < 0 && *stored) {
                fprintf(stderr, "kasir-ingress: key %s has a scope this kasir-ingress does not "
                                "know (%s): rotate it with the kasir-ingress that added it\n",
                        argv[2], stored);
                rc = 2;
            } else {
                rc = make_key(c, PQgetvalue(res, 0, 0), scopes > 0 ? (unsigned)scopes : 0);
            }
        }
        if (rc == 0 && sql_ok(PQexec(c, "COMMIT"), c))
            printf("revoked=%s\n", argv[2]);
        else if (rc == 0)
            rc = 1;
        PQclear(res);
    } else {
        fprintf(stderr, "usage: kasir-ingress [serve] | config-doc | partner add NAME [--rps N] [--burst N] "
                        "[--scopes S] | partner disable|enable PARTNER_ID | key add PARTNER_ID "
                        "[--scopes S] | key rotate KEY_ID [--grace SECONDS] | key revoke KEY_ID | "
                        "routes | codes | scopes\n");
        rc = 2;
    }
out:
    ks_db_free(db);
    return rc;
}

int main(int argc, char **argv)
{
    size_t n = 0, i;
    struct ks_config_def *defs;
    struct ks_config *cfg;
    const char *conf_path = NULL;
    int rc, first = 1;

    for (i = 1; i + 1 < (size_t)argc; i++)
        if (strcmp(argv[i], "--config") == 0)
            conf_path = argv[i + 1];
    if (argc > 1 && strcmp(argv[1], "--config") == 0)
        first = 3;
    if (argc > first && strcmp(argv[first], "routes") == 0) {
        for (i = 0; i < ing_routes_count; i++)
            printf("%s %s\n", ing_routes[i].method, ing_routes[i].path);
        return 0;
    }
    if (argc > first && strcmp(argv[first], "codes") == 0) {
        for (i = 0; i < ing_codes_count; i++)
            printf("%s %d\n", ing_codes[i].code, ing_codes[i].status);
        return 0;
    }
    if (argc > first && strcmp(argv[first], "config-doc") == 0) {
        /* make docs appends this to docs/CONFIG.md */
        ks_config_markdown(stdout, "kasir-ingress (besides the common settings)", own_defs,
                           sizeof(own_defs) / sizeof(own_defs[0]));
        return 0;
    }
    if (argc > first && strcmp(argv[first], "scopes") == 0) {
        for (i = 0; i < ING_SCOPE_COUNT; i++)
            printf("%s\n", ing_scope_names[i]);
        return 0;
    }
    defs = defs_all(&n);
    if (!defs)
        return 1;
    cfg = ks_config_load_main("ingress", defs, n, conf_path);
    if (!cfg) {
        free(defs);
        return 2;
    }
    if (argc <= first || strcmp(argv[first], "serve") == 0)
        rc = serve(cfg);
    else
        rc = cli(cfg, argc - first, argv + first);
    ks_config_free(cfg);
    free(defs);
    return rc;
}
