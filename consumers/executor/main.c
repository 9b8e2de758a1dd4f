/* kasir-executor - runs approved charges, refunds and payouts at PSPs, never twice.
 *
 * Inputs: kasir.psp.commands (+ its retry topics), PspCommand from kasir-risk; and
 * kasir.refunds.requested, RefundRequested from the ingress. Outputs: kasir.psp.outcomes
 * (PspOutcome, through the outbox), and REFUND commands on kasir.psp.commands.
 *
 * A batch of commands, step by step:
 *   1. look up, in one statement, each command's latest attempt in executor_attempts and
 *      the status of its order, refund or payout;
 *   2. decide per command: resolved already (skip), an attempt whose outcome is unknown
 *      (ask the PSP first: the adapter's status sequence), or a new attempt (pick the PSP:
 *      the command's, or its failover secondary when the circuit is open);
 *   3. journal the new attempts through ks_batch_journal, one statement for the batch,
 *      committed before any of their requests leaves, fenced against a zombie owner of
 *      any input partition it journals for;
 *      the same statement moves the order (payment, payout, refund) to EXECUTING;
 *   4. send every call of the batch at once (exec.c, libcurl multi);
 *   5. record the verdicts and emit the outcomes in the batch's transaction: a verdict
 *      that is known ends the attempt (resolved), "the PSP did not act" frees the command
 *      for a new attempt (absent), an unknown one stays "sent" and is asked about again.
 *      Unknown and not-acted commands go to the retry topics (backoff and jitter by the
 *      runtime, DLQ when exhausted).
 * The executor never sets SUCCESS, FAILED or PENDING_CUSTOMER on an order: the ledger does
 * it from the outcome (docs/LEDGER.md), as it does for a webhook's.
 *
 * A refund request is checked against what the order captured minus what was already
 * committed to refunds (executor_refunds) and becomes a REFUND command, with the PSP and
 * the charge's reference from the journal, on kasir.psp.commands: one retry path serves
 * charges and refunds. A refund beyond that is refused with a REFUND FAILED outcome. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>

#include "consumers/executor/adapter.h"
#include "consumers/executor/breaker.h"
#include "consumers/executor/exec.h"
#include "lib/clock.h"
#include "lib/db.h"
#include "lib/log.h"
#include "lib/money.h"
#include "lib/outcome.h"
#include "lib/pgarr.h"
#include "lib/worker.h"
#include "lib/banned.h"

#define EXEC_GROUP "kasir-executor"
#define EXEC_TOPICS "kasir.psp.commands,kasir.refunds.requested"
#define EXEC_PORT "8105"
#define SCHEMA_COMMAND "kasir.psp.PspCommand"
#define SCHEMA_REFUND "kasir.refunds.RefundRequested"
#define SCHEMA_OUTCOME "kasir.psp.PspOutcome"
#define MAX_DETAILS 16
#define MAX_FAILOVER 16

/* --- SQL ------------------------------------------------------------------------------ */

/* Each command's latest attempt, and the status of what it acts on (NULL: no such row),
 * with whether the command's amount, currency and partner are that row's ($4..$6), and
 * whether another command acted on the same object already. */
static const char SQL_LOOKUP[] =
    "SELECT u.ord, a.attempt, a.state, a.psp, a.psp_reference, s.status,"
    "       s.amount_minor = u.amount AND s.currency = u.currency AND s.partner_id = u.partner,"
    "       EXISTS (SELECT 1 FROM executor_attempts x WHERE x.kind = u.kind AND x.object_id = u.oid"
    "                  AND x.command_id <> u.cid COLLATE \"C\")"
    "  FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[])"
    "       WITH ORDINALITY AS u(cid, kind, oid, amount, currency, partner, ord)"
    "  LEFT JOIN LATERAL (SELECT attempt, state, psp, psp_reference FROM executor_attempts e"
    "                      WHERE e.command_id = u.cid COLLATE \"C\""
    "                      ORDER BY attempt DESC LIMIT 1) a ON true"
    "  LEFT JOIN LATERAL (SELECT status, amount_minor, currency, partner_id FROM payment_orders o"
    "                      WHERE u.kind = 'CHARGE' AND o.order_id = u.oid"
    "                    UNION ALL"
    "                    SELECT status, amount_minor, currency, partner_id FROM refunds r"
    "                      WHERE u.kind = 'REFUND' AND r.refund_id = u.oid"
    "                    UNION ALL"
    "                    SELECT status, amount_minor, currency, partner_id FROM payouts p"
    "                      WHERE u.kind = 'PAYOUT' AND p.payout_id = u.oid) s ON true";

/* The journal: the attempts, and the objects they act on moved to EXECUTING, in one commit
 * (ks_batch_journal). An attempt that is there already was journaled by another instance
 * (the same command on a main and a retry topic, read by two instances, each finding no
 * attempt): its PSP may not be ours, so sending it could charge twice. The statement then
 * fails (executor_journal_conflict, retriable), nothing of the batch is sent, and the
 * re-run finds that attempt and asks its PSP first. */
static const char SQL_JOURNAL[] =
    "WITH u AS (SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[],"
    "                                 $6::text[], $7::text[], $8::text[], $9::bigint[], $10::text[])"
    "             AS u(cid, attempt, kind, oid, order_id, psp, method, idem, amount, currency)),"
    " ins AS (INSERT INTO executor_attempts (command_id, attempt, kind, object_id, order_id, psp,"
    "                                        method, idem_key, amount_minor, currency)"
    "         SELECT cid, attempt, kind, oid, nullif(order_id, ''), psp, method, idem, amount,"
    "                currency FROM u ORDER BY cid, attempt ON CONFLICT DO NOTHING"
    "         RETURNING command_id, attempt),"
    " ord AS (UPDATE payment_orders o SET status = 'EXECUTING', updated_at = now() FROM u"
    "          WHERE u.kind = 'CHARGE' AND o.order_id = u.oid AND o.status = 'NOT_STARTED'"
    "          RETURNING o.payment_id),"
    " pay AS (UPDATE payments p SET status = 'EXECUTING', updated_at = now()"
    "          WHERE p.payment_id IN (SELECT payment_id FROM ord)"
    "            AND p.status = 'NOT_STARTED'),"
    " pout AS (UPDATE payouts x SET status = 'EXECUTING', updated_at = now() FROM u"
    "           WHERE u.kind = 'PAYOUT' AND x.payout_id = u.oid AND x.status = 'REQUESTED'),"
    " ref AS (UPDATE refunds r SET status = 'EXECUTING', updated_at = now() FROM u"
    "          WHERE u.kind = 'REFUND' AND r.refund_id = u.oid"
    "            AND r.status IN ('PENDING_PUBLISH', 'REQUESTED'))"
    " SELECT executor_journal_conflict(u.cid, u.attempt) FROM u"
    "  WHERE NOT EXISTS (SELECT 1 FROM ins WHERE ins.command_id = u.cid COLLATE \"C\""
    "                                          AND ins.attempt = u.attempt)";

/* The verdicts, in the batch's transaction (with the outcomes in the outbox). Only a row
 * still 'sent' moves: the journal is the one record of what is known. */
static const char SQL_RESOLVE[] =
    "WITH u AS (SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[],"
    "                                 $6::text[], $7::text[])"
    "             AS u(cid, attempt, state, verdict, ref, code, msg)),"
    " upd AS (UPDATE executor_attempts e SET state = u.state, verdict = nullif(u.verdict, ''),"
    "                psp_reference = coalesce(nullif(u.ref, ''), e.psp_reference),"
    "                failure_code = nullif(u.code, ''), failure_message = nullif(u.msg, ''),"
    "                resolved_at = CASE WHEN u.state = 'sent' THEN NULL ELSE now() END"
    "           FROM u WHERE e.command_id = u.cid AND e.attempt = u.attempt"
    "            AND e.state = 'sent')"
    " UPDATE executor_refunds f SET failed = true"
    "   WHERE f.refund_id = ANY($8::text[]) AND NOT f.failed";

