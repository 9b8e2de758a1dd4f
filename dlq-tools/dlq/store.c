/* store.c - kasir-dlq's state in PostgreSQL (860_dlq_tools.sql) and the parked outbox rows
 * (kasir_outbox_dead, 800_runtime.sql). Every statement the tool runs is here. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dlq.h"
#include "lib/outbox.h"
#include "lib/serde.h"
#include "lib/headers.h"
#include "lib/pgarr.h"
#include "lib/banned.h"

/* the marks of the DLQ topics a command reads, loaded once: a scan then looks each
 * message up in memory instead of asking the database per message */
static const char SQL_MARKS[] =
    "SELECT r.topic, u.p, u.o, 2 FROM kasir_dlq_replayed r, unnest(r.partitions, r.offs) AS u(p, o)"
    " WHERE r.topic = ANY($1::text[]) "
    "UNION ALL "
    "SELECT topic, partition, off, 4 FROM kasir_dlq_resolved WHERE topic = ANY($1::text[])";

/* one replay per DLQ topic at a time: two would both find the same messages open and both
 * send them. Session locks, so a killed replay's go with its connection. Returns the
 * topics another replay holds. */
static const char SQL_LOCK_TOPICS[] =
    "SELECT t FROM unnest($1::text[]) AS t"
    " WHERE NOT pg_try_advisory_lock(hashtext('kasir-dlq replay ' || t))";

/* Resolve during a replay (README "Resolve during a replay"): a resolve writes its marks
 * holding this lock exclusively (a transaction lock: released by its commit), and a replay
 * holds it shared (a session lock) from the moment it reads the resolve marks it has not
 * seen until the chunk of copies checked against them is handed to the producer. So a
 * resolve that commits before a check is seen by it, and one that waits for the lock
 * commits only after the copies already checked were produced: no copy is produced after
 * the resolve of its message commits. One key for every topic: resolves are rare and
 * short, and a replay holds it for a chunk (at most 200 ms or --batch copies). */
#define GATE "hashtext('kasir-dlq resolve gate')"
static const char SQL_GATE_SHARED[] = "SELECT pg_advisory_lock_shared(" GATE ")";
static const char SQL_GATE_RELEASE[] = "SELECT pg_advisory_unlock_shared(" GATE ")";
/* a replay holds the lock for a chunk; one stopped with Ctrl-Z, or stuck, must not hang every
 * resolve: wait 10 s, then fail with a message saying why */
static const char SQL_GATE_RESOLVE[] =
    "BEGIN; SET LOCAL lock_timeout = '10s'; SELECT pg_advisory_xact_lock(" GATE ")";

/* the resolve marks a replay has not seen yet (seq in commit order under the gate,
 * 860_dlq_tools.sql) */
static const char SQL_RESOLVED_SINCE[] =
    "SELECT topic, partition, off, seq FROM kasir_dlq_resolved"
    " WHERE topic = ANY($1::text[]) AND seq > $2::bigint";

/* the topics of a list that a replay holds (its session lock, SQL_LOCK_TOPICS), without
 * keeping any: CASE fixes the order, so the unlock only follows a lock taken here */
static const char SQL_REPLAYS_RUNNING[] =
    "SELECT t FROM unnest($1::text[]) AS t WHERE CASE"
    " WHEN pg_try_advisory_lock(hashtext('kasir-dlq replay ' || t))"
    " THEN NOT pg_advisory_unlock(hashtext('kasir-dlq replay ' || t)) ELSE true END";

/* A killed replay (dlq-tools/README.md, "A killed replay"). A replay holds a session lock on
 * its id from before its audit record is written until it exits: a record still 'running'
 * whose lock is free belongs to a replay that is gone. The next replay looks for that
 * one's copies in its target partitions (from the offsets recorded before its first copy
 * there), records those its marks lack, and calls it interrupted, all before it reads the
 * marks itself; under one lock, so two replays starting together do not both record them. */
#define RUN_KEY(id) "hashtext('kasir-dlq replay run ' || " id ")"
static const char SQL_RUN_LOCK[] = "SELECT pg_advisory_lock(" RUN_KEY("$1::text") ")";
static const char SQL_RECOVERY_LOCK[] = "SELECT pg_advisory_lock(hashtext('kasir-dlq recovery'))";
static const char SQL_RECOVERY_UNLOCK[] =
    "SELECT pg_advisory_unlock(hashtext('kasir-dlq recovery'))";
static const char SQL_DEAD_REPLAYS[] =
    "SELECT id FROM kasir_dlq_audit WHERE action = 'replay' AND status = 'running' AND CASE"
    " WHEN pg_try_advisory_lock(" RUN_KEY("id") ") THEN pg_advisory_unlock(" RUN_KEY("id") ")"
    " ELSE false END ORDER BY started_at, id";
static const char SQL_TARGETS_OF[] =
    "SELECT topic, partition, start_off FROM kasir_dlq_replay_targets WHERE replay_id = $1"
    " ORDER BY topic, partition";
static const char SQL_TARGET_RECORD[] =
    "INSERT INTO kasir_dlq_replay_targets (replay_id, topic, partition, start_off)"
    " SELECT $1, $2, p, o FROM unnest($3::int[], $4::bigint[]) AS u(p, o) ON CONFLICT DO NOTHING";
/* the copies found: those the killed replay's marks lack are added (one each, in the order
 * found), and its record is finished as interrupted */
