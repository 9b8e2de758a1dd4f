/* kasir-demo - the example worker: how a Kasir worker is written on lib/worker.h.
 *
 * Reads kasir.demo.DemoEvent from kasir.demo.in (and its retry topics), applies each event
 * once to demo_applied (event_id is the idempotency key) and to a running balance per
 * account in demo_accounts, and emits kasir.demo.DemoApplied to kasir.demo.out. One SQL
 * statement per batch does all of it. Everything else (offsets, outbox, retries, DLQ,
 * metrics, shutdown) is the runtime's.
 *
 * Test hooks, by the event's note: "fail-once" fails transiently on its first attempt
 * (retry topic, then applied); "fail-always" fails transiently every time (DLQ after
 * worker.retry.max_attempts); "fail-once-late" fails transiently on its first attempt
 * after its SQL ran (its effects must be rolled back); "fatal-producer" makes the outbox
 * producer fatal (once per process); "stall" sleeps demo.stall before any SQL (a batch
 * held open, for zombie tests); "journal" commits a demo_seen row through
 * ks_batch_journal first, as the executor journals an attempt before calling a PSP; hooks
 * combine with '+'. Env KASIR_DEMO_DEDUP=true turns on the runtime's
 * message-id dedup (spec.dedup), which the demo does not need (event_id is its key): test
 * 107; KASIR_DEMO_PER_MESSAGE=true handles one message at a time (spec.handle_msg). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/clock.h"
#include "lib/db.h"
#include "lib/log.h"
#include "lib/money.h"
#include "lib/pgarr.h"
#include "lib/worker.h"
#include "lib/banned.h"

/* One statement per batch, every step set-based:
 *   u:     the batch as rows (binary arrays in, no text parsing), in arrival order;
 *   fresh: the first occurrence of each event not applied before (the idempotency key),
 *          one index probe per event: OFFSET 0 keeps the NOT EXISTS a per-row subplan, which
 *          the planner cannot turn into a hash anti-join that reads the whole table for every
 *          batch (it did, whenever the table had grown since its last ANALYZE: half of
 *          PostgreSQL's CPU in a drain, docs/BENCHMARKS.md);
 *   acc:   one upsert per account with the batch's sum and count, returning the new count;
 *   ins:   the events, numbered per account from that count back (an account lives in
 *          one partition, so one owner numbers its events);
 * and the applied events come back (by position in the arrays) for the outputs. The insert has no ON CONFLICT: fresh
 * already left out what was applied, and only a zombie owner racing on the same events
 * could collide - its unique violation rolls the batch back, and the fence would have. */
static const char SQL_APPLY[] =
    "WITH u AS ("
    "  SELECT event_id COLLATE \"C\" AS event_id, message_id, account COLLATE \"C\" AS account,"
    "         amount_minor, currency, seq, src_topic, src_partition, src_offset, ord"
    "  FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::bigint[],"
    "              $7::text[], $8::int[], $9::bigint[]) WITH ORDINALITY"
    "    AS u(event_id, message_id, account, amount_minor, currency, seq, src_topic,"
    "         src_partition, src_offset, ord)),"
    " fresh AS ("
    "  SELECT DISTINCT ON (u.event_id) u.* FROM u"
    "  WHERE NOT EXISTS (SELECT 1 FROM demo_applied d WHERE d.event_id = u.event_id OFFSET 0)"
    "  ORDER BY u.event_id, u.ord),"
    " acc AS ("
    "  INSERT INTO demo_accounts AS a (account, currency, balance_minor, applied)"
    "  SELECT account, currency, sum(amount_minor), count(*) FROM fresh GROUP BY 1, 2"
    "  ON CONFLICT (account, currency) DO UPDATE"
    "  SET balance_minor = a.balance_minor + excluded.balance_minor,"
    "      applied = a.applied + excluded.applied"
    "  RETURNING account, currency, applied),"
    " ins AS ("
    "  INSERT INTO demo_applied (event_id, message_id, account, amount_minor, currency, seq,"
    "                            applied_seq, src_topic, src_partition, src_offset)"
    "  SELECT f.event_id, f.message_id, f.account, f.amount_minor, f.currency, f.seq,"
    "         a.applied - count(*) OVER w + row_number() OVER (w ORDER BY f.ord),"
    "         f.src_topic, f.src_partition, f.src_offset"
    "  FROM fresh f JOIN acc a ON a.account = f.account AND a.currency = f.currency"
    "  WINDOW w AS (PARTITION BY f.account, f.currency)"
    "  RETURNING event_id, applied_seq)"
    /* ord: the row's position in the arrays, so the caller needs no lookup by event_id */
    " SELECT f.ord, i.applied_seq FROM ins i JOIN fresh f ON f.event_id = i.event_id";