/* A refund request: accepted as a command (a row in executor_refunds) when the order is
 * captured, belongs to the partner, has the currency, and what it captured covers this
 * refund on top of those accepted before that did not fail (what they refunded, once
 * known; a refund FAILED since, by the ledger, counts for nothing). Answers one row:
 * inserted now, accepted before, and what a refusal names. The capture is found by
 * object_id (a charge's is its order id: executor_attempts_object), so that no index
 * reads an attempt's state and its verdict stays a HOT update (migration 955). */
static const char SQL_REFUND[] =
    "WITH o AS (SELECT order_id, partner_id, currency, captured_minor, status, method"
    "             FROM payment_orders WHERE order_id = $2),"
    " cap AS (SELECT psp, psp_reference FROM executor_attempts"
    "          WHERE object_id = $2 AND kind = 'CHARGE' AND state = 'resolved'"
    "            AND verdict IN ('SUCCEEDED', 'PENDING_CUSTOMER') AND psp_reference IS NOT NULL"
    "          ORDER BY attempt DESC LIMIT 1),"
    /* a refund that succeeded counts for what the PSP refunded (refunds.refunded_minor,
     * less than asked for a partial one, whose rest the ingress may reserve again); one
     * that failed after all (a pending answer, then a failure by webhook; a refusal before
     * the PSP), for nothing, as its reservation was given back; one not final yet, or
     * final before that column, for what it asked */
    " done AS (SELECT coalesce(sum(CASE WHEN r.status = 'FAILED' THEN 0"
    "                          ELSE coalesce(r.refunded_minor, f.amount_minor) END), 0) AS s"
    "           FROM executor_refunds f LEFT JOIN refunds r ON r.refund_id = f.refund_id"
    "           WHERE f.order_id = $2 AND NOT f.failed AND f.refund_id <> $1),"
    " ins AS (INSERT INTO executor_refunds (refund_id, order_id, amount_minor, psp, psp_reference)"
    "         SELECT $1, $2, $3::bigint, cap.psp, cap.psp_reference FROM o, cap, done"
    "          WHERE o.status = 'SUCCESS' AND o.partner_id = $5 AND o.currency = $4"
    "            AND done.s + $3::bigint <= o.captured_minor"
    "         ON CONFLICT (refund_id) DO NOTHING RETURNING psp, psp_reference)"
    " SELECT (SELECT count(*) FROM ins),"
    "        EXISTS (SELECT 1 FROM executor_refunds WHERE refund_id = $1),"
    "        (SELECT status FROM o), (SELECT partner_id FROM o), (SELECT currency FROM o),"
    "        (SELECT captured_minor FROM o), (SELECT s FROM done),"
    "        (SELECT psp FROM cap), (SELECT psp_reference FROM cap), (SELECT method FROM o),"
    "        (SELECT psp FROM ins), (SELECT psp_reference FROM ins),"
    "        coalesce((SELECT psp FROM cap), (SELECT psp FROM executor_attempts"
    "                  WHERE object_id = $2 AND kind = 'CHARGE' ORDER BY attempt DESC LIMIT 1),"
    "                 'none')";

/* Taken before SQL_REFUND, in a statement of its own so that SQL_REFUND's snapshot sees
 * every refund of the order accepted before: two instances checking two refunds of one
 * order (one from the main topic, one from a retry topic) would otherwise each miss the
 * other's uncommitted row and accept more than the capture. Held to the batch's commit;
 * only refund acceptances of the same order wait on it. */
static const char SQL_REFUND_LOCK[] =
    "SELECT pg_advisory_xact_lock(hashtextextended('kasir-executor-refund:' || $1, 0))";

/* --- settings --------------------------------------------------------------------------- */

static const struct ks_config_def exec_settings[] = {
    {"executor.outcomes_topic", KS_CFG_STRING, "kasir.psp.outcomes", 0,
     "topic the PspOutcome messages go to"},
    {"executor.commands_topic", KS_CFG_STRING, "kasir.psp.commands", 0,
     "topic the REFUND commands made from refund requests go to"},
    {"executor.max_in_flight", KS_CFG_INT, "400", 0,
     "PSP calls on the wire at once (libcurl multi); a batch's calls beyond it wait their turn"},
    {"executor.psp_timeout", KS_CFG_DURATION_MS, "10s", 0,
     "a PSP call's whole time; past it the outcome is unknown and asked about before a resend"},
    {"executor.connect_timeout", KS_CFG_DURATION_MS, "3s", 0, "connecting to a PSP"},
    {"executor.sandbox.url", KS_CFG_STRING, "http://127.0.0.1:8091", 0,
     "base URL of kasir-psp-sandbox's own API"},
    {"executor.sandbox.secret", KS_CFG_STRING, "", 0,
     "sandbox API key (Bearer); empty: sandbox commands are dead-lettered"},
    {"executor.stripe.url", KS_CFG_STRING, "https://api.stripe.com", 0, "Stripe API base URL"},
    {"executor.stripe.secret", KS_CFG_STRING, "", 0, "Stripe secret key (sk_...)"},
    {"executor.xendit.url", KS_CFG_STRING, "https://api.xendit.co", 0, "Xendit API base URL"},
    {"executor.xendit.secret", KS_CFG_STRING, "", 0, "Xendit secret key"},
    {"executor.midtrans.url", KS_CFG_STRING, "https://api.sandbox.midtrans.com", 0,
     "Midtrans Core API base URL"},
    {"executor.midtrans.secret", KS_CFG_STRING, "", 0, "Midtrans server key"},
    {"executor.midtrans.payout_url", KS_CFG_STRING, "https://app.sandbox.midtrans.com/iris", 0,
     "Midtrans Iris (payouts) base URL"},
    {"executor.midtrans.payout_secret", KS_CFG_STRING, "", 0, "Midtrans Iris creator key"},
    {"executor.notify_url", KS_CFG_STRING, "", 0,
     "where PSPs that take a per-request callback URL send webhooks; empty: their default"},
    {"executor.failover", KS_CFG_STRING, "", 0,
     "secondary PSPs for charges, METHOD:primary>secondary comma separated "
     "(CARD:sandbox>stripe); used only when the primary's circuit is open before sending"},
    {"executor.breaker.window", KS_CFG_INT, "50", 0, "calls a circuit's failure rate is taken over"},
    {"executor.breaker.min_calls", KS_CFG_INT, "20", 0, "calls in the window before it can open"},
    {"executor.breaker.failure_pct", KS_CFG_INT, "50", 0,
     "failed calls (5xx, timeouts, transport) in the window, percent, that open the circuit"},
    {"executor.breaker.open", KS_CFG_DURATION_MS, "5s", 0, "how long an open circuit sends nothing"},
    {"executor.breaker.probes", KS_CFG_INT, "3", 0,
     "calls let through half-open; all must succeed to close the circuit"},
};
static const size_t exec_settings_count = sizeof(exec_settings) / sizeof(exec_settings[0]);

/* --- state ------------------------------------------------------------------------------ */

enum { PSP_SANDBOX, PSP_STRIPE, PSP_XENDIT, PSP_MIDTRANS, PSP__N };
static const char *const PSP_NAMES[PSP__N] = {"sandbox", "stripe", "xendit", "midtrans"};

struct failover {
    char method[24];
    int from, to;
};

enum action { A_NONE, A_SKIP, A_SEND, A_STATUS };

struct ex_item {
    struct ks_msg *m;
    enum action action;
    int psp;       /* the PSP of this attempt */
    int attempt;
    struct ex_breaker *br;
    int probe;     /* ex_breaker_allow was asked (and said yes) */
    int other_command; /* another command of this batch acts on the same object */
    const char *kind;
    struct ex_kv details[MAX_DETAILS];
    struct ex_job job;
};