static const char SQL_RECOVER[] =
    "WITH u AS ("
    "  SELECT * FROM unnest($2::text[], $3::int[], $4::bigint[], $5::text[], $6::text[])"
    "    WITH ORDINALITY AS u(t, p, o, m, g, n)),"
    " known AS ("
    "  SELECT r.topic, k.p, k.o FROM kasir_dlq_replayed r, unnest(r.partitions, r.offs) AS k(p, o)"
    "  WHERE r.replay_id = $1),"
    " fresh AS ("
    "  SELECT DISTINCT ON (t, p, o) * FROM u WHERE NOT EXISTS (SELECT 1 FROM known"
    "    WHERE known.topic = u.t AND known.p = u.p AND known.o = u.o) ORDER BY t, p, o, n),"
    " ins AS ("
    "  INSERT INTO kasir_dlq_replayed (replay_id, topic, partitions, offs, message_ids, targets)"
    "  SELECT $1, t, array_agg(p ORDER BY n), array_agg(o ORDER BY n), array_agg(m ORDER BY n),"
    "         array_agg(g ORDER BY n) FROM fresh GROUP BY t"
    "  RETURNING cardinality(offs) AS k),"
    " added AS (SELECT coalesce(sum(k), 0) AS k FROM ins) "
    "UPDATE kasir_dlq_audit SET done = done + added.k, status = 'interrupted',"
    " finished_at = now() FROM added WHERE id = $1 RETURNING added.k";

static const char SQL_AUDIT_BEGIN[] =
    "INSERT INTO kasir_dlq_audit (id, action, actor, filters, target, note) "
    "VALUES ($1, $2, $3, $4::jsonb, $5, $6)";

static const char SQL_AUDIT_END[] =
    "UPDATE kasir_dlq_audit SET status = $2, finished_at = now(), selected = $3, failed = $4 "
    "WHERE id = $1";

/* one round trip per batch of confirmed copies: a row per DLQ topic of the batch (its
 * messages as arrays, in the order confirmed) and the audit's count, in one statement */
static const char SQL_MARK_REPLAYED[] =
    "WITH u AS ("
    "  SELECT * FROM unnest($2::text[], $3::int[], $4::bigint[], $5::text[], $6::text[])"
    "    WITH ORDINALITY AS u(t, p, o, m, g, n)),"
    " ins AS ("
    "  INSERT INTO kasir_dlq_replayed (replay_id, topic, partitions, offs, message_ids, targets)"
    "  SELECT $1, t, array_agg(p ORDER BY n), array_agg(o ORDER BY n), array_agg(m ORDER BY n),"
    "         array_agg(g ORDER BY n) FROM u GROUP BY t"
    "  RETURNING cardinality(offs) AS k) "
    "UPDATE kasir_dlq_audit SET done = done + (SELECT coalesce(sum(k), 0) FROM ins),"
    " selected = greatest(selected, $7::bigint) WHERE id = $1";

static const char SQL_MARK_RESOLVED[] =
    "WITH ins AS ("
    "  INSERT INTO kasir_dlq_resolved (topic, partition, off, resolve_id, message_id)"
    "  SELECT t, p, o, $1, m"
    "  FROM unnest($2::text[], $3::int[], $4::bigint[], $5::text[]) AS u(t, p, o, m)"
    "  ON CONFLICT DO NOTHING RETURNING 1) "
    "UPDATE kasir_dlq_audit SET done = done + (SELECT count(*) FROM ins),"
    " selected = greatest(selected, $6::bigint) WHERE id = $1";

#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

static const char SQL_AUDIT_LIST[] =
    "SELECT id, action, actor, " TS("started_at") ", " TS("finished_at") ", status, filters,"
    " target, note, selected, done, failed FROM kasir_dlq_audit"
    " WHERE ($1::text IS NULL OR id = $1) ORDER BY started_at DESC, id DESC LIMIT $2";

/* parked rows: the selection shared by the listing and the retry */
#define PARKED_WHERE                                                                            \
    " WHERE ($1::text IS NULL OR worker = $1) AND ($2::text[] IS NULL OR topic = ANY($2))"      \
    " AND ($3::bigint[] IS NULL OR id = ANY($3))"

static const char SQL_PARKED_LIST[] =
    "SELECT id, worker, message_id, topic, key, value, headers, " TS("created_at") ","
    " attempts, last_error, " TS("parked_at") ", " TS("retried_at") ", retried_by"
    " FROM kasir_outbox_dead" PARKED_WHERE " AND ($4 OR retried_at IS NULL)"
    " ORDER BY parked_at, id LIMIT $5";

/* The row stays parked as evidence, marked retried; a copy goes back into kasir_outbox
 * under a fresh id, which its worker's relay sends at its next sweep (rows older than
 * worker.outbox.min_age). A fresh id, not the old one: if the copy fails again the relay
 * parks it again, and kasir_outbox_dead's key is the outbox id. One statement: the mark,
 * the copy and the audit commit together. */
static const char SQL_PARKED_RETRY[] =
    "WITH sel AS ("
    "  UPDATE kasir_outbox_dead SET retried_at = now(), retried_by = $4" PARKED_WHERE
    "  AND retried_at IS NULL RETURNING worker, message_id, topic, key, value, headers),"
    " ins AS ("
    "  INSERT INTO kasir_outbox (worker, message_id, topic, key, value, headers)"
    "  SELECT worker, message_id, topic, key, value, headers FROM sel RETURNING 1) "
    "INSERT INTO kasir_dlq_audit (id, action, actor, filters, note, status, finished_at,"
    " selected, done) "
    "SELECT $5, 'parked-retry', $4, $6::jsonb, $7, 'done', now(), count(*), count(*) FROM ins "
    "RETURNING done";

struct mark {
    size_t topic; /* index into dlq_marks.topics */
    int32_t partition;
    int64_t off;
    int state;
};

struct dlq_marks {
    char **topics;
    size_t ntopics, n, last;
    struct mark *v;
    int64_t seq; /* the greatest resolve mark seq read by dlq_marks_refresh */
};

