/* kasir-ledger verify - checks the ledger from scratch, in one read-only snapshot:
 *   1. every chain: seq runs 1, 2, 3 ... ; each entry's prev_hash is the hash before it
 *      (32 zero bytes for the first); its hash is SHA-256(prev_hash || content), the
 *      content rebuilt here from the stored entry and its postings (docs/LEDGER.md gives
 *      the format; functions/ledger_entry_content.sql writes it); the chain's head row
 *      names the last entry;
 *   2. every entry has its n_lines postings, lines 1..n, on its chain, and balances per
 *      currency;
 *   3. every posting's account exists in its currency; every balance stripe equals the
 *      sum and count of its postings, and no postings lack a stripe.
 * The hash is recomputed in C, not by the database's functions, so a changed function
 * cannot vouch for a changed row. Stops at the first violation and names it. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/config.h"
#include "lib/crypto.h"
#include "lib/db.h"
#include "lib/jsonw.h"
#include "lib/log.h"
#include "consumers/ledger/ledger.h"
#include "lib/banned.h"

static const char SQL_ENTRIES[] =
    "SELECT e.chain, e.seq, e.entry_id, e.source_key, e.kind, e.journal_id, e.partner_id,"
    "       e.reference, e.n_lines, encode(e.prev_hash, 'hex'), encode(e.hash, 'hex'),"
    "       p.line, p.account, p.amount_minor, p.currency, p.chain"
    " FROM ledger_entries e LEFT JOIN ledger_postings p ON p.entry_id = e.entry_id"
    " ORDER BY e.chain COLLATE \"C\", e.seq, p.line";
static const char SQL_HEADS[] =
    "SELECT chain, last_seq, encode(last_hash, 'hex') FROM ledger_chains"
    " WHERE last_seq > 0 ORDER BY chain COLLATE \"C\"";
static const char SQL_ACCOUNTS[] =
    "SELECT p.entry_id, p.line, p.account, p.currency FROM ledger_postings p"
    " LEFT JOIN ledger_accounts a ON a.account = p.account"
    " WHERE a.account IS NULL OR a.currency <> p.currency LIMIT 1";
static const char SQL_BALANCES[] =
    "SELECT coalesce(b.account, s.account), coalesce(b.chain, s.chain),"
    "       b.balance_minor, b.postings, s.total, s.n"
    " FROM ledger_balances b FULL JOIN"
    "   (SELECT account, chain, sum(amount_minor) AS total, count(*) AS n FROM ledger_postings"
    "     GROUP BY account, chain) s ON s.account = b.account AND s.chain = b.chain"
    " WHERE b.balance_minor IS DISTINCT FROM s.total OR b.postings IS DISTINCT FROM s.n"
    " LIMIT 1";

/* "<bytes>:<value>", as ledger_field() (functions/ledger_field.sql) */
static void put_field(struct ks_jw *w, const char *s)
{
    char num[24];
    size_t n = strlen(s);
    int k = snprintf(num, sizeof(num), "%zu:", n);
    ks_jw_put(w, num, (size_t)k);
    ks_jw_put(w, s, n);
}

/* one entry being read: its fields and what its postings add up to */
struct entry {
    char chain[256], seq[24], id[24], source_key[256], hash[65], prev[65];
    long n_lines, lines;
    int has;
    struct { char cur[8]; long long sum; } cur[4];
    int ncur;
};

static int fail(const char *fmt, const char *a, const char *b, const char *c, const char *d)
{
    printf("verify: FAILED: ");
    printf(fmt, a, b, c, d);
    printf("\n");
    ks_log(KS_LOG_ERROR, "ledger.verify.failed", "ledger verification failed", NULL);
    return 1;
}

/* Checks the finished entry e; in holds its prev_hash bytes then its content text. */
static int close_entry(struct entry *e, struct ks_jw *in, char *tail_hash, long long *tail_seq)
{
    uint8_t digest[KS_SHA256_LEN];
    char hex[2 * KS_SHA256_LEN + 1];
    long long seq = strtoll(e->seq, NULL, 10);

    if (seq != *tail_seq + 1)
        return fail("chain %s: entry %s has seq %s, expected the next after the chain's %s",
                    e->chain, e->id, e->seq, *tail_seq ? "last" : "start (1)");
    if (strcmp(e->prev, tail_hash) != 0)
        return fail("chain %s seq %s (entry %s, %s): prev_hash is not the hash of the entry before",
                    e->chain, e->seq, e->id, e->source_key);
    if (e->lines != e->n_lines)
        return fail("chain %s seq %s (entry %s, %s): postings missing or extra (n_lines differs)",
                    e->chain, e->seq, e->id, e->source_key);
    for (int k = 0; k < e->ncur; k++)
        if (e->cur[k].sum != 0)
            return fail("chain %s seq %s (entry %s, %s): does not balance",
                        e->chain, e->seq, e->id, e->source_key);
    if (in->full)
        return fail("chain %s seq %s (entry %s, %s): out of memory", e->chain, e->seq, e->id,
                    e->source_key);
    ks_sha256(in->p, in->len, digest);
    ks_hex_encode(digest, sizeof(digest), hex);
    if (strcmp(hex, e->hash) != 0)
        return fail("chain %s seq %s (entry %s, %s): hash does not match the entry's content",
                    e->chain, e->seq, e->id, e->source_key);
    snprintf(tail_hash, 65, "%s", e->hash);
    *tail_seq = seq;
    return 0;
}