static const char SQL_AUDIT[] =
    "INSERT INTO demo_seen (event_id, src_topic, src_partition, src_offset) "
    "SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::bigint[])";

static const char *str_field(const json_t *v, const char *name)
{
    const char *s = json_string_value(json_object_get(v, name));
    return s ? s : "";
}

static enum ks_code validate(const struct ks_msg *m, void *ctx, struct ks_err *err)
{
    json_t *v = m->value;
    json_int_t amount = json_integer_value(json_object_get(v, "amount_minor"));
    const char *cur = str_field(v, "currency");

    (void)ctx;
    if (strcmp(m->schema, "kasir.demo.DemoEvent") != 0)
        return ks_err_set(err, KS_EINVAL, 0, NULL, "unexpected schema %s", m->schema);
    if (!*str_field(v, "event_id"))
        return ks_err_set(err, KS_EINVAL, 0, "event_id", "event_id is empty");
    if (amount <= 0)
        return ks_err_set(err, KS_EINVAL, 0, "amount_minor",
                          "amount_minor must be greater than zero");
    if (ks_money_exponent(cur) < 0)
        return ks_err_set(err, KS_EINVAL, 0, "currency", "unknown currency %.8s", cur);
    return KS_OK;
}

/* the statement's nine array parameters, in binary form (no quoting, no parsing of text);
 * kept across batches to reuse their memory, like the rest of struct demo */
static const unsigned col_oid[9] = {KS_OID_TEXT, KS_OID_TEXT, KS_OID_TEXT, KS_OID_INT8,
                                    KS_OID_TEXT, KS_OID_INT8, KS_OID_TEXT, KS_OID_INT4,
                                    KS_OID_INT8};
/* what the outputs need of an input, looked up once */
struct row {
    struct ks_msg *m;
    const char *event_id, *account, *currency;
    json_int_t amount;
    json_int_t applied_seq; /* 0: not applied now (a duplicate, or applied before) */
};
struct demo {
    struct ks_pgarr_bin a[9];
    struct ks_msg **list; /* the messages of one call */
    size_t list_cap;
    int fatal_done;
    struct row *rows;
    size_t cap;
    json_t *out; /* one DemoApplied value, refilled for each output (emit copies it) */
    json_t *o_id, *o_at, *o_ev, *o_acct, *o_amt, *o_cur, *o_seq; /* its fields */
};

static void add_text(struct ks_pgarr_bin *a, const char *s)
{
    ks_pgarr_bin_bytes(a, s, strlen(s));
}

/* note is one hook or several joined by '+' ("stall+journal") */
static int has_note(const struct ks_msg *m, const char *hook)
{
    const char *s = json_string_value(json_object_get(m->value, "note"));
    size_t hl = strlen(hook);

    while (s && *s) {
        size_t len = strcspn(s, "+");
        if (len == hl && strncmp(s, hook, hl) == 0)
            return 1;
        s += len + (s[len] == '+');
    }
    return 0;
}

/* "journal": a record committed before the (pretend) external call, fenced by ownership */
static const char SQL_JOURNAL[] =
    "INSERT INTO demo_seen (event_id, src_topic, src_partition, src_offset) "
    "VALUES ($1, 'journal', $2::int, $3::bigint)";

static enum ks_code journal(struct ks_batch *b, struct ks_msg *m, struct ks_err *err)
{
    char part[16], off[24];
    const char *params[3] = {str_field(m->value, "event_id"), part, off};
    static struct ks_pg_stmt q = KS_PG_STMT("demo_journal", SQL_JOURNAL, 3);
    const struct ks_msg *one[1] = {m};
    enum ks_code rc;

    snprintf(part, sizeof(part), "%d", (int)m->partition);
    snprintf(off, sizeof(off), "%" PRId64, m->offset);
    rc = ks_batch_journal(b, one, 1, &q, params, err);
    if (rc == KS_ECONFLICT)
        ks_log(KS_LOG_WARN, "demo.journal.fenced", err->msg, "event_id", params[0], NULL);
    return rc;
}