static int mark_cmp(const void *a, const void *b)
{
    const struct mark *x = a, *y = b;
    if (x->topic != y->topic)
        return x->topic < y->topic ? -1 : 1;
    if (x->partition != y->partition)
        return x->partition < y->partition ? -1 : 1;
    return x->off < y->off ? -1 : x->off > y->off;
}

static size_t topic_index(const struct dlq_marks *mk, const char *topic)
{
    for (size_t i = 0; i < mk->ntopics; i++)
        if (strcmp(mk->topics[i], topic) == 0)
            return i;
    return (size_t)-1;
}

static void text_array(struct ks_pgarr *a, char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ks_pgarr_text(a, v[i]);
}

/* The next result of what was sent on pg (NULL: none left). The replay's round trips wait
 * here: a PostgreSQL that hangs (stopped, a network that drops packets) is said on stderr
 * after 15 s instead of passing for a slow replay; libpq's own wait ignores signals, and a
 * second SIGINT/SIGTERM ends the process at once (main.c), which a replay survives. */
static PGresult *await(PGconn *pg)
{
    time_t t0 = time(NULL);
    int warned = 0;

    while (PQisBusy(pg)) {
        struct pollfd p = {.fd = PQsocket(pg), .events = POLLIN};
        if (poll(&p, 1, 1000) < 0 && errno != EINTR)
            break;
        if (!PQconsumeInput(pg))
            break;
        if (!warned && time(NULL) - t0 >= 15) {
            warned = 1;
            fprintf(stderr, "kasir-dlq: PostgreSQL has not answered for 15 s: still waiting "
                            "(a second Ctrl-C stops at once; a replay's confirmed copies are "
                            "then recorded by the next replay)\n");
        }
    }
    return PQgetResult(pg);
}

/* the last result of what was sent on pg, every result waited for through await() */
static PGresult *last_result(PGconn *pg)
{
    PGresult *res = NULL, *r;

    while ((r = await(pg))) {
        PQclear(res);
        res = r;
    }
    return res;
}

/* PQexecParams through await(), for every statement of a replay: a PostgreSQL that hangs
 * in any of them is said on stderr (test 544 caught a replay stopped in a blocking read of
 * its marks: 60 s without a word). lens and fmts as PQexecParams takes them (NULL: text).
 * An error result, never NULL. */
static PGresult *exec_awaited(PGconn *pg, const char *sql, int n, const char *const *params,
                              const int *lens, const int *fmts)
{
    PGresult *res;

    if (!PQsendQueryParams(pg, sql, n, NULL, params, lens, fmts, 0))
        return PQmakeEmptyPGresult(pg, PGRES_FATAL_ERROR);
    res = last_result(pg);
    return res ? res : PQmakeEmptyPGresult(pg, PGRES_FATAL_ERROR);
}

/* sorted for bsearch, one entry per message: replayed twice, or replayed and resolved */
static void marks_sort(struct dlq_marks *mk)
{
    size_t o = 0;

    if (mk->n < 2)
        return;
    qsort(mk->v, mk->n, sizeof(*mk->v), mark_cmp);
    for (size_t i = 1; i < mk->n; i++) {
        if (mark_cmp(&mk->v[o], &mk->v[i]) == 0)
            mk->v[o].state |= mk->v[i].state;
        else
            mk->v[++o] = mk->v[i];
    }
    mk->n = o + 1;
}

struct dlq_marks *dlq_marks_load(PGconn *pg, char **topics, size_t n, struct ks_err *err)
{
    struct dlq_marks *mk = calloc(1, sizeof(*mk));
    struct ks_pgarr a;
    const char *params[1];
    PGresult *res = NULL;

    ks_pgarr_init(&a);
    if (!mk || !(mk->topics = calloc(n + 1, sizeof(*mk->topics))))
        goto oom;
    for (size_t i = 0; i < n; i++)
        if (!(mk->topics[mk->ntopics++] = strdup(topics[i])))
            goto oom;
    text_array(&a, topics, n);
    if (!(params[0] = ks_pgarr_str(&a)))
        goto oom;
    res = exec_awaited(pg, SQL_MARKS, 1, params, NULL, NULL);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ks_err_set(err, KS_EDB, 1, NULL, "could not read the replay and resolve marks: %s",
                   PQresultErrorMessage(res));
        goto fail;
    }
    if (PQntuples(res) && !(mk->v = calloc((size_t)PQntuples(res), sizeof(*mk->v))))
        goto oom;
    for (int r = 0; r < PQntuples(res); r++) {
        struct mark *m = &mk->v[mk->n];
        if ((m->topic = topic_index(mk, PQgetvalue(res, r, 0))) == (size_t)-1)
            continue;
        m->partition = (int32_t)strtol(PQgetvalue(res, r, 1), NULL, 10);
        m->off = strtoll(PQgetvalue(res, r, 2), NULL, 10);
        m->state = (int)strtol(PQgetvalue(res, r, 3), NULL, 10);
        mk->n++;
    }
    marks_sort(mk);
    PQclear(res);
    ks_pgarr_release(&a);
    return mk;
oom:
    ks_err_set(err, KS_ENOMEM, 0, NULL, "out of memory");
fail:
    PQclear(res);
    ks_pgarr_release(&a);
    dlq_marks_free(mk);
    return NULL;
}

int dlq_marks_get(const struct dlq_marks *mk, const char *topic, int32_t partition, int64_t off)
{
    struct mark key = {.partition = partition, .off = off}, *hit;
    struct dlq_marks *m = (struct dlq_marks *)mk;

    /* a scan reads one topic after another: remember the last one */
    if (m->last < m->ntopics && strcmp(m->topics[m->last], topic) == 0)
        key.topic = m->last;
    else if ((key.topic = topic_index(mk, topic)) == (size_t)-1)
        return DLQ_OPEN;
    else
        m->last = key.topic;
    hit = mk->n ? bsearch(&key, mk->v, mk->n, sizeof(key), mark_cmp) : NULL;
    return hit ? hit->state : DLQ_OPEN;
}