static const char ZERO_HASH[] =
    "0000000000000000000000000000000000000000000000000000000000000000";

/* Streams the entries with their postings, chain by chain. */
static int check_chains(PGconn *pg, long long *nentries, int *rc_out)
{
    struct entry e = {0};
    char stack[4096];
    struct ks_jw content;
    char tail_hash[65];
    long long tail_seq = 0;
    uint8_t prev[KS_SHA256_LEN];
    int rc = 0, nchains = 0;
    PGresult *res, *heads = NULL;
    int hi = 0;

    heads = PQexec(pg, SQL_HEADS);
    if (PQresultStatus(heads) != PGRES_TUPLES_OK) {
        printf("verify: could not read chain heads: %s", PQresultErrorMessage(heads));
        PQclear(heads);
        *rc_out = 3;
        return 3;
    }
    if (!PQsendQuery(pg, SQL_ENTRIES) || !PQsetSingleRowMode(pg)) {
        printf("verify: could not read entries: %s", PQerrorMessage(pg));
        PQclear(heads);
        *rc_out = 3;
        return 3;
    }
    snprintf(tail_hash, sizeof(tail_hash), "%s", ZERO_HASH);
    ks_jw_init(&content, stack, sizeof(stack));
    while ((res = PQgetResult(pg))) {
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_TUPLES_OK) { /* the end */
            PQclear(res);
            continue;
        }
        if (st != PGRES_SINGLE_TUPLE) {
            printf("verify: could not read entries: %s", PQresultErrorMessage(res));
            PQclear(res);
            rc = 3;
            continue;
        }
        if (rc) {
            PQclear(res);
            continue;
        }
        const char *chain = PQgetvalue(res, 0, 0), *id = PQgetvalue(res, 0, 2);
        if (!e.has || strcmp(e.id, id) != 0) {
            if (e.has && (rc = close_entry(&e, &content, tail_hash, &tail_seq))) {
                PQclear(res);
                continue;
            }
            if (!e.has || strcmp(e.chain, chain) != 0) {
                /* a chain ends: its head row must name its last entry */
                if (e.has) {
                    if (hi >= PQntuples(heads) || strcmp(PQgetvalue(heads, hi, 0), e.chain) != 0 ||
                        strtoll(PQgetvalue(heads, hi, 1), NULL, 10) != tail_seq ||
                        strcmp(PQgetvalue(heads, hi, 2), tail_hash) != 0) {
                        rc = fail("chain %s: its head row does not name its last entry (seq %s)%s%s",
                                  e.chain, e.seq, "", "");
                        PQclear(res);
                        continue;
                    }
                    hi++;
                }
                snprintf(tail_hash, sizeof(tail_hash), "%s", ZERO_HASH);
                tail_seq = 0;
                nchains++;
            }
            memset(&e, 0, sizeof(e));
            e.has = 1;
            snprintf(e.chain, sizeof(e.chain), "%s", chain);
            snprintf(e.seq, sizeof(e.seq), "%s", PQgetvalue(res, 0, 1));
            snprintf(e.id, sizeof(e.id), "%s", id);
            snprintf(e.source_key, sizeof(e.source_key), "%s", PQgetvalue(res, 0, 3));
            snprintf(e.prev, sizeof(e.prev), "%s", PQgetvalue(res, 0, 9));
            snprintf(e.hash, sizeof(e.hash), "%s", PQgetvalue(res, 0, 10));
            e.n_lines = strtol(PQgetvalue(res, 0, 8), NULL, 10);
            /* what is hashed: prev_hash (bytes), then the content text */
            ks_jw_free(&content);
            ks_jw_init(&content, stack, sizeof(stack));
            if (ks_hex_decode(e.prev, strlen(e.prev), prev, sizeof(prev)) != KS_SHA256_LEN) {
                rc = fail("chain %s seq %s (entry %s, %s): prev_hash is not 32 bytes of hex",
                          e.chain, e.seq, e.id, e.source_key);
                PQclear(res);
                continue;
            }
            ks_jw_put(&content, (const char *)prev, sizeof(prev));
            ks_jw_put(&content, "kasir-ledger-v1|", 16);
            put_field(&content, chain);
            put_field(&content, e.seq);
            put_field(&content, e.source_key);
            put_field(&content, PQgetvalue(res, 0, 4));
            put_field(&content, PQgetvalue(res, 0, 5));
            put_field(&content, PQgetvalue(res, 0, 6));
            put_field(&content, PQgetvalue(res, 0, 7));
            (*nentries)++;
        }
        if (!PQgetisnull(res, 0, 11)) {
            const char *cur = PQgetvalue(res, 0, 14);
            long long amt = strtoll(PQgetvalue(res, 0, 13), NULL, 10);
            int k;
            e.lines++;
            if (strtol(PQgetvalue(res, 0, 11), NULL, 10) != e.lines ||
                strcmp(PQgetvalue(res, 0, 15), e.chain) != 0) {
                rc = fail("chain %s seq %s (entry %s, %s): posting lines not 1..n on the entry's chain",
                          e.chain, e.seq, e.id, e.source_key);
                PQclear(res);
                continue;
            }
            put_field(&content, PQgetvalue(res, 0, 12));
            put_field(&content, PQgetvalue(res, 0, 13));
            put_field(&content, cur);
            for (k = 0; k < e.ncur && strcmp(e.cur[k].cur, cur) != 0; k++)
                ;
            if (k == e.ncur && k < 4) {
                snprintf(e.cur[k].cur, sizeof(e.cur[k].cur), "%s", cur);
                e.ncur++;
            }
            if (k < 4)
                e.cur[k].sum += amt;
        }
        PQclear(res);
    }
    if (!rc && e.has && !(rc = close_entry(&e, &content, tail_hash, &tail_seq))) {
        if (hi >= PQntuples(heads) || strcmp(PQgetvalue(heads, hi, 0), e.chain) != 0 ||
            strtoll(PQgetvalue(heads, hi, 1), NULL, 10) != tail_seq ||
            strcmp(PQgetvalue(heads, hi, 2), tail_hash) != 0)
            rc = fail("chain %s: its head row does not name its last entry (seq %s)%s%s", e.chain,
                      e.seq, "", "");
        else
            hi++;
    }
    if (!rc && hi < PQntuples(heads))
        rc = fail("chain %s: its head row names entries that are not there (seq %s)%s%s",
                  PQgetvalue(heads, hi, 0), PQgetvalue(heads, hi, 1), "", "");
    ks_jw_free(&content);
    PQclear(heads);
    *rc_out = rc;
    return nchains;
}