struct exe {
    int started;
    const char *outcomes_topic, *commands_topic;
    struct ex_conf conf[PSP__N];
    struct failover fo[MAX_FAILOVER];
    size_t nfo;
    struct ex_engine *engine;
    struct ex_breakers *breakers;
    struct ks_metrics *metrics;
    struct ex_item *items;
    size_t cap;
    struct ex_job **jobs;
    const struct ks_msg **msgs; /* the journaled jobs' inputs, beside jobs (ks_batch_journal) */
    struct ks_pgarr a[10];
    json_t *outcome, *command;
    struct ex_req scratch;
    /* the statements, prepared once per session of the worker's one connection */
    struct ks_pg_stmt q_refund_lock, q_refund, q_lookup, q_resolve, q_journal;
};

static const char *str_field(const json_t *v, const char *name)
{
    const char *s = json_string_value(json_object_get(v, name));
    return s ? s : "";
}

static int psp_index(const char *name)
{
    for (int i = 0; i < PSP__N; i++)
        if (strcmp(PSP_NAMES[i], name) == 0)
            return i;
    return -1;
}

static int is_method(const char *s)
{
    static const char *const m[] = {"CARD", "VIRTUAL_ACCOUNT", "QRIS", "EWALLET", "BANK_TRANSFER"};
    for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
        if (strcmp(m[i], s) == 0)
            return 1;
    return 0;
}

/* executor.failover "CARD:sandbox>stripe,..." into fo; 0, or -1 with why */
static int parse_failover(const char *s, struct failover *fo, size_t *n, char *why, size_t cap)
{
    char buf[512], *save = NULL, *tok;

    *n = 0;
    snprintf(buf, sizeof(buf), "%s", s ? s : "");
    for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(tok, ':'), *gt = colon ? strchr(colon, '>') : NULL;
        while (*tok == ' ')
            tok++;
        if (!colon || !gt) {
            snprintf(why, cap, "'%.40s' is not METHOD:primary>secondary", tok);
            return -1;
        }
        *colon = *gt = '\0';
        if (!is_method(tok)) {
            snprintf(why, cap, "unknown method %.30s", tok);
            return -1;
        }
        if (*n >= MAX_FAILOVER) {
            snprintf(why, cap, "at most %d failover rules", MAX_FAILOVER);
            return -1;
        }
        fo[*n].from = psp_index(colon + 1);
        fo[*n].to = psp_index(gt + 1);
        if (fo[*n].from < 0 || fo[*n].to < 0 || fo[*n].from == fo[*n].to) {
            snprintf(why, cap, "unknown or equal PSPs in %.30s:%.20s>%.20s", tok, colon + 1, gt + 1);
            return -1;
        }
        snprintf(fo[*n].method, sizeof(fo[*n].method), "%s", tok);
        (*n)++;
    }
    return 0;
}

/* --- validation --------------------------------------------------------------------------- */

/* The fields of a command that reach a PSP as a header value, a URL or a merchant
 * reference: a line feed there would end the idempotency header and start one of the
 * command's choosing, so a control character makes the command invalid. */
static const char *const PSP_VISIBLE[] = {"command_id", "psp_idempotency_key", "order_id",
                                          "payment_id", "refund_id", "payout_id", "partner_id"};

static int has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

static enum ks_code validate(const struct ks_msg *m, void *ctx, struct ks_err *err)
{
    json_t *v = m->value;
    const char *cur = str_field(v, "currency");
    json_int_t amount = json_integer_value(json_object_get(v, "amount_minor"));

    (void)ctx;
    if (amount <= 0)
        return ks_err_set(err, KS_EINVAL, 0, "amount_minor", "amount_minor must be greater than zero");
    if (ks_money_exponent(cur) < 0)
        return ks_err_set(err, KS_EINVAL, 0, "currency", "unknown currency %.8s", cur);
    if (!*str_field(v, "partner_id"))
        return ks_err_set(err, KS_EINVAL, 0, "partner_id", "partner_id is empty");
    for (size_t i = 0; i < sizeof(PSP_VISIBLE) / sizeof(PSP_VISIBLE[0]); i++)
        if (has_control(str_field(v, PSP_VISIBLE[i])))
            return ks_err_set(err, KS_EINVAL, 0, PSP_VISIBLE[i], "%s holds a control character",
                              PSP_VISIBLE[i]);
    if (strcmp(m->schema, SCHEMA_REFUND) == 0) {
        if (!*str_field(v, "refund_id") || !*str_field(v, "order_id"))
            return ks_err_set(err, KS_EINVAL, 0, !*str_field(v, "refund_id") ? "refund_id" : "order_id",
                              "a refund request names its refund and order");
        return KS_OK;
    }
    if (strcmp(m->schema, SCHEMA_COMMAND) != 0)
        return ks_err_set(err, KS_EINVAL, 0, NULL, "unexpected schema %s", m->schema);
    if (!*str_field(v, "command_id"))
        return ks_err_set(err, KS_EINVAL, 0, "command_id", "command_id is empty");
    if (!*str_field(v, "psp_idempotency_key"))
        return ks_err_set(err, KS_EINVAL, 0, "psp_idempotency_key", "psp_idempotency_key is empty");
    if (psp_index(str_field(v, "psp")) < 0)
        return ks_err_set(err, KS_EINVAL, 0, "psp", "unknown PSP %.32s", str_field(v, "psp"));
    {
        const char *kind = str_field(v, "kind");
        const char *need = strcmp(kind, "CHARGE") == 0   ? "order_id"
                           : strcmp(kind, "REFUND") == 0 ? "refund_id"
                                                         : "payout_id";
        if (!*str_field(v, need))
            return ks_err_set(err, KS_EINVAL, 0, need, "a %s command needs %s", kind, need);
        if (strcmp(kind, "REFUND") == 0 && !*str_field(v, "order_id"))
            return ks_err_set(err, KS_EINVAL, 0, "order_id", "a REFUND command needs order_id");
    }
    return KS_OK;
}

/* --- start ------------------------------------------------------------------------------- */

static enum ks_code start(struct exe *x, struct ks_batch *b, struct ks_err *err)
{
    struct ks_worker *w = ks_batch_worker(b);
    const struct ks_config *cfg = ks_worker_config(w);
    char why[160];
    static const char *const keys[PSP__N][2] = {
        {"executor.sandbox.url", "executor.sandbox.secret"},
        {"executor.stripe.url", "executor.stripe.secret"},
        {"executor.xendit.url", "executor.xendit.secret"},
        {"executor.midtrans.url", "executor.midtrans.secret"},
    };