void dlq_marks_free(struct dlq_marks *mk)
{
    if (!mk)
        return;
    for (size_t i = 0; i < mk->ntopics; i++)
        free(mk->topics[i]);
    free(mk->topics);
    free(mk->v);
    free(mk);
}

enum ks_code dlq_marks_refresh(PGconn *pg, struct dlq_marks *mk, struct ks_err *err)
{
    struct ks_pgarr a;
    const char *params[2];
    char seq[24];
    PGresult *res = NULL;
    struct mark *nv;
    enum ks_code rc = KS_OK;
    size_t n0;
    int rows;

    ks_pgarr_init(&a);
    text_array(&a, mk->topics, mk->ntopics);
    snprintf(seq, sizeof(seq), "%" PRId64, mk->seq);
    params[1] = seq;
    if (!(params[0] = ks_pgarr_str(&a))) {
        rc = ks_err_set(err, KS_ENOMEM, 0, NULL, "out of memory");
        goto out;
    }
    res = exec_awaited(pg, SQL_RESOLVED_SINCE, 2, params, NULL, NULL);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = ks_err_set(err, KS_EDB, 1, NULL, "could not read the resolve marks: %s",
                        PQresultErrorMessage(res));
        goto out;
    }
    if ((rows = PQntuples(res)) == 0)
        goto out;
    if (!(nv = realloc(mk->v, (mk->n + (size_t)rows) * sizeof(*nv)))) {
        rc = ks_err_set(err, KS_ENOMEM, 0, NULL, "out of memory");
        goto out;
    }
    mk->v = nv;
    n0 = mk->n; /* the sorted part: new marks are appended after it, then sorted in */
    for (int r = 0; r < rows; r++) {
        struct mark *m = &mk->v[mk->n], *old;
        int64_t q = strtoll(PQgetvalue(res, r, 3), NULL, 10);
        if (q > mk->seq)
            mk->seq = q;
        if ((m->topic = topic_index(mk, PQgetvalue(res, r, 0))) == (size_t)-1)
            continue;
        m->partition = (int32_t)strtol(PQgetvalue(res, r, 1), NULL, 10);
        m->off = strtoll(PQgetvalue(res, r, 2), NULL, 10);
        old = n0 ? bsearch(m, mk->v, n0, sizeof(*m), mark_cmp) : NULL;
        if (old && (old->state & DLQ_RESOLVED))
            continue; /* known when the command started (the first refresh reads them all) */
        m->state = DLQ_RESOLVED | DLQ_LATE;
        mk->n++;
    }
    marks_sort(mk);
out:
    PQclear(res);
    ks_pgarr_release(&a);
    return rc;
}

static enum ks_code gate_exec(PGconn *pg, const char *sql, const char *what, struct ks_err *err)
{
    PGresult *res = NULL;
    enum ks_code rc = KS_OK;

    if (PQsendQuery(pg, sql)) /* several statements (SQL_GATE_RESOLVE): the last result */
        res = last_result(pg);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        rc = ks_err_set(err, KS_EDB, 1, NULL, "could not %s: %s", what,
                        PQresultErrorMessage(res));
    PQclear(res);
    return rc;
}

enum ks_code dlq_gate_enter(PGconn *pg, struct dlq_marks *mk, struct ks_err *err)
{
    if (gate_exec(pg, SQL_GATE_SHARED, "take the resolve lock", err) != KS_OK)
        return err->code;
    /* read after the lock is granted: this statement's snapshot sees every resolve that
     * committed before it */
    if (dlq_marks_refresh(pg, mk, err) != KS_OK) {
        struct ks_err e2 = {0}; /* the refresh's failure is the one to report */
        gate_exec(pg, SQL_GATE_RELEASE, "release the resolve lock", &e2);
        return err->code;
    }
    return KS_OK;
}

enum ks_code dlq_gate_leave(PGconn *pg, struct ks_err *err)
{
    return gate_exec(pg, SQL_GATE_RELEASE, "release the resolve lock", err);
}

int dlq_replays_running(PGconn *pg, char **topics, size_t n, char *first, size_t cap)
{
    struct ks_pgarr a;
    const char *params[1];
    PGresult *res = NULL;
    int k = 0;

    ks_pgarr_init(&a);
    text_array(&a, topics, n);
    if ((params[0] = ks_pgarr_str(&a))) {
        res = exec_awaited(pg, SQL_REPLAYS_RUNNING, 1, params, NULL, NULL);
        if (PQresultStatus(res) == PGRES_TUPLES_OK && (k = PQntuples(res)) > 0)
            snprintf(first, cap, "%s", PQgetvalue(res, 0, 0));
    }
    PQclear(res);
    ks_pgarr_release(&a);
    return k;
}

enum ks_code dlq_lock_topics(PGconn *pg, char **topics, size_t n, struct ks_err *err)
{
    struct ks_pgarr a;
    const char *params[1];
    PGresult *res = NULL;
    enum ks_code rc = KS_OK;