int ledger_verify_main(int argc, char **argv)
{
    const char *path = NULL;
    struct ks_config *cfg = NULL;
    struct ks_db *db = NULL;
    struct ks_err err = {0};
    PGconn *pg;
    PGresult *res = NULL;
    long long nentries = 0;
    int rc = 0, nchains;
    struct ks_config_def defs[2];
    size_t ndefs = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            path = argv[++i];
        } else {
            fprintf(stderr, "usage: kasir-ledger verify [-c config-file]\n");
            return 2;
        }
    }
    /* verify needs only these of the daemon's settings (same file, same environment) */
    for (size_t i = 0; i < ks_common_settings_count && ndefs < 2; i++)
        if (strcmp(ks_common_settings[i].name, "pg.dsn") == 0 ||
            strcmp(ks_common_settings[i].name, "log.level") == 0)
            defs[ndefs++] = ks_common_settings[i];
    if (!(cfg = ks_config_load_main("ledger", defs, ndefs, path)))
        return 2;
    if (!(db = ks_db_connect(ks_config_str(cfg, "pg.dsn"), &err))) {
        printf("verify: PostgreSQL unreachable: %s\n", err.msg);
        rc = 3;
        goto out;
    }
    pg = ks_db_conn(db);
    /* one snapshot for all checks, so a running ledger cannot make them disagree */
    res = PQexec(pg, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        printf("verify: %s", PQresultErrorMessage(res));
        rc = 3;
        goto out;
    }
    PQclear(res);
    res = NULL;
    nchains = check_chains(pg, &nentries, &rc);
    if (rc)
        goto out;
    res = PQexec(pg, SQL_ACCOUNTS);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        printf("verify: %s", PQresultErrorMessage(res));
        rc = 3;
        goto out;
    }
    if (PQntuples(res) > 0) {
        rc = fail("entry %s line %s: account %s unknown or not in %s", PQgetvalue(res, 0, 0),
                  PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3));
        goto out;
    }
    PQclear(res);
    res = PQexec(pg, SQL_BALANCES);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        printf("verify: %s", PQresultErrorMessage(res));
        rc = 3;
        goto out;
    }
    if (PQntuples(res) > 0) {
        rc = fail("account %s (stripe %s): balance %s does not equal the sum of its postings %s",
                  PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1),
                  PQgetisnull(res, 0, 2) ? "(none)" : PQgetvalue(res, 0, 2),
                  PQgetisnull(res, 0, 4) ? "(none)" : PQgetvalue(res, 0, 4));
        goto out;
    }
    printf("verify: ok: %lld entries in %d chains balance, chains intact, balances equal their "
           "postings\n", nentries, nchains);
    ks_logf(KS_LOG_INFO, "ledger.verify.ok", "ledger verified: %lld entries, %d chains",
            nentries, nchains);
out:
    PQclear(res);
    ks_db_free(db);
    ks_config_free(cfg);
    return rc;
}