    if (x->started)
        return KS_OK;
    x->outcomes_topic = ks_config_str(cfg, "executor.outcomes_topic");
    x->commands_topic = ks_config_str(cfg, "executor.commands_topic");
    for (int i = 0; i < PSP__N; i++) {
        x->conf[i].base_url = ks_config_str(cfg, keys[i][0]);
        x->conf[i].secret = ks_config_str(cfg, keys[i][1]);
        x->conf[i].payout_base_url = "";
        x->conf[i].payout_secret = "";
        x->conf[i].notify_url = ks_config_str(cfg, "executor.notify_url");
    }
    x->conf[PSP_MIDTRANS].payout_base_url = ks_config_str(cfg, "executor.midtrans.payout_url");
    x->conf[PSP_MIDTRANS].payout_secret = ks_config_str(cfg, "executor.midtrans.payout_secret");
    if (parse_failover(ks_config_str(cfg, "executor.failover"), x->fo, &x->nfo, why,
                       sizeof(why)) != 0)
        return ks_err_set(err, KS_ECONFIG, 0, "executor.failover", "%s", why);
    {
        struct ex_engine_conf ec = {ks_config_int(cfg, "executor.max_in_flight"),
                                    ks_config_ms(cfg, "executor.psp_timeout"),
                                    ks_config_ms(cfg, "executor.connect_timeout")};
        struct ex_breaker_conf bc = {(int)ks_config_int(cfg, "executor.breaker.window"),
                                     (int)ks_config_int(cfg, "executor.breaker.min_calls"),
                                     (int)ks_config_int(cfg, "executor.breaker.failure_pct"),
                                     (int)ks_config_int(cfg, "executor.breaker.probes"),
                                     ks_config_ms(cfg, "executor.breaker.open")};
        x->metrics = ks_worker_metrics(w);
        if (!(x->engine = ex_engine_new(&ec)) || !(x->breakers = ex_breakers_new(&bc, x->metrics)))
            return ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
    }
    for (int k = 0; k < 10; k++)
        ks_pgarr_init(&x->a[k]);
    ex_req_init(&x->scratch);
    x->outcome = json_pack("{s:s, s:I, s:s, s:s, s:n, s:n, s:n, s:n, s:s, s:s, s:s, s:s, s:I,"
                           " s:I, s:s, s:n, s:n, s:{}, s:s}",
                           "message_id", "", "occurred_at", (json_int_t)0, "partner_id", "",
                           "outcome_id", "", "order_id", "payment_id", "refund_id", "payout_id",
                           "kind", "CHARGE", "status", "SUCCEEDED", "psp", "", "psp_reference", "",
                           "amount_minor", (json_int_t)0, "fee_minor", (json_int_t)0,
                           "currency", "", "failure_code", "failure_message", "next_action",
                           "source", "EXECUTOR");
    if (!x->outcome)
        return ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
    x->started = 1;
    return KS_OK;
}

/* --- outputs ----------------------------------------------------------------------------- */

static const char *nz(const char *s)
{
    return s && *s ? s : NULL;
}

static void set_str(json_t *o, const char *name, const char *v)
{
    json_object_set_new(o, name, v ? json_string(v) : json_null());
}

/* The PspOutcome of a command (v: the command's payload) reaching status. */
static enum ks_code emit_outcome(struct exe *x, struct ks_batch *b, struct ks_msg *m,
                                 const json_t *v, const char *psp, const char *status,
                                 const struct ex_result *res, struct ks_err *err)
{
    const char *kind = str_field(v, "kind");
    const char *object = strcmp(kind, "CHARGE") == 0   ? str_field(v, "order_id")
                         : strcmp(kind, "REFUND") == 0 ? str_field(v, "refund_id")
                                                       : str_field(v, "payout_id");
    const char *key = strcmp(kind, "PAYOUT") == 0 ? str_field(v, "payout_id") : str_field(v, "order_id");
    char oid[KS_ID_LEN], mid[KS_ID_LEN];
    json_t *o = x->outcome, *na = json_object();
    int fail = strcmp(status, "FAILED") == 0;

    ks_outcome_id(kind, object, status, oid);
    ks_outcome_message_id(oid, mid);
    set_str(o, "message_id", mid);
    json_object_set_new(o, "occurred_at", json_integer((json_int_t)ks_clock_wall_us()));
    set_str(o, "partner_id", str_field(v, "partner_id"));
    set_str(o, "outcome_id", oid);
    set_str(o, "order_id", nz(str_field(v, "order_id")));
    set_str(o, "payment_id", nz(str_field(v, "payment_id")));
    set_str(o, "refund_id", nz(str_field(v, "refund_id")));
    set_str(o, "payout_id", nz(str_field(v, "payout_id")));
    set_str(o, "kind", kind);
    set_str(o, "status", status);
    set_str(o, "psp", psp);
    set_str(o, "psp_reference", res ? res->psp_reference : "");
    json_object_set_new(o, "amount_minor",
                        json_integer(res && res->amount_minor > 0
                                         ? res->amount_minor
                                         : json_integer_value(json_object_get(v, "amount_minor"))));
    json_object_set_new(o, "fee_minor", json_integer(res ? res->fee_minor : 0));
    set_str(o, "currency", str_field(v, "currency"));
    set_str(o, "failure_code", fail && res ? nz(res->failure_code) ? res->failure_code : "failed" : NULL);
    set_str(o, "failure_message", fail && res ? nz(res->failure_message) : NULL);
    for (size_t i = 0; res && na && i < res->n_next_action; i++)
        json_object_set_new(na, res->next_action[i].name, json_string(res->next_action[i].value));
    json_object_set_new(o, "next_action", na ? na : json_object());
    return ks_batch_emit(b, m, x->outcomes_topic, key, strlen(key), SCHEMA_OUTCOME, o, err);
}

static const char *verdict_status(enum ex_verdict v, const char *kind)
{
    switch (v) {
    case EX_SUCCEEDED:
        /* the state reached, named as kasir-webhooks names it (lib/outcome.h) */
        return strcmp(kind, "PAYOUT") == 0   ? "PAID_OUT"
               : strcmp(kind, "REFUND") == 0 ? "REFUNDED"
                                             : "SUCCEEDED";
    case EX_PENDING_CUSTOMER:
        return "PENDING_CUSTOMER";
    case EX_FAILED:
        return "FAILED";
    default:
        return NULL;
    }
}

static const char *verdict_name(enum ex_verdict v)
{
    static const char *const n[] = {"next", "succeeded", "pending_customer", "pending",
                                    "failed", "retry", "unknown", "absent"};
    return (int)v >= 0 && (size_t)v < sizeof(n) / sizeof(n[0]) ? n[v] : "?";
}

static void count_call(struct exe *x, const char *psp, const char *verdict)
{
    char labels[96];
    snprintf(labels, sizeof(labels), "psp=\"%s\",verdict=\"%s\"", psp, verdict);
    ks_metric_add(ks_metrics_counter(x->metrics, "kasir_executor_calls_total",
                                     "operations ended at a PSP, by verdict", labels), 1);
}

/* --- refund requests --------------------------------------------------------------------- */

/* A refused refund: REFUND FAILED, reported as the executor's outcome with the reason. */
static enum ks_code refuse_refund(struct exe *x, struct ks_batch *b, struct ks_msg *m,
                                  const char *psp, const char *code, const char *why,
                                  struct ks_err *err)
{
    json_t *v = m->value;
    struct ex_result res;
    json_t *cmdv = json_pack("{s:s, s:s, s:s, s:s, s:s, s:O, s:s}", "kind", "REFUND", "partner_id",
                             str_field(v, "partner_id"), "order_id", str_field(v, "order_id"),
                             "payment_id", str_field(v, "payment_id"), "refund_id",
                             str_field(v, "refund_id"), "amount_minor",
                             json_object_get(v, "amount_minor"), "currency",
                             str_field(v, "currency"));
    enum ks_code rc;

    if (!cmdv)
        return ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
    ex_result_clear(&res);
    snprintf(res.failure_code, sizeof(res.failure_code), "%s", code);
    snprintf(res.failure_message, sizeof(res.failure_message), "%s", why);
    ks_log(KS_LOG_WARN, "executor.refund.refused", why, "refund_id", str_field(v, "refund_id"),
           "order_id", str_field(v, "order_id"), "code", code, NULL);
    rc = emit_outcome(x, b, m, cmdv, psp, "FAILED", &res, err);
    json_decref(cmdv);
    return rc;
}

static enum ks_code handle_refund(struct ks_batch *b, struct ks_msg *m, PGconn *pg, void *ctx,
                                  struct ks_err *err)
{
    struct exe *x = ctx;
    json_t *v = m->value, *c = NULL;
    char amount[24], cid[KS_ID_LEN], key[KS_ID_LEN], mid[KS_ID_LEN], why[200];
    const char *p[5] = {str_field(v, "refund_id"), str_field(v, "order_id"), amount,
                        str_field(v, "currency"), str_field(v, "partner_id")};
    PGresult *res;
    enum ks_code rc = KS_OK;
    int64_t amt = json_integer_value(json_object_get(v, "amount_minor"));