    ks_pgarr_init(&a);
    text_array(&a, topics, n);
    if (!(params[0] = ks_pgarr_str(&a))) {
        rc = ks_err_set(err, KS_ENOMEM, 0, NULL, "out of memory");
        goto out;
    }
    res = exec_awaited(pg, SQL_LOCK_TOPICS, 1, params, NULL, NULL);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        rc = ks_err_set(err, KS_EDB, 1, NULL, "could not lock the DLQ topics: %s",
                        PQresultErrorMessage(res));
    else if (PQntuples(res) > 0)
        rc = ks_err_set(err, KS_ECONFLICT, 0, NULL,
                        "another replay is reading %s%s: let it finish or stop it (kasir-dlq "
                        "audit shows it)",
                        PQgetvalue(res, 0, 0), PQntuples(res) > 1 ? " and more" : "");
out:
    PQclear(res);
    ks_pgarr_release(&a);
    return rc;
}

enum ks_code dlq_audit_begin(PGconn *pg, const char *id, const char *action, const char *actor,
                             const json_t *filters, const char *target, const char *note,
                             struct ks_err *err)
{
    char *f = json_dumps(filters, JSON_COMPACT | JSON_SORT_KEYS);
    const char *params[6] = {id, action, actor, f, target, note};
    PGresult *res;
    enum ks_code rc = KS_OK;

    if (!f)
        return ks_err_set(err, KS_ENOMEM, 0, NULL, "out of memory");
    res = exec_awaited(pg, SQL_AUDIT_BEGIN, 6, params, NULL, NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        rc = ks_err_set(err, KS_EDB, 1, NULL, "could not write the audit record: %s",
                        PQresultErrorMessage(res));
    PQclear(res);
    free(f);
    return rc;
}

enum ks_code dlq_audit_end(PGconn *pg, const char *id, const char *status, int64_t selected,
                           int64_t failed, struct ks_err *err)
{
    char sel[24], fl[24];
    const char *params[4] = {id, status, sel, fl};
    PGresult *res;
    enum ks_code rc = KS_OK;

    snprintf(sel, sizeof(sel), "%" PRId64, selected);
    snprintf(fl, sizeof(fl), "%" PRId64, failed);
    res = exec_awaited(pg, SQL_AUDIT_END, 4, params, NULL, NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        rc = ks_err_set(err, KS_EDB, 1, NULL, "could not finish the audit record: %s",
                        PQresultErrorMessage(res));
    PQclear(res);
    return rc;
}

struct dlq_markbuf {
    struct ks_pgarr_bin a[5]; /* topic, partition, offset, message id, target */
};

struct dlq_markbuf *dlq_markbuf_new(void)
{
    static const unsigned oid[5] = {KS_OID_TEXT, KS_OID_INT4, KS_OID_INT8, KS_OID_TEXT,
                                    KS_OID_TEXT};
    struct dlq_markbuf *b = calloc(1, sizeof(*b));

    if (b)
        for (int i = 0; i < 5; i++)
            ks_pgarr_bin_init(&b->a[i], oid[i]);
    return b;
}

void dlq_markbuf_free(struct dlq_markbuf *b)
{
    if (!b)
        return;
    for (int i = 0; i < 5; i++)
        ks_pgarr_bin_release(&b->a[i]);
    free(b);
}

void dlq_markbuf_add(struct dlq_markbuf *b, const char *topic, int32_t partition, int64_t off,
                     const char *message_id, const char *target)
{
    ks_pgarr_bin_bytes(&b->a[0], topic, strlen(topic));
    ks_pgarr_bin_int4(&b->a[1], partition);
    ks_pgarr_bin_int8(&b->a[2], off);
    ks_pgarr_bin_bytes(&b->a[3], message_id, strlen(message_id));
    ks_pgarr_bin_bytes(&b->a[4], target ? target : "", target ? strlen(target) : 0);
}

/* a statement's parameters: params[0] the action's id, params[1..n] the first n arrays
 * (binary; lens set). -1 when one could not be finished (out of memory) */
static int markbuf_params(struct dlq_markbuf *b, int n, const char *id, const char **params,
                          int *lens)
{
    params[0] = id;
    for (int i = 0; i < n; i++)
        if (!(params[i + 1] = ks_pgarr_bin_data(&b->a[i], &lens[i + 1])))
            return -1;
    return 0;
}

/* empty again, its memory kept (libpq copied the parameters when the statement was sent) */
static void markbuf_reset(struct dlq_markbuf *b)
{
    for (int i = 0; i < 5; i++)
        ks_pgarr_bin_reset(&b->a[i]);
}

size_t dlq_markbuf_count(const struct dlq_markbuf *b)
{
    return b->a[0].n;
}

enum ks_code dlq_markbuf_send(struct dlq_markbuf *b, PGconn *pg, const char *action_id,
                              int resolve, int64_t selected, struct ks_err *err)
{
    const char *params[7];
    int lens[7] = {0}, fmts[7] = {0, 1, 1, 1, 1, 1, 0};
    int np = resolve ? 6 : 7;
    char sel[24];
    enum ks_code rc = KS_OK;

    if (markbuf_params(b, np - 2, action_id, params, lens) != 0)
        return ks_err_set(err, KS_ENOMEM, 0, NULL, "out of memory");
    snprintf(sel, sizeof(sel), "%" PRId64, selected);
    params[np - 1] = sel;
    fmts[np - 1] = 0;
    /* libpq copies the parameters into its output buffer here: the arrays can be refilled */
    if (!PQsendQueryParams(pg, resolve ? SQL_MARK_RESOLVED : SQL_MARK_REPLAYED, np, NULL,
                           params, lens, fmts, 0))
        rc = ks_err_set(err, KS_EDB, 1, NULL, "could not record progress: %s",
                        PQerrorMessage(pg));
    markbuf_reset(b);
    return rc;
}

enum ks_code dlq_markbuf_wait(PGconn *pg, struct ks_err *err)
{
    PGresult *res;
    enum ks_code rc = KS_OK;

    while ((res = await(pg))) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK && rc == KS_OK)
            rc = ks_err_set(err, KS_EDB, 1, NULL, "could not record progress: %s",
                            PQresultErrorMessage(res));
        PQclear(res);
    }
    return rc;
}