/* Applies msgs[0..n-1]: the batch, or one message (per-message mode). */
static enum ks_code apply_list(struct ks_batch *b, struct ks_msg *const *msgs, size_t n,
                               PGconn *pg, struct demo *d, struct ks_err *err)
{
    const char *out_topic = ks_config_str(ks_worker_config(ks_batch_worker(b)),
                                          "demo.output_topic");
    const char *params[9];
    int lens[9], fmts[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    PGresult *res = NULL;
    enum ks_code rc = KS_OK;
    size_t live = 0;
    int late = 0;

    if (n > d->cap) {
        struct row *nr = realloc(d->rows, n * sizeof(*nr));
        if (!nr)
            return ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
        d->rows = nr;
        d->cap = n;
    }
    for (int k = 0; k < 9; k++)
        ks_pgarr_bin_reset(&d->a[k]);
    for (size_t i = 0; i < n; i++) {
        struct ks_msg *m = msgs[i];
        const char *note = json_string_value(json_object_get(m->value, "note"));
        struct row *r = &d->rows[live];
        struct ks_err fail = {0};

        if (note && ((strcmp(note, "fail-once") == 0 && m->attempt == 1) ||
                     strcmp(note, "fail-always") == 0)) {
            ks_err_set(&fail, KS_ETIMEOUT, 1, NULL, "injected transient failure (%s)", note);
            ks_batch_fail(b, m, &fail);
            continue;
        }
        if (has_note(m, "stall")) {
            int64_t ms = ks_config_ms(ks_worker_config(ks_batch_worker(b)), "demo.stall");
            ks_log(KS_LOG_INFO, "demo.stall", "holding the batch open", "event_id",
                   str_field(m->value, "event_id"), NULL);
            if (ms > 0)
                usleep((useconds_t)(ms * 1000));
        }
        if (has_note(m, "fatal-producer") && !d->fatal_done) {
            d->fatal_done = 1;
            ks_worker_test_fatal(ks_batch_worker(b));
        }
        late |= has_note(m, "fail-once-late") && m->attempt == 1;
        if (has_note(m, "journal") && (rc = journal(b, m, err)) != KS_OK)
            return rc;
        r->m = m;
        r->event_id = str_field(m->value, "event_id");
        r->account = str_field(m->value, "account");
        r->currency = str_field(m->value, "currency");
        r->amount = json_integer_value(json_object_get(m->value, "amount_minor"));
        r->applied_seq = 0;
        add_text(&d->a[0], r->event_id);
        add_text(&d->a[1], m->message_id);
        add_text(&d->a[2], r->account);
        ks_pgarr_bin_int8(&d->a[3], r->amount);
        add_text(&d->a[4], r->currency);
        ks_pgarr_bin_int8(&d->a[5], json_integer_value(json_object_get(m->value, "seq")));
        add_text(&d->a[6], m->topic);
        ks_pgarr_bin_int4(&d->a[7], m->partition);
        ks_pgarr_bin_int8(&d->a[8], m->offset);
        live++;
    }
    if (live == 0)
        return KS_OK;
    for (int k = 0; k < 9; k++)
        if (!(params[k] = ks_pgarr_bin_data(&d->a[k], &lens[k])))
            return ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
    if (ks_config_bool(ks_worker_config(ks_batch_worker(b)), "demo.audit")) {
        const char *ap[4] = {params[0], params[6], params[7], params[8]};
        int al[4] = {lens[0], lens[6], lens[7], lens[8]};
        res = PQexecParams(pg, SQL_AUDIT, 4, NULL, ap, al, fmts, 0);
        if ((rc = ks_pg_check(pg, res, PGRES_COMMAND_OK, "audit demo events", err)) != KS_OK)
            goto out;
        PQclear(res);
    }
    res = PQexecParams(pg, SQL_APPLY, 9, NULL, params, lens, fmts, 0);
    if ((rc = ks_pg_check(pg, res, PGRES_TUPLES_OK, "apply demo events", err)) != KS_OK)
        goto out;
    if (late) {
        /* after the SQL: the runtime must take these effects back */
        rc = ks_err_set(err, KS_ETIMEOUT, 1, NULL, "injected transient failure after SQL");
        goto out;
    }
    /* outputs only for events applied now: a replayed event was announced already */
    for (int k = 0; k < PQntuples(res); k++) {
        long ord = strtol(PQgetvalue(res, k, 0), NULL, 10);
        if (ord >= 1 && (size_t)ord <= live)
            d->rows[ord - 1].applied_seq = strtoll(PQgetvalue(res, k, 1), NULL, 10);
    }
    if (!d->out && !(d->out = json_pack("{s:s, s:I, s:s, s:s, s:I, s:s, s:I}", "message_id", "",
                                        "occurred_at", (json_int_t)0, "event_id", "",
                                        "account", "", "amount_minor", (json_int_t)0,
                                        "currency", "", "applied_seq", (json_int_t)0))) {
        rc = ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
        goto out;
    }
    d->o_id = json_object_get(d->out, "message_id");
    d->o_at = json_object_get(d->out, "occurred_at");
    d->o_ev = json_object_get(d->out, "event_id");
    d->o_acct = json_object_get(d->out, "account");
    d->o_amt = json_object_get(d->out, "amount_minor");
    d->o_cur = json_object_get(d->out, "currency");
    d->o_seq = json_object_get(d->out, "applied_seq");
    json_integer_set(d->o_at, (json_int_t)ks_clock_wall_us());
    for (size_t i = 0; i < live; i++) {
        struct row *r = &d->rows[i];
        char id[KS_ID_LEN];

        if (!r->applied_seq)
            continue; /* a duplicate in this batch, or applied before */
        ks_batch_next_id(b, r->m, out_topic, id);
        if (json_string_set(d->o_id, id) || json_string_set(d->o_ev, r->event_id) ||
            json_string_set(d->o_acct, r->account) || json_string_set(d->o_cur, r->currency)) {
            rc = ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
            goto out;
        }
        json_integer_set(d->o_amt, r->amount);
        json_integer_set(d->o_seq, r->applied_seq);
        rc = ks_batch_emit(b, r->m, out_topic, r->account, strlen(r->account),
                           "kasir.demo.DemoApplied", d->out, err);
        if (rc != KS_OK)
            goto out;
    }
out:
    PQclear(res);
    return rc;
}

static enum ks_code apply_batch(struct ks_batch *b, PGconn *pg, void *ctx, struct ks_err *err)
{
    struct demo *d = ctx;
    size_t n = ks_batch_count(b);

    if (n > d->list_cap) {
        struct ks_msg **nl = realloc(d->list, n * sizeof(*nl));
        if (!nl)
            return ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
        d->list = nl;
        d->list_cap = n;
    }
    for (size_t i = 0; i < n; i++)
        d->list[i] = ks_batch_msg(b, i);
    return apply_list(b, d->list, n, pg, d, err);
}

static enum ks_code apply_one(struct ks_batch *b, struct ks_msg *m, PGconn *pg, void *ctx,
                              struct ks_err *err)
{
    return apply_list(b, &m, 1, pg, ctx, err);
}

int main(int argc, char **argv)
{
    static const struct ks_config_def defs[] = {
        {"demo.output_topic", KS_CFG_STRING, "kasir.demo.out", 0,
         "topic the DemoApplied messages go to"},
        {"demo.audit", KS_CFG_BOOL, "false", 0,
         "record every processing of a message in demo_seen (tests of exactly-once)"},
        {"demo.stall", KS_CFG_DURATION_MS, "0", 0,
         "how long an event with note \"stall\" holds its batch open (zombie tests)"},
    };
    static struct demo d;
    const char *dedup = getenv("KASIR_DEMO_DEDUP");
    const char *per_msg = getenv("KASIR_DEMO_PER_MESSAGE");
    int one = per_msg && strcmp(per_msg, "true") == 0;
    const struct ks_worker_spec spec = {
        .name = "demo",
        .group = "kasir-demo",
        .topics = "kasir.demo.in",
        .http_port = "8190",
        .validate = validate,
        .handle_batch = one ? NULL : apply_batch,
        .handle_msg = one ? apply_one : NULL,
        .dedup = dedup && strcmp(dedup, "true") == 0,
        .ctx = &d,
    };
    int rc;

    for (int k = 0; k < 9; k++)
        ks_pgarr_bin_init(&d.a[k], col_oid[k]);
    rc = ks_worker_main(&spec, defs, sizeof(defs) / sizeof(defs[0]), argc, argv);
    for (int k = 0; k < 9; k++)
        ks_pgarr_bin_release(&d.a[k]);
    free(d.rows);
    free(d.list);
    json_decref(d.out);
    return rc;
}