    snprintf(amount, sizeof(amount), "%" PRId64, amt);
    res = ks_pg_exec(pg, &x->q_refund_lock, p + 1, NULL, NULL, 0);
    rc = ks_pg_check(pg, res, PGRES_TUPLES_OK, "lock the order's refunds", err);
    PQclear(res);
    if (rc != KS_OK)
        return rc;
    res = ks_pg_exec(pg, &x->q_refund, p, NULL, NULL, 0);
    if ((rc = ks_pg_check(pg, res, PGRES_TUPLES_OK, "check refund", err)) != KS_OK)
        goto out;
    if (strcmp(PQgetvalue(res, 0, 0), "0") == 0) {
        const char *st = PQgetvalue(res, 0, 2);
        if (strcmp(PQgetvalue(res, 0, 1), "t") == 0)
            goto out; /* accepted before: its command went out with that batch */
        if (PQgetisnull(res, 0, 2)) {
            rc = ks_err_set(err, KS_ENOTFOUND, 0, "order_id", "no such order");
            goto out;
        }
        if (strcmp(PQgetvalue(res, 0, 3), p[4]) != 0) {
            rc = ks_err_set(err, KS_EINVAL, 0, "partner_id", "the order belongs to another partner");
            goto out;
        }
        if (strcmp(st, "SUCCESS") != 0) {
            snprintf(why, sizeof(why), "the order is %s, not captured", st);
            rc = refuse_refund(x, b, m, PQgetvalue(res, 0, 12), "refund_not_captured", why, err);
        } else if (strcmp(PQgetvalue(res, 0, 4), p[3]) != 0) {
            rc = refuse_refund(x, b, m, PQgetvalue(res, 0, 12), "refund_currency_mismatch",
                               "the refund's currency is not the order's", err);
        } else if (PQgetisnull(res, 0, 7)) {
            rc = refuse_refund(x, b, m, PQgetvalue(res, 0, 12), "refund_capture_unknown",
                               "no charge of this order is recorded by the executor", err);
        } else {
            snprintf(why, sizeof(why), "refund of %" PRId64 " exceeds captured %s minus refunded %s",
                     amt, PQgetvalue(res, 0, 5), PQgetvalue(res, 0, 6));
            rc = refuse_refund(x, b, m, PQgetvalue(res, 0, 12), "refund_exceeds_captured", why, err);
        }
        goto out;
    }
    /* accepted now: the REFUND command, through the same PSP as the capture */
    ks_id_derive_after("cmd", "psp-command", cid, p[0], "REFUND", NULL);
    ks_id_derive("idk", "psp-idempotency", key, "REFUND", p[0], NULL);
    ks_batch_next_id(b, m, x->commands_topic, mid);
    c = json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:n, s:s, s:s, s:I, s:s, s:s, s:i,"
                  " s:{s:s}}",
                  "message_id", mid, "occurred_at", (json_int_t)ks_clock_wall_us(), "partner_id",
                  p[4], "command_id", cid, "kind", "REFUND", "payment_id",
                  str_field(v, "payment_id"), "order_id", p[1], "refund_id", p[0], "payout_id",
                  "psp", PQgetvalue(res, 0, 10), "psp_idempotency_key", key, "amount_minor",
                  (json_int_t)amt, "currency", p[3], "method", PQgetvalue(res, 0, 9), "attempt",
                  1, "details", "charge_reference", PQgetvalue(res, 0, 11));
    if (!c) {
        rc = ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
        goto out;
    }
    rc = ks_batch_emit(b, m, x->commands_topic, p[1], strlen(p[1]), SCHEMA_COMMAND, c, err);
out:
    json_decref(c);
    PQclear(res);
    return rc;
}

/* --- commands ---------------------------------------------------------------------------- */

static enum ex_op op_of(const char *kind)
{
    return strcmp(kind, "CHARGE") == 0 ? EX_OP_CHARGE
           : strcmp(kind, "REFUND") == 0 ? EX_OP_REFUND
                                         : EX_OP_PAYOUT;
}

/* it->job.cmd from the command's payload; strings borrowed from it */
static void fill_cmd(struct ex_item *it)
{
    json_t *v = it->m->value, *d = json_object_get(v, "details");
    struct ex_cmd *c = &it->job.cmd;
    const char *name;
    json_t *val;
    size_t n = 0;

    it->kind = str_field(v, "kind");
    c->op = op_of(it->kind);
    c->command_id = str_field(v, "command_id");
    c->partner_id = str_field(v, "partner_id");
    c->payment_id = str_field(v, "payment_id");
    c->order_id = str_field(v, "order_id");
    c->refund_id = str_field(v, "refund_id");
    c->payout_id = str_field(v, "payout_id");
    c->idem_key = str_field(v, "psp_idempotency_key");
    c->amount_minor = json_integer_value(json_object_get(v, "amount_minor"));
    c->currency = str_field(v, "currency");
    c->method = str_field(v, "method");
    json_object_foreach(d, name, val) {
        if (n < MAX_DETAILS && json_string_value(val)) {
            it->details[n].name = name;
            it->details[n].value = json_string_value(val);
            n++;
        }
    }
    c->details = it->details;
    c->n_details = n;
    c->charge_ref = str_field(d, "charge_reference");
}

static const char *object_id(const struct ex_item *it)
{
    const struct ex_cmd *c = &it->job.cmd;
    return c->op == EX_OP_CHARGE ? c->order_id : c->op == EX_OP_REFUND ? c->refund_id : c->payout_id;
}

/* may a new attempt act on an object in status st? */
static int actionable(const struct ex_item *it, const char *st)
{
    if (it->job.cmd.op == EX_OP_CHARGE)
        return strcmp(st, "NOT_STARTED") == 0 || strcmp(st, "EXECUTING") == 0;
    return strcmp(st, "PENDING_PUBLISH") == 0 || strcmp(st, "REQUESTED") == 0 ||
           strcmp(st, "EXECUTING") == 0;
}

static void fail_msg(struct ks_batch *b, struct ex_item *it, enum ks_code code, int retriable,
                     const char *fmt, const char *a1)
{
    struct ks_err e = {0};
    ks_err_set(&e, code, retriable, NULL, fmt, a1);
    ks_batch_fail(b, it->m, &e);
    it->action = A_NONE;
}

/* An adapter that can run op for this command (the adapters on other branches may still
 * be stubs with no functions). */
static int usable(const struct ex_adapter *ad, const struct ex_cmd *c)
{
    return ad && ad->supports && ad->build && ad->parse && ad->supports(c->op, c->method, c->currency);
}

/* The PSP a new attempt goes to (its breaker slot taken), or -1 when every circuit that
 * could take it is open. */
static int pick_psp(struct exe *x, struct ex_item *it, int64_t now)
{
    int primary = psp_index(str_field(it->m->value, "psp"));
    const struct ex_cmd *c = &it->job.cmd;

    it->br = ex_breaker_get(x->breakers, PSP_NAMES[primary], c->method);
    if (ex_breaker_allow(it->br, now))
        return primary;
    if (c->op != EX_OP_CHARGE)
        return -1; /* a refund must go where the capture is; payouts stay where risk sent them */
    for (size_t i = 0; i < x->nfo; i++) {
        const struct failover *f = &x->fo[i];
        const struct ex_adapter *ad = ex_adapter_find(PSP_NAMES[f->to]);
        if (f->from != primary || strcmp(f->method, c->method) != 0 || !usable(ad, c) ||
            !*x->conf[f->to].secret)
            continue;
        it->br = ex_breaker_get(x->breakers, PSP_NAMES[f->to], c->method);
        if (ex_breaker_allow(it->br, now)) {
            ks_log(KS_LOG_INFO, "executor.failover", "primary circuit open, sending to the secondary",
                   "order_id", c->order_id, "from", PSP_NAMES[primary], "to", PSP_NAMES[f->to],
                   "method", c->method, NULL);
            return f->to;
        }
    }
    return -1;
}