enum ks_code dlq_markbuf_write(struct dlq_markbuf *b, PGconn *pg, const char *action_id,
                               int resolve, int64_t selected, struct ks_err *err)
{
    PGresult *res;
    enum ks_code rc;

    if (dlq_markbuf_count(b) == 0)
        return KS_OK;
    /* resolve marks commit holding the gate (SQL_GATE_RESOLVE): a running replay sees them
     * before its next chunk, and has produced no copy after they commit */
    if (resolve && gate_exec(pg, SQL_GATE_RESOLVE,
                             "take the resolve lock (a replay holds it: is one stopped? "
                             "kasir-dlq audit shows those running)",
                             err) != KS_OK) {
        PQclear(PQexec(pg, "ROLLBACK"));
        return err->code;
    }
    if ((rc = dlq_markbuf_send(b, pg, action_id, resolve, selected, err)) == KS_OK)
        rc = dlq_markbuf_wait(pg, err);
    if (resolve) {
        res = PQexec(pg, rc == KS_OK ? "COMMIT" : "ROLLBACK");
        if (rc == KS_OK && PQresultStatus(res) != PGRES_COMMAND_OK)
            rc = ks_err_set(err, KS_EDB, 1, NULL, "could not record progress: %s",
                            PQresultErrorMessage(res));
        PQclear(res);
    }
    return rc;
}

static enum ks_code exec_params(PGconn *pg, const char *sql, int n, const char *const *params,
                                const int *lens, const int *fmts, int tuples, PGresult **out,
                                const char *what, struct ks_err *err)
{
    PGresult *res = exec_awaited(pg, sql, n, params, lens, fmts);

    if (ks_pg_check(pg, res, tuples ? PGRES_TUPLES_OK : PGRES_COMMAND_OK, what, err) != KS_OK) {
        PQclear(res);
        return err->code;
    }
    if (out)
        *out = res;
    else
        PQclear(res);
    return KS_OK;
}

enum ks_code dlq_run_lock(PGconn *pg, const char *id, struct ks_err *err)
{
    const char *params[1] = {id};
    return exec_params(pg, SQL_RUN_LOCK, 1, params, NULL, NULL, 1, NULL, "taking the replay's lock", err);
}

enum ks_code dlq_recovery_begin(PGconn *pg, char ***ids, size_t *n, struct ks_err *err)
{
    PGresult *res = NULL;

    *ids = NULL;
    *n = 0;
    if (exec_params(pg, SQL_RECOVERY_LOCK, 0, NULL, NULL, NULL, 1, NULL,
                    "taking the recovery lock", err) != KS_OK ||
        exec_params(pg, SQL_DEAD_REPLAYS, 0, NULL, NULL, NULL, 1, &res,
                    "looking for killed replays", err) != KS_OK)
        return err->code;
    if (PQntuples(res) && !(*ids = calloc((size_t)PQntuples(res), sizeof(**ids)))) {
        PQclear(res);
        return ks_err_set(err, KS_ENOMEM, 0, NULL, "out of memory");
    }
    for (int r = 0; r < PQntuples(res); r++)
        if (((*ids)[(*n)++] = strdup(PQgetvalue(res, r, 0))) == NULL) {
            PQclear(res);
            return ks_err_set(err, KS_ENOMEM, 0, NULL, "out of memory");
        }
    PQclear(res);
    return KS_OK;
}

void dlq_recovery_end(PGconn *pg)
{
    PQclear(PQexec(pg, SQL_RECOVERY_UNLOCK)); /* also released with the session */
}

enum ks_code dlq_targets_of(PGconn *pg, const char *id, struct ks_scan_range **ranges,
                            size_t *n, struct ks_err *err)
{
    const char *params[1] = {id};
    PGresult *res = NULL;

    *ranges = NULL;
    *n = 0;
    if (exec_params(pg, SQL_TARGETS_OF, 1, params, NULL, NULL, 1, &res,
                    "reading a replay's targets", err) != KS_OK)
        return err->code;
    if (PQntuples(res) && !(*ranges = calloc((size_t)PQntuples(res), sizeof(**ranges)))) {
        PQclear(res);
        return ks_err_set(err, KS_ENOMEM, 0, NULL, "out of memory");
    }
    for (int r = 0; r < PQntuples(res); r++) {
        struct ks_scan_range *g = &(*ranges)[(*n)++];
        if (!(g->topic = strdup(PQgetvalue(res, r, 0)))) {
            PQclear(res);
            return ks_err_set(err, KS_ENOMEM, 0, NULL, "out of memory");
        }
        g->partition = (int32_t)strtol(PQgetvalue(res, r, 1), NULL, 10);
        g->start = strtoll(PQgetvalue(res, r, 2), NULL, 10);
        g->end = INT64_MAX; /* to the end the scan finds */
    }
    PQclear(res);
    return KS_OK;
}

enum ks_code dlq_target_record(PGconn *pg, const char *id, const char *topic,
                               const int32_t *parts, const int64_t *offs, size_t n,
                               struct ks_err *err)
{
    struct ks_pgarr pa, oa;
    const char *params[4] = {id, topic, NULL, NULL};
    enum ks_code rc;

    ks_pgarr_init(&pa);
    ks_pgarr_init(&oa);
    for (size_t i = 0; i < n; i++) {
        ks_pgarr_int(&pa, parts[i]);
        ks_pgarr_int(&oa, offs[i]);
    }
    if (!(params[2] = ks_pgarr_str(&pa)) || !(params[3] = ks_pgarr_str(&oa)))
        rc = ks_err_set(err, KS_ENOMEM, 0, NULL, "out of memory");
    else
        rc = exec_params(pg, SQL_TARGET_RECORD, 4, params, NULL, NULL, 0, NULL,
                         "recording the replay's target", err);
    ks_pgarr_release(&pa);
    ks_pgarr_release(&oa);
    return rc;
}

enum ks_code dlq_recover_write(struct dlq_markbuf *b, PGconn *pg, const char *id,
                               int64_t *added, struct ks_err *err)
{
    const char *params[6];
    int lens[6] = {0}, fmts[6] = {0, 1, 1, 1, 1, 1};
    PGresult *res = NULL;

    if (markbuf_params(b, 5, id, params, lens) != 0)
        return ks_err_set(err, KS_ENOMEM, 0, NULL, "out of memory");
    if (exec_params(pg, SQL_RECOVER, 6, params, lens, fmts, 1, &res,
                    "recording a killed replay's copies", err) != KS_OK)
        return err->code;
    *added = PQntuples(res) ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    PQclear(res);
    markbuf_reset(b);
    return KS_OK;
}

/* ---- kasir-dlq audit ------------------------------------------------------------------- */

static const char *val(PGresult *res, int r, int c)
{
    return PQgetisnull(res, r, c) ? NULL : PQgetvalue(res, r, c);
}

int dlq_cmd_audit(struct dlq_ctx *c)
{
    char lim[24];
    const char *id = c->o.audit_id;
    const char *params[2];
    PGresult *res;
    int rc = DLQ_EXIT_OK;

    snprintf(lim, sizeof(lim), "%ld", c->o.limit >= 0 ? c->o.limit : 50);
    params[0] = id;
    params[1] = lim;
    res = PQexecParams(ks_db_conn(c->db), SQL_AUDIT_LIST, 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        fprintf(stderr, "kasir-dlq: could not read the audit: %s", PQresultErrorMessage(res));
        PQclear(res);
        return DLQ_EXIT_FAIL;
    }
    if (!c->o.json)
        printf("%-41s %-12s %-20s %-24s %-11s %8s %8s %6s  %s\n", "ID", "ACTION", "ACTOR",
               "STARTED", "STATUS", "SELECTED", "DONE", "FAILED", "FILTERS");
    for (int r = 0; r < PQntuples(res); r++) {
        if (c->o.json) {
            json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s?, s:s, s:o, s:s?, s:s?, s:I, s:I, s:I}",
                                  "id", val(res, r, 0), "action", val(res, r, 1), "actor",
                                  val(res, r, 2), "started_at", val(res, r, 3), "finished_at",
                                  val(res, r, 4), "status", val(res, r, 5), "filters",
                                  json_loads(val(res, r, 6), 0, NULL), "target", val(res, r, 7),
                                  "note", val(res, r, 8), "selected",
                                  (json_int_t)strtoll(val(res, r, 9), NULL, 10), "done",
                                  (json_int_t)strtoll(val(res, r, 10), NULL, 10), "failed",
                                  (json_int_t)strtoll(val(res, r, 11), NULL, 10));
            dlq_json_line(j);
        } else {
            /* the actor and the filters are operators' text, the filters often copied from
             * a message (a key, a header): escaped for the terminal as a message's bytes are */
            char actor[21];
            printf("%-41s %-12s %-20s %-24s %-11s %8s %8s %6s  ", val(res, r, 0), val(res, r, 1),
                   dlq_tty_str(val(res, r, 2), actor, sizeof(actor)), val(res, r, 3),
                   val(res, r, 5), val(res, r, 9), val(res, r, 10), val(res, r, 11));
            dlq_tty_put(val(res, r, 6), strlen(val(res, r, 6)));
            if (val(res, r, 7)) {
                fputs(" -> ", stdout);
                dlq_tty_put(val(res, r, 7), strlen(val(res, r, 7)));
            }
            putchar('\n');
        }
    }
    PQclear(res);
    return rc;
}

/* ---- kasir-dlq parked [retry] ------------------------------------------------------------ */

struct parked_params {
    struct ks_pgarr topics, ids;
    const char *p[3];
};

static int parked_params(struct dlq_ctx *c, struct parked_params *pp)
{
    ks_pgarr_init(&pp->topics);
    ks_pgarr_init(&pp->ids);
    pp->p[0] = c->o.worker;
    pp->p[1] = pp->p[2] = NULL;
    if (c->o.norigins) {
        text_array(&pp->topics, c->o.origins, c->o.norigins);
        if (!(pp->p[1] = ks_pgarr_str(&pp->topics)))
            return -1;
    }
    if (c->o.nids) {
        for (size_t i = 0; i < c->o.nids; i++)
            ks_pgarr_int(&pp->ids, c->o.ids[i]);
        if (!(pp->p[2] = ks_pgarr_str(&pp->ids)))
            return -1;
    }
    return 0;
}

static void parked_release(struct parked_params *pp)
{
    ks_pgarr_release(&pp->topics);
    ks_pgarr_release(&pp->ids);
}

static json_t *bytea_json(PGresult *res, int r, int col, int decode_avro)
{
    size_t len = 0;
    unsigned char *b;
    json_t *j = NULL;

    if (PQgetisnull(res, r, col))
        return json_null();
    if (!(b = PQunescapeBytea((const unsigned char *)PQgetvalue(res, r, col), &len)))
        return json_null();
    if (decode_avro) {
        struct ks_err err = {0};
        if (ks_serde_decode(b, len, NULL, &j, &err) != KS_OK)
            j = NULL;
    }
    if (!j)
        j = json_stringn((const char *)b, len);
    PQfreemem(b);
    return j ? j : json_string("(binary)");
}