static enum ks_code lookup(struct exe *x, struct ex_item *items, size_t n, PGconn *pg,
                           PGresult **out, struct ks_err *err)
{
    const char *p[6];

    for (int k = 0; k < 6; k++)
        ks_pgarr_reset(&x->a[k]);
    for (size_t i = 0; i < n; i++) {
        ks_pgarr_text(&x->a[0], items[i].job.cmd.command_id);
        ks_pgarr_text(&x->a[1], items[i].kind);
        ks_pgarr_text(&x->a[2], object_id(&items[i]));
        ks_pgarr_int(&x->a[3], items[i].job.cmd.amount_minor);
        ks_pgarr_text(&x->a[4], items[i].job.cmd.currency);
        ks_pgarr_text(&x->a[5], items[i].job.cmd.partner_id);
    }
    for (int k = 0; k < 6; k++)
        if (!(p[k] = ks_pgarr_str(&x->a[k])))
            return ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
    *out = ks_pg_exec(pg, &x->q_lookup, p, NULL, NULL, 0);
    return ks_pg_check(pg, *out, PGRES_TUPLES_OK, "look up attempts", err);
}

static const struct ex_item *g_sort_items; /* qsort has no context argument */

static int by_command(const void *a, const void *b)
{
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    int c = strcmp(g_sort_items[i].job.cmd.command_id, g_sort_items[j].job.cmd.command_id);
    return c ? c : (i > j) - (i < j);
}

static int by_object(const void *a, const void *b)
{
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    int c = strcmp(g_sort_items[i].kind, g_sort_items[j].kind);
    if (!c)
        c = strcmp(object_id(&g_sort_items[i]), object_id(&g_sort_items[j]));
    return c ? c : (i > j) - (i < j);
}

/* A command delivered twice in one batch (a relay's duplicate, a replay) is acted on once:
 * both copies would find no journal row and call the PSP. The later copies are skipped. */
static void skip_repeats(struct ex_item *items, size_t n)
{
    size_t *ix = malloc((n ? n : 1) * sizeof(*ix));

    if (!ix) { /* no memory: compare pairwise, slow but right */
        for (size_t i = 1; i < n; i++)
            for (size_t j = 0; j < i && items[i].action != A_SKIP; j++)
                if (strcmp(items[i].job.cmd.command_id, items[j].job.cmd.command_id) == 0)
                    items[i].action = A_SKIP;
        return;
    }
    for (size_t i = 0; i < n; i++)
        ix[i] = i;
    g_sort_items = items;
    qsort(ix, n, sizeof(*ix), by_command);
    for (size_t k = 1; k < n; k++)
        if (strcmp(items[ix[k]].job.cmd.command_id, items[ix[k - 1]].job.cmd.command_id) == 0)
            items[ix[k]].action = A_SKIP;
    /* another command for an object a command of this batch acts on: never both sent */
    qsort(ix, n, sizeof(*ix), by_object);
    for (size_t k = 1; k < n; k++) {
        struct ex_item *a = &items[ix[k - 1]], *c = &items[ix[k]];
        if (strcmp(a->kind, c->kind) == 0 && strcmp(object_id(a), object_id(c)) == 0 &&
            strcmp(a->job.cmd.command_id, c->job.cmd.command_id) != 0)
            c->other_command = 1;
    }
    free(ix);
}

/* Step 2: what to do with each command. */
static void decide(struct exe *x, struct ks_batch *b, struct ex_item *items, size_t n,
                   PGresult *res, int64_t now)
{
    skip_repeats(items, n);
    for (int r = 0; r < PQntuples(res); r++) {
        long ord = strtol(PQgetvalue(res, r, 0), NULL, 10);
        struct ex_item *it;
        const char *state, *st;
        int known = !PQgetisnull(res, r, 1);

        if (ord < 1 || (size_t)ord > n)
            continue;
        it = &items[ord - 1];
        if (it->action == A_SKIP)
            continue;
        state = known ? PQgetvalue(res, r, 2) : "";
        st = PQgetvalue(res, r, 5);
        if (known && strcmp(state, "resolved") == 0) {
            it->action = A_SKIP; /* its outcome went out when it was resolved */
            continue;
        }
        if (known && strcmp(state, "sent") == 0) {
            /* an attempt whose outcome is unknown: ask its PSP before anything else */
            it->psp = psp_index(PQgetvalue(res, r, 3));
            it->attempt = (int)strtol(PQgetvalue(res, r, 1), NULL, 10);
            if (it->psp < 0) {
                fail_msg(b, it, KS_EINVAL, 0, "journaled attempt names unknown PSP %s",
                         PQgetvalue(res, r, 3));
                continue;
            }
            it->br = ex_breaker_get(x->breakers, PSP_NAMES[it->psp], it->job.cmd.method);
            if (!ex_breaker_allow(it->br, now)) {
                fail_msg(b, it, KS_EPSP, 1, "circuit of %s open; unresolved attempt waits",
                         PSP_NAMES[it->psp]);
                continue;
            }
            it->probe = 1;
            it->job.status_first = 1;
            snprintf(it->job.known_ref, sizeof(it->job.known_ref), "%s", PQgetvalue(res, r, 4));
            it->action = A_STATUS;
            continue;
        }
        if (PQgetisnull(res, r, 5)) {
            /* kasir-risk writes a payment's orders with its command (before session 29 the
             * ingress wrote them after Kafka confirmed the event, and a charge could arrive
             * first: test 617); one without its row is retried, never sent without it; a
             * refund's and a payout's rows are written before their events */
            int charge = strcmp(it->kind, "CHARGE") == 0;
            fail_msg(b, it, KS_ENOTFOUND, charge,
                     charge ? "no %s row for this command (yet: retried)"
                            : "no %s row for this command", it->kind);
            continue;
        }
        if (strcmp(PQgetvalue(res, r, 6), "t") != 0) {
            /* the command would move money Kasir's row does not say: the amount, currency
             * or partner of its order (refund, payout) differ */
            fail_msg(b, it, KS_EINVAL, 0,
                     "the command's amount, currency or partner is not its %s row's", it->kind);
            continue;
        }
        if (it->other_command || strcmp(PQgetvalue(res, r, 7), "t") == 0) {
            /* one order, one charge (one refund, one payout): a second command with its own
             * idempotency key would be a second operation at the PSP */
            fail_msg(b, it, KS_EINVAL, 0, "another command acts on this %s already", it->kind);
            continue;
        }
        if (!actionable(it, st)) {
            ks_log(KS_LOG_INFO, "executor.command.final", "the object is final already; nothing sent",
                   "command_id", it->job.cmd.command_id, "status", st, NULL);
            it->action = A_SKIP;
            continue;
        }
        it->attempt = known ? (int)strtol(PQgetvalue(res, r, 1), NULL, 10) + 1 : 1;
        {
            int primary = psp_index(str_field(it->m->value, "psp"));
            const struct ex_adapter *ad = ex_adapter_find(PSP_NAMES[primary]);
            struct ks_err e = {0};
            if (!usable(ad, &it->job.cmd)) {
                fail_msg(b, it, KS_EINVAL, 0, "PSP %s does not support this operation",
                         PSP_NAMES[primary]);
                continue;
            }
            if (!*x->conf[primary].secret) {
                fail_msg(b, it, KS_ECONFIG, 0, "no credentials configured for PSP %s",
                         PSP_NAMES[primary]);
                continue;
            }
            /* bad command data fails the order before anything is journaled or sent */
            ex_req_reset(&x->scratch);
            it->job.ad = ad;
            it->job.conf = &x->conf[primary];
            if (ad->build(&x->conf[primary], &it->job.cmd, 0, NULL, &x->scratch, &e) == KS_EINVAL) {
                it->job.invalid = 1;
                ex_result_clear(&it->job.res);
                it->job.res.verdict = EX_FAILED;
                snprintf(it->job.res.failure_code, sizeof(it->job.res.failure_code), "invalid_request");
                snprintf(it->job.res.failure_message, sizeof(it->job.res.failure_message),
                         "%.60s%s%.180s", e.field, e.field[0] ? ": " : "", e.msg);
                it->psp = primary;
                it->action = A_SEND; /* reported below without a call */
                continue;
            }
        }
        if ((it->psp = pick_psp(x, it, now)) < 0) {
            fail_msg(b, it, KS_EPSP, 1, "circuit of %s open and no secondary available",
                     str_field(it->m->value, "psp"));
            continue;
        }
        it->probe = 1;
        it->action = A_SEND;
    }
    for (size_t i = 0; i < n; i++) {
        struct ex_item *it = &items[i];
        if (it->action == A_STATUS || it->action == A_SEND) {
            it->job.ad = ex_adapter_find(PSP_NAMES[it->psp]);
            it->job.conf = &x->conf[it->psp];
        }
    }
}