static json_t *headers_json(PGresult *res, int r, int col)
{
    size_t len = 0;
    unsigned char *b;
    rd_kafka_headers_t *h;
    json_t *j = json_object();
    const char *name;
    const void *v;
    size_t vlen;

    if (PQgetisnull(res, r, col) ||
        !(b = PQunescapeBytea((const unsigned char *)PQgetvalue(res, r, col), &len)))
        return j;
    if ((h = ks_outbox_headers_decode(b, len))) {
        for (size_t i = 0; rd_kafka_header_get_all(h, i, &name, &v, &vlen) == 0; i++) {
            json_t *s = v ? json_stringn(v, vlen) : json_null();
            json_object_set_new(j, name, s ? s : json_string("(binary)"));
        }
        rd_kafka_headers_destroy(h);
    }
    PQfreemem(b);
    return j;
}

int dlq_cmd_parked(struct dlq_ctx *c)
{
    struct parked_params pp;
    const char *params[5];
    char lim[24], all[8];
    PGresult *res = NULL;
    int rc = DLQ_EXIT_OK;

    if (parked_params(c, &pp) != 0) {
        fprintf(stderr, "kasir-dlq: out of memory\n");
        rc = DLQ_EXIT_FAIL;
        goto out;
    }
    snprintf(lim, sizeof(lim), "%ld", c->o.limit >= 0 ? c->o.limit : 1000);
    snprintf(all, sizeof(all), "%s", c->o.all ? "true" : "false");
    params[0] = pp.p[0];
    params[1] = pp.p[1];
    params[2] = pp.p[2];
    params[3] = all;
    params[4] = lim;
    res = PQexecParams(ks_db_conn(c->db), SQL_PARKED_LIST, 5, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        fprintf(stderr, "kasir-dlq: could not read parked outbox rows: %s",
                PQresultErrorMessage(res));
        rc = DLQ_EXIT_FAIL;
        goto out;
    }
    if (!c->o.json)
        printf("%-10s %-24s %-34s %-44s %4s %-24s %s\n", "ID", "WORKER", "TOPIC", "MESSAGE_ID",
               "ATT", "PARKED", "LAST ERROR");
    for (int r = 0; r < PQntuples(res); r++) {
        if (c->o.json) {
            json_t *j = json_pack("{s:I, s:s, s:s, s:s, s:o, s:o, s:o, s:s, s:I, s:s, s:s, s:s?, "
                                  "s:s?}",
                                  "id", (json_int_t)strtoll(val(res, r, 0), NULL, 10), "worker",
                                  val(res, r, 1), "message_id", val(res, r, 2), "topic",
                                  val(res, r, 3), "key", bytea_json(res, r, 4, 0), "value",
                                  bytea_json(res, r, 5, 1), "headers", headers_json(res, r, 6),
                                  "created_at", val(res, r, 7), "attempts",
                                  (json_int_t)strtoll(val(res, r, 8), NULL, 10), "last_error",
                                  val(res, r, 9), "parked_at", val(res, r, 10), "retried_at",
                                  val(res, r, 11), "retried_by", val(res, r, 12));
            dlq_json_line(j);
        } else {
            printf("%-10s %-24.24s %-34.34s %-44.44s %4s %-24s %.60s%s\n", val(res, r, 0),
                   val(res, r, 1), val(res, r, 3), val(res, r, 2), val(res, r, 8),
                   val(res, r, 10), val(res, r, 9), val(res, r, 11) ? " (retried)" : "");
        }
    }
out:
    PQclear(res);
    parked_release(&pp);
    return rc;
}

int dlq_cmd_parked_retry(struct dlq_ctx *c)
{
    struct parked_params pp;
    const char *params[7];
    char id[KS_ID_LEN], *filters = NULL;
    struct ks_err err = {0};
    PGresult *res = NULL;
    json_t *f = NULL;
    int rc = DLQ_EXIT_OK;

    if (c->o.dry_run) { /* what would go: the rows still parked */
        c->o.all = 0;
        return dlq_cmd_parked(c);
    }
    if (parked_params(c, &pp) != 0 || ks_id_new("prk", id, &err) != KS_OK ||
        !(f = json_object())) {
        fprintf(stderr, "kasir-dlq: out of memory\n");
        rc = DLQ_EXIT_FAIL;
        goto out;
    }
    if (c->o.worker)
        json_object_set_new(f, "worker", json_string(c->o.worker));
    if (pp.p[1])
        json_object_set_new(f, "topic", json_string(pp.p[1]));
    if (pp.p[2])
        json_object_set_new(f, "id", json_string(pp.p[2]));
    if (c->o.all)
        json_object_set_new(f, "all", json_true());
    filters = json_dumps(f, JSON_COMPACT | JSON_SORT_KEYS);
    params[0] = pp.p[0];
    params[1] = pp.p[1];
    params[2] = pp.p[2];
    params[3] = c->actor;
    params[4] = id;
    params[5] = filters ? filters : "{}";
    params[6] = c->o.note;
    res = PQexecParams(ks_db_conn(c->db), SQL_PARKED_RETRY, 7, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        fprintf(stderr, "kasir-dlq: could not retry parked outbox rows: %s",
                PQresultErrorMessage(res));
        rc = DLQ_EXIT_FAIL;
        goto out;
    }
    if (c->o.json)
        dlq_json_line(json_pack("{s:s, s:s, s:I}", "id", id, "action", "parked-retry", "retried",
                                (json_int_t)strtoll(PQgetvalue(res, 0, 0), NULL, 10)));
    else
        printf("parked-retry %s: %s rows moved back to kasir_outbox (their workers' relays send "
               "them at the next sweep)\n",
               id, PQgetvalue(res, 0, 0));
out:
    PQclear(res);
    free(filters);
    json_decref(f);
    parked_release(&pp);
    return rc;
}