/* Step 3: the batch's new attempts, in one fenced commit over every input partition they
 * came from (ks_batch_journal), before any of their calls leaves; then the calls go on the
 * wire together. A partition another instance owns now fences the whole journal: no new
 * attempt is written or sent, and the runtime drops the batch. (The status lookups of
 * attempts journaled before left already: they ask first, and resend only under the
 * attempt's own key at its own PSP.) */
static enum ks_code journal(struct exe *x, struct ks_batch *b, struct ex_item *items, size_t n,
                            struct ks_err *err)
{
    const char *p[10];
    enum ks_code rc;
    size_t nj = 0;

    for (int k = 0; k < 10; k++)
        ks_pgarr_reset(&x->a[k]);
    for (size_t i = 0; i < n; i++) {
        struct ex_item *it = &items[i];
        const struct ex_cmd *c = &it->job.cmd;
        if (it->action != A_SEND || it->job.invalid)
            continue;
        x->msgs[nj] = it->m;
        x->jobs[nj++] = &it->job;
        ks_pgarr_text(&x->a[0], c->command_id);
        ks_pgarr_int(&x->a[1], it->attempt);
        ks_pgarr_text(&x->a[2], it->kind);
        ks_pgarr_text(&x->a[3], object_id(it));
        ks_pgarr_text(&x->a[4], c->order_id);
        ks_pgarr_text(&x->a[5], PSP_NAMES[it->psp]);
        ks_pgarr_text(&x->a[6], c->method);
        ks_pgarr_text(&x->a[7], c->idem_key);
        ks_pgarr_int(&x->a[8], c->amount_minor);
        ks_pgarr_text(&x->a[9], c->currency);
    }
    if (nj == 0)
        return KS_OK;
    for (int k = 0; k < 10; k++)
        if (!(p[k] = ks_pgarr_str(&x->a[k])))
            return ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
    rc = ks_batch_journal(b, x->msgs, nj, &x->q_journal, p, err);
    if (rc == KS_ECONFLICT)
        ks_log(KS_LOG_WARN, "executor.journal.fenced", err->msg, NULL);
    if (rc == KS_OK && ex_engine_add(x->engine, x->jobs, nj) != 0)
        rc = ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
    return rc;
}

/* The breaker slot an item took in decide: its call's health recorded, or the slot given
 * back when no call was made. Once per item, also when the batch fails before record():
 * a half-open circuit whose probe slots are never returned refuses every call for good. */
static void settle_probe(struct ex_item *it, int64_t now)
{
    if (!it->probe)
        return;
    if (it->job.health < 0)
        ex_breaker_release(it->br);
    else
        ex_breaker_record(it->br, it->job.health, now);
    it->probe = 0;
}

/* Step 5: verdicts into the journal and the outbox. */
static enum ks_code record(struct exe *x, struct ks_batch *b, struct ex_item *items, size_t n,
                           PGconn *pg, int64_t now, struct ks_err *err)
{
    const char *p[8];
    PGresult *res = NULL;
    enum ks_code rc = KS_OK;
    size_t rows = 0;

    for (int k = 0; k < 8; k++)
        ks_pgarr_reset(&x->a[k]);
    for (size_t i = 0; i < n; i++) {
        struct ex_item *it = &items[i];
        struct ex_job *j = &it->job;
        const char *state = "resolved", *status;
        char why[300];

        if (it->action != A_SEND && it->action != A_STATUS)
            continue;
        settle_probe(it, now);
        if (j->invalid) {
            /* refused by the adapter, never journaled, never sent */
            rc = emit_outcome(x, b, it->m, it->m->value, PSP_NAMES[it->psp], "FAILED", &j->res, err);
            if (rc != KS_OK)
                return rc;
            count_call(x, PSP_NAMES[it->psp], "invalid");
            continue;
        }
        count_call(x, PSP_NAMES[it->psp], verdict_name(j->res.verdict));
        switch (j->res.verdict) {
        case EX_SUCCEEDED:
        case EX_PENDING_CUSTOMER:
        case EX_FAILED:
            status = verdict_status(j->res.verdict, it->kind);
            rc = emit_outcome(x, b, it->m, it->m->value, PSP_NAMES[it->psp], status, &j->res, err);
            if (rc != KS_OK)
                return rc;
            break;
        case EX_PENDING:
            break; /* accepted; the result comes by webhook */
        case EX_RETRY:
            state = "absent";
            break;
        default:
            state = "sent";
            break;
        }
        if (strcmp(state, "resolved") != 0) {
            struct ks_err e = {0};
            snprintf(why, sizeof(why), "%s at %s (http %ld%s%s)",
                     j->res.verdict == EX_RETRY ? "not run" : "outcome unknown", PSP_NAMES[it->psp],
                     j->http_status, j->transport[0] ? ", " : "", j->transport);
            ks_err_set(&e, KS_EPSP, 1, NULL, "%s", why);
            ks_batch_fail(b, it->m, &e);
        }
        ks_pgarr_text(&x->a[0], j->cmd.command_id);
        ks_pgarr_int(&x->a[1], it->attempt);
        ks_pgarr_text(&x->a[2], state);
        ks_pgarr_text(&x->a[3], strcmp(state, "resolved") != 0 ? ""
                                : j->res.verdict == EX_SUCCEEDED ? "SUCCEEDED"
                                : j->res.verdict == EX_FAILED    ? "FAILED"
                                : j->res.verdict == EX_PENDING   ? "PENDING"
                                                                 : "PENDING_CUSTOMER");
        ks_pgarr_text(&x->a[4], j->res.psp_reference);
        ks_pgarr_text(&x->a[5], j->res.failure_code);
        ks_pgarr_text(&x->a[6], j->res.failure_message);
        if (j->cmd.op == EX_OP_REFUND && j->res.verdict == EX_FAILED)
            ks_pgarr_text(&x->a[7], j->cmd.refund_id);
        rows++;
    }
    if (rows == 0)
        return KS_OK;
    for (int k = 0; k < 8; k++)
        if (!(p[k] = ks_pgarr_str(&x->a[k])))
            return ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
    res = ks_pg_exec(pg, &x->q_resolve, p, NULL, NULL, 0);
    rc = ks_pg_check(pg, res, PGRES_COMMAND_OK, "record verdicts", err);
    PQclear(res);
    return rc;
}

static enum ks_code handle_batch(struct ks_batch *b, PGconn *pg, void *ctx, struct ks_err *err)
{
    struct exe *x = ctx;
    size_t n = ks_batch_count(b), nc = 0, nj = 0;
    PGresult *res = NULL;
    enum ks_code rc;
    int64_t t0 = ks_clock_mono_us(), now = t0 / 1000, t_look, t_journal, t_calls;

    if ((rc = start(x, b, err)) != KS_OK)
        return rc;
    if (n > x->cap) {
        struct ex_item *ni = realloc(x->items, n * sizeof(*ni));
        struct ex_job **nj2 = ni ? realloc(x->jobs, n * sizeof(*nj2)) : NULL;
        const struct ks_msg **nm = nj2 ? realloc(x->msgs, n * sizeof(*nm)) : NULL;
        if (ni)
            x->items = ni;
        if (nj2)
            x->jobs = nj2;
        if (!nm)
            return ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
        x->msgs = nm;
        x->cap = n;
    }
    /* refund requests become commands; the rest are commands */
    for (size_t i = 0; i < n; i++) {
        struct ks_msg *m = ks_batch_msg(b, i);
        if (strcmp(m->schema, SCHEMA_REFUND) == 0) {
            if ((rc = ks_batch_run_msg(b, m, pg, handle_refund, x, err)) != KS_OK)
                return rc;
            continue;
        }
        struct ex_item *it = &x->items[nc++];
        memset(it, 0, sizeof(*it));
        it->m = m;
        ex_job_init(&it->job);
        fill_cmd(it);
    }
    if (nc == 0)
        return KS_OK;
    if ((rc = lookup(x, x->items, nc, pg, &res, err)) != KS_OK)
        goto out;
    decide(x, b, x->items, nc, res, now);
    t_look = ks_clock_mono_us();
    /* unresolved attempts need no journal: their status lookups go first */
    for (size_t i = 0; i < nc; i++)
        if (x->items[i].action == A_STATUS)
            x->jobs[nj++] = &x->items[i].job;
    if (nj && ex_engine_add(x->engine, x->jobs, nj) != 0)
        rc = ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
    if (rc == KS_OK)
        rc = journal(x, b, x->items, nc, err);
    t_journal = ks_clock_mono_us();
    /* every call started is seen to its end, even when the batch fails now: a job's memory
     * must outlive its transfer, and its journal row says what to ask the PSP next time */
    ex_engine_wait(x->engine);
    t_calls = ks_clock_mono_us();
    if (rc != KS_OK)
        goto out;
    nj = 0;
    for (size_t i = 0; i < nc; i++)
        nj += (x->items[i].action == A_SEND && !x->items[i].job.invalid) ||
              x->items[i].action == A_STATUS;
    rc = record(x, b, x->items, nc, pg, t_calls / 1000, err);
    ks_logf(KS_LOG_DEBUG, "executor.batch.timing",
            "%zu commands, %zu calls: lookup %" PRId64 " us, journal %" PRId64 " us, calls %" PRId64
            " us, record %" PRId64 " us", nc, nj, t_look - t0, t_journal - t_look,
            t_calls - t_journal, ks_clock_mono_us() - t_calls);
out:
    PQclear(res);
    for (size_t i = 0; i < nc; i++) {
        settle_probe(&x->items[i], ks_clock_mono_us() / 1000);
        ex_job_release(&x->items[i].job);
    }
    return rc;
}

/* --- main -------------------------------------------------------------------------------- */

/* The whole table as ks_worker_main builds it, loaded once before the worker starts so a
 * bad executor setting stops the daemon with every problem named (exit 2). */
static int check_config(const char *path)
{
    static const struct ks_worker_spec spec = {
        .name = "executor", .group = EXEC_GROUP, .topics = EXEC_TOPICS, .http_port = EXEC_PORT};
    struct ks_config_def *all;
    size_t total;
    struct ks_config *cfg;
    struct failover fo[MAX_FAILOVER];
    size_t nfo;
    char why[160];
    int bad = 0;

    if (!(all = ks_worker_table(&spec, exec_settings, exec_settings_count, &total)))
        return -1;
    if (!(cfg = ks_config_load_main("executor", all, total, path))) {
        free(all);
        return -1;
    }
    if (parse_failover(ks_config_str(cfg, "executor.failover"), fo, &nfo, why, sizeof(why)) != 0) {
        ks_log(KS_LOG_ERROR, "config.invalid", why, "setting", "executor.failover", NULL);
        bad = 1;
    }
    for (int i = 0; i < PSP__N; i++) {
        char name[64];
        const char *u;
        snprintf(name, sizeof(name), "executor.%s.url", PSP_NAMES[i]);
        u = ks_config_str(cfg, name);
        if (strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0) {
            ks_log(KS_LOG_ERROR, "config.invalid", "a PSP URL starts with http:// or https://",
                   "setting", name, NULL);
            bad = 1;
        }
    }
    {
        static const char *const pos[] = {"executor.max_in_flight", "executor.breaker.window",
                                          "executor.breaker.min_calls", "executor.breaker.probes"};
        for (size_t i = 0; i < sizeof(pos) / sizeof(pos[0]); i++)
            if (ks_config_int(cfg, pos[i]) < 1 || ks_config_int(cfg, pos[i]) > 100000) {
                ks_log(KS_LOG_ERROR, "config.invalid", "must be between 1 and 100000", "setting",
                       pos[i], NULL);
                bad = 1;
            }
        if (ks_config_int(cfg, "executor.breaker.failure_pct") < 1 ||
            ks_config_int(cfg, "executor.breaker.failure_pct") > 100) {
            ks_log(KS_LOG_ERROR, "config.invalid", "a percentage between 1 and 100", "setting",
                   "executor.breaker.failure_pct", NULL);
            bad = 1;
        }
        if (ks_config_ms(cfg, "executor.psp_timeout") < 1) {
            ks_log(KS_LOG_ERROR, "config.invalid", "must be positive", "setting",
                   "executor.psp_timeout", NULL);
            bad = 1;
        }
    }
    ks_config_free(cfg);
    free(all);
    return bad ? -1 : 0;
}

int main(int argc, char **argv)
{
    static struct exe x = {
        .q_refund_lock = KS_PG_STMT("executor_refund_lock", SQL_REFUND_LOCK, 1),
        .q_refund = KS_PG_STMT("executor_refund", SQL_REFUND, 5),
        .q_lookup = KS_PG_STMT("executor_lookup", SQL_LOOKUP, 6),
        .q_resolve = KS_PG_STMT("executor_resolve", SQL_RESOLVE, 8),
        .q_journal = KS_PG_STMT("executor_journal", SQL_JOURNAL, 10),
    };
    const struct ks_worker_spec spec = {
        .name = "executor",
        .group = EXEC_GROUP,
        .topics = EXEC_TOPICS,
        .http_port = EXEC_PORT,
        .validate = validate,
        .handle_batch = handle_batch,
        .ctx = &x,
    };
    const char *path = NULL;
    int rc;

    if (!(argc == 2 && strcmp(argv[1], "config-doc") == 0)) {
        for (int i = 1; i + 1 < argc; i++)
            if (strcmp(argv[i], "-c") == 0)
                path = argv[i + 1];
        if (check_config(path) != 0)
            return 2;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 1;
    rc = ks_worker_main(&spec, exec_settings, exec_settings_count, argc, argv);
    ex_engine_free(x.engine);
    ex_breakers_free(x.breakers);
    for (int k = 0; k < 10; k++)
        ks_pgarr_release(&x.a[k]);
    ex_req_release(&x.scratch);
    free(x.items);
    free(x.jobs);
    free(x.msgs);
    json_decref(x.outcome);
    curl_global_cleanup();
    return rc;
}
