/* kasir-risk - decides every payment and payout before anything is sent to a PSP.
 *
 * Reads kasir.payments.PaymentRequested (kasir.payments.requested, key buyer) and
 * kasir.payouts.PayoutRequested (kasir.payouts.requested, key seller), checks them against
 * the rules file (rules.c) and decides:
 *   APPROVE  a PspCommand per order (per payout) to kasir.psp.commands; the payment stays
 *            NOT_STARTED (payout REQUESTED) for the executor to move;
 *   REVIEW   held (risk_holds) with its commands encoded, until an admin decides
 *            (risk_hold_decide); payment NOT_STARTED, payout HELD;
 *   REJECT   FAILED, with the reason codes of the rules that fired (risk_payments).
 * A batch takes at most two statements per kind (payments, payouts): one reading the
 * buyers' history for the velocity and new-buyer rules, one writing every decision, the
 * read model (rejected and held ones moved, any missing rows written), and the holds. Everything else (offsets, outbox,
 * DLQ, shutdown) is the runtime's.
 *
 *   kasir-risk [-c file]                    the worker
 *   kasir-risk check-rules [-c file]        validates the rules file and exits (0 or 2)
 *   kasir-risk config-doc                   its settings as docs/CONFIG.md shows them
 *   kasir-risk holds list|approve|reject    the admin operations (holds.c) */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/crypto.h"
#include "lib/hash.h"
#include "lib/db.h"
#include "lib/log.h"
#include "lib/money.h"
#include "lib/outbox.h"
#include "lib/serde.h"
#include "lib/headers.h"
#include "lib/pgarr.h"
#include "lib/trace.h"
#include "lib/worker.h"
#include "consumers/risk/risk.h"
#include "lib/banned.h"

#define SCHEMA_PAYMENT "kasir.payments.PaymentRequested"
#define SCHEMA_PAYOUT "kasir.payouts.PayoutRequested"
#define SCHEMA_COMMAND "kasir.psp.PspCommand"
#define MAX_ORDERS 100 /* the ingress allows 20; a bigger payment did not come from it */
#define MAX_ID 200

/* --- the statements ---------------------------------------------------------------------
 * What the velocity and new-buyer rules need, in one statement; the windows are counted
 * in C (history()). Two kinds of rows, per buyer kid of the batch (the position of the
 * buyer's first payment in it):
 *   1  at, currencies, amounts, checkout: a payment of the buyer decided before, since the
 *      buyer's own bound (its earliest payment in the batch less the longest window), by
 *      index risk_payments_buyer; a batch payment whose checkout is among them is a
 *      redelivery, left out (buyers $1-$4: all of them when there are velocity rules).
 *      The bound is the buyer's, not the batch's: one old payment in a batch (a replay
 *      from a dead-letter topic) would otherwise have every buyer of the batch read its
 *      history back to that time (test 313);
 *   2  at: when the buyer was first seen, if ever (buyers $5-$7: those with a payment in
 *      the batch above a new-buyer cap; for the others the answer cannot matter).
 * Each part is an index range scan or probe per buyer, written so that the planner cannot
 * trade them for a scan of the table (a LATERAL subquery fenced with OFFSET 0, a scalar
 * subquery): the batch is far smaller than the history. */
static const char SQL_HISTORY[] =
    "SELECT 1, k.kid, h.at_us, h.currencies, h.amounts, h.checkout_id"
    "  FROM unnest($1::int[], $2::text[], $3::text[], $4::bigint[]) AS k(kid, partner, buyer, lo)"
    "  CROSS JOIN LATERAL (SELECT x.at_us, x.currencies, x.amounts, x.checkout_id"
    "                        FROM risk_payments x"
    "                       WHERE x.partner_id = k.partner AND x.buyer_id = k.buyer"
    "                         AND x.at_us > k.lo OFFSET 0) h"
    " UNION ALL"
    " SELECT 2, k.kid, (SELECT min(x.at_us) FROM risk_payments x"
    "                    WHERE x.partner_id = k.partner AND x.buyer_id = k.buyer),"
    "        NULL, NULL, NULL"
    "  FROM unnest($5::int[], $6::text[], $7::text[]) AS k(kid, partner, buyer)";

/* The decisions of a batch's payments, one statement:
 *   d:     the payments to decide and their decisions (binary arrays, by position ord;
 *          cur/amt: the per-currency totals as "IDR,USD" and "150000,25"; reasons and
 *          rules: "A,B", NULL when none);
 *   one:   the first of each checkout;
 *   ins:   risk_payments. (partner, checkout) is the idempotency key: the first form of
 *          the statement inserts plainly, as history() left out what was decided before;
 *          a unique violation (a redelivery older than the history read, an instance
 *          racing on the same checkout from another partition) makes the caller run the
 *          second form, ON CONFLICT DO NOTHING, whose RETURNING is what is decided now;
 *   model: the read model of the decided payments: a rejected one FAILED, a held or
 *          approved one NOT_STARTED. These rows are written here, from the event: the
 *          ingress answers a payment at Kafka's delivery report and writes no rows of it
 *          (producers/ingress/README.md). A row that exists (an ingress older than that,
 *          in a rolling deploy, wrote it; or a redelivery) moves only along
 *          kasir_transitions (300), so an approval never changes one;
 *   pay:   the payment rows, all in one insert in id order;
 *   ords:  then their orders: a rejected or held payment's always, an approved one's only
 *          with a payment row this statement inserted. Only after every payment row (the
 *          one-time count of pay): an older ingress writes payments, then orders, and a
 *          worker that wrote an order before waiting for its payment deadlocked with it;
 *   hold, cmd: REVIEW: the hold and the commands an approval will release. */
#define SQL_PAYMENTS_(conflict)                                                               \
    "WITH d AS ("                                                                             \
    "  SELECT * FROM unnest($1::int[], $2::text[], $3::text[], $4::text[], $5::text[],"       \
    "                       $6::bigint[], $7::text[], $8::text[], $9::text[], $10::text[],"   \
    "                       $11::text[], $12::text[])"                                        \
    "    AS d(ord, partner, checkout, payment_id, buyer, at, cur, amt, decision, reasons,"     \
    "         rules, metadata)),"                                                             \
    " one AS (SELECT DISTINCT ON (partner, checkout) * FROM d ORDER BY partner, checkout, ord)," \
    " ins AS ("                                                                               \
    "  INSERT INTO risk_payments (partner_id, checkout_id, payment_id, buyer_id, at_us,"      \
    "                             currencies, amounts, decision, reasons, rules)"             \
    "  SELECT partner, checkout, payment_id, buyer, at, string_to_array(cur, ','),"           \
    "         string_to_array(amt, ',')::bigint[], decision, string_to_array(reasons, ','),"  \
    "         string_to_array(rules, ',')"                                                    \
    "    FROM one ORDER BY 1, 2" conflict " RETURNING partner_id, checkout_id),"              \
    " won AS ("                                                                               \
    "  SELECT one.* FROM one JOIN ins ON ins.partner_id = one.partner"                        \
    "                                AND ins.checkout_id = one.checkout),"                    \
    " model AS ("                                                                             \
    "  SELECT won.*, CASE won.decision WHEN 'REJECT' THEN 'FAILED' ELSE 'NOT_STARTED' END AS st" \
    "    FROM won"                                                                            \
    "   WHERE NOT EXISTS (SELECT 1 FROM payments q WHERE q.partner_id = won.partner"          \
    "                      AND q.checkout_id = won.checkout AND q.payment_id <> won.payment_id))," \
    " o AS ("                                                                                 \
    "  SELECT * FROM unnest($13::int[], $14::text[], $15::int[], $16::text[], $17::bigint[]," \
    "                       $18::text[], $19::text[], $20::text[])"                           \
    "    AS o(ord, order_id, seq, seller, amt, cur, method, psp)),"                           \
    " pay AS ("                                                                               \
    "  INSERT INTO payments AS p (payment_id, partner_id, checkout_id, buyer_id, status,"     \
    "                             metadata, created_at)"                                      \
    "  SELECT payment_id, partner, checkout, buyer, st, coalesce(metadata::jsonb, '{}'),"     \
    "         'epoch'::timestamptz + at * interval '1 microsecond'"                           \
    "    FROM model ORDER BY payment_id"                                                      \
    "  ON CONFLICT (payment_id) DO UPDATE SET status = excluded.status, updated_at = now()"   \
    "   WHERE p.status <> excluded.status"                                                    \
    "     AND kasir_transition_ok('payment', p.status, excluded.status)"                      \
    "  RETURNING payment_id, xmax = 0 AS inserted),"                                          \
    " ords AS ("                                                                              \
    "  INSERT INTO payment_orders AS x (order_id, payment_id, partner_id, seq, seller_id,"    \
    "                                   amount_minor, currency, method, psp_preference, status)" \
    "  SELECT o.order_id, model.payment_id, model.partner, o.seq, o.seller, o.amt, o.cur,"   \
    "         o.method, o.psp, model.st"                                                      \
    "    FROM model JOIN o ON o.ord = model.ord"                                              \
    "   WHERE (SELECT count(*) FROM pay) >= 0"                                                \
    "     AND (model.decision <> 'APPROVE'"                                                   \
    "          OR model.payment_id IN (SELECT payment_id FROM pay WHERE inserted))"           \
    "   ORDER BY o.order_id"                                                                  \
    "  ON CONFLICT (order_id) DO UPDATE SET status = excluded.status, updated_at = now()"     \
    "   WHERE x.status <> excluded.status"                                                    \
    "     AND kasir_transition_ok('order', x.status, excluded.status)),"                      \
    " hold AS ("                                                                              \
    "  INSERT INTO risk_holds (hold_id, kind, partner_id, party_id, checkout_id, currencies," \
    "                          amounts, reasons, rules, outbox_worker)"                       \
    "  SELECT payment_id, 'payment', partner, buyer, checkout, string_to_array(cur, ','),"    \
    "         string_to_array(amt, ',')::bigint[], string_to_array(reasons, ','),"            \
    "         string_to_array(rules, ','), $28"                                               \
    "    FROM won WHERE decision = 'REVIEW'),"                                                \
    " cmd AS ("                                                                               \
    "  INSERT INTO risk_hold_commands (hold_id, n, message_id, topic, key, value, headers)"   \
    "  SELECT won.payment_id, c.n, c.message_id, $27, c.key, c.value, c.headers"              \
    "    FROM unnest($21::int[], $22::int[], $23::text[], $24::bytea[], $25::bytea[],"        \
    "                $26::bytea[]) AS c(ord, n, message_id, key, value, headers)"             \
    "    JOIN won ON won.ord = c.ord WHERE won.decision = 'REVIEW')"                          \
    " SELECT ord FROM won"
static const char SQL_PAYMENTS[] = SQL_PAYMENTS_("");
static const char SQL_PAYMENTS_AGAIN[] = SQL_PAYMENTS_(" ON CONFLICT DO NOTHING");

/* The decisions of a batch's payouts, as SQL_PAYMENTS (the two forms included); payout_id
 * is the idempotency key. A rejected payout becomes FAILED, a held one HELD; an approved
 * one is REQUESTED (its row written now if the ingress has not yet: the ledger holds its
 * funds next, SQL_FUND, and needs it). */
#define SQL_PAYOUTS_(conflict)                                                                \
    "WITH d AS ("                                                                             \
    "  SELECT * FROM unnest($1::int[], $2::text[], $3::text[], $4::text[], $5::bigint[],"     \
    "                       $6::bigint[], $7::text[], $8::text[], $9::text[], $10::text[],"   \
    "                       $11::text[], $12::text[], $13::text[], $14::text[], $15::text[]," \
    "                       $16::text[])"                                                     \
    "    AS d(ord, payout_id, partner, seller, at, amt, cur, decision, reasons, rules,"       \
    "         channel, bank, ewallet, dest, holder, descr)),"                                 \
    " one AS (SELECT DISTINCT ON (payout_id) * FROM d ORDER BY payout_id, ord),"               \
    " ins AS ("                                                                               \
    "  INSERT INTO risk_payouts (payout_id, partner_id, seller_id, at_us, amount_minor,"      \
    "                            currency, decision, reasons, rules)"                         \
    "  SELECT payout_id, partner, seller, at, amt, cur, decision,"                            \
    "         string_to_array(reasons, ','), string_to_array(rules, ',')"                     \
    "    FROM one ORDER BY 1" conflict " RETURNING payout_id),"                               \
    " won AS (SELECT one.* FROM one JOIN ins ON ins.payout_id = one.payout_id),"              \
    " po AS ("                                                                                \
    "  INSERT INTO payouts AS p (payout_id, partner_id, seller_id, amount_minor, currency,"   \
    "                            channel, bank_code, ewallet_channel, destination_account,"   \
    "                            account_holder, description, status, created_at)"            \
    "  SELECT payout_id, partner, seller, amt, cur, channel, bank, ewallet, dest, holder, descr," \
    "         CASE decision WHEN 'REJECT' THEN 'FAILED' WHEN 'REVIEW' THEN 'HELD'"           \
    "                       ELSE 'REQUESTED' END,"                                            \
    "         'epoch'::timestamptz + at * interval '1 microsecond'"                           \
    "    FROM won ORDER BY payout_id"                                                         \
    "  ON CONFLICT (payout_id) DO UPDATE SET status = excluded.status, updated_at = now()"    \
    "   WHERE p.status <> excluded.status"                                                    \
    "     AND kasir_transition_ok('payout', p.status, excluded.status)),"                     \
    " hold AS ("                                                                              \
    "  INSERT INTO risk_holds (hold_id, kind, partner_id, party_id, currencies, amounts,"     \
    "                          reasons, rules, outbox_worker)"                                \
    "  SELECT payout_id, 'payout', partner, seller, ARRAY[cur], ARRAY[amt],"                  \
    "         string_to_array(reasons, ','), string_to_array(rules, ','), $24"                \
    "    FROM won WHERE decision = 'REVIEW'),"                                                \
    " cmd AS ("                                                                               \
    "  INSERT INTO risk_hold_commands (hold_id, n, message_id, topic, key, value, headers)"   \
    "  SELECT won.payout_id, c.n, c.message_id, $23, c.key, c.value, c.headers"               \
    "    FROM unnest($17::int[], $18::int[], $19::text[], $20::bytea[], $21::bytea[],"        \
    "                $22::bytea[]) AS c(ord, n, message_id, key, value, headers)"             \
    "    JOIN won ON won.ord = c.ord WHERE won.decision = 'REVIEW')"                          \
    " SELECT ord FROM won"
static const char SQL_PAYOUTS[] = SQL_PAYOUTS_("");
static const char SQL_PAYOUTS_AGAIN[] = SQL_PAYOUTS_(" ON CONFLICT DO NOTHING");
/* The funds of the payouts approved now, held from the sellers' wallets by the ledger in
 * this transaction (risk_payouts_fund, docs/LEDGER.md): a payout the wallet cannot cover
 * is FAILED (INSUFFICIENT_FUNDS) there and gets no command. */
static const char SQL_FUND[] = "SELECT payout_id, result FROM risk_payouts_fund($1::text[])";

/* --- settings -------------------------------------------------------------------------- */

const struct ks_config_def risk_settings[] = {
    {"risk.rules", KS_CFG_STRING, NULL, 0,
     "path of the rules file (JSON, consumers/README.md); required by the worker, which "
     "checks it at start: any problem is reported and the daemon exits with status 2"},
    {"risk.output_topic", KS_CFG_STRING, "kasir.psp.commands", 0,
     "topic of the PspCommands of approved payments and payouts"},
    {"risk.psp_default", KS_CFG_STRING, "sandbox", 0,
     "PSP named in a command when the order has no psp_preference (and for payouts)"},
};
const size_t risk_settings_count = sizeof(risk_settings) / sizeof(risk_settings[0]);

#define RISK_GROUP "kasir-risk"
#define RISK_TOPICS "kasir.payments.requested,kasir.payouts.requested"
#define RISK_PORT "8191"

struct ks_config *risk_config_load(const char *path)
{
    /* the table ks_worker_main builds for the daemon, so that one file serves the daemon and
     * its tools; a loaded config refers to its table, kept for the process (one load a run) */
    static const struct ks_worker_spec spec = {
        .name = "risk", .group = RISK_GROUP, .topics = RISK_TOPICS, .http_port = RISK_PORT};
    static struct ks_config_def *all;
    static size_t total;

    if (!all && !(all = ks_worker_table(&spec, risk_settings, risk_settings_count, &total)))
        return NULL;
    return ks_config_load_main("risk", all, total, path);
}

/* --- per-batch state -------------------------------------------------------------------- */

enum { ST_CANDIDATE, ST_DUPLICATE, ST_DECIDED, ST_UNFUNDED };

struct pay {
    struct ks_msg *m;
    struct risk_payment p;
    size_t ord0;          /* its orders: r->orders[ord0 .. ord0 + p.n_orders) */
    int kid;              /* its buyer: the position of the buyer's first payment */
    int prev;             /* the buyer's previous payment to be decided in the batch, -1 */
    struct risk_verdict v;
    int state;
};
struct pout {
    struct ks_msg *m;
    struct risk_payout p;
    const char *channel, *holder, *descr;
    struct risk_verdict v;
    int state;
};

/* column sets of the statements (binary arrays, kept across batches for their memory) */
enum { H_KID, H_KPARTNER, H_KBUYER, H_KFROM, H_FKID, H_FPARTNER, H_FBUYER, H__N };
enum { P_ORD, P_PARTNER, P_CHECKOUT, P_PAYMENT, P_BUYER, P_AT, P_CUR, P_AMT, P_DECISION,
       P_REASONS, P_RULES, P_METADATA, P_OORD, P_OID, P_OSEQ, P_OSELLER, P_OAMT, P_OCUR,
       P_OMETHOD, P_OPSP, P__N };
enum { O_ORD, O_PAYOUT, O_PARTNER, O_SELLER, O_AT, O_AMT, O_CUR, O_DECISION, O_REASONS, O_RULES,
       O_CHANNEL, O_BANK, O_EWALLET, O_DEST, O_HOLDER, O_DESCR, O__N };
enum { C_ORD, C_N, C_MSGID, C_KEY, C_VALUE, C_HEADERS, C__N };
static const unsigned h_oid[H__N] = {KS_OID_INT4, KS_OID_TEXT, KS_OID_TEXT, KS_OID_INT8,
                                     KS_OID_INT4, KS_OID_TEXT, KS_OID_TEXT};
static const unsigned p_oid[P__N] = {
    KS_OID_INT4, KS_OID_TEXT, KS_OID_TEXT, KS_OID_TEXT, KS_OID_TEXT, KS_OID_INT8, KS_OID_TEXT,
    KS_OID_TEXT, KS_OID_TEXT, KS_OID_TEXT, KS_OID_TEXT, KS_OID_TEXT, KS_OID_INT4,
    KS_OID_TEXT, KS_OID_INT4, KS_OID_TEXT, KS_OID_INT8, KS_OID_TEXT, KS_OID_TEXT, KS_OID_TEXT};
static const unsigned o_oid[O__N] = {
    KS_OID_INT4, KS_OID_TEXT, KS_OID_TEXT, KS_OID_TEXT, KS_OID_INT8, KS_OID_INT8,
    KS_OID_TEXT, KS_OID_TEXT, KS_OID_TEXT, KS_OID_TEXT, KS_OID_TEXT, KS_OID_TEXT,
    KS_OID_TEXT, KS_OID_TEXT, KS_OID_TEXT, KS_OID_TEXT};
static const unsigned c_oid[C__N] = {KS_OID_INT4, KS_OID_INT4, KS_OID_TEXT, KS_OID_BYTEA,
                                     KS_OID_BYTEA, KS_OID_BYTEA};

/* a payment of a buyer's history (SQL_HISTORY kind 1): amounts amt[off .. off + n) */
struct hev {
    int kid;
    int64_t at;
    size_t off, n;
    size_t checkout; /* offset of its checkout id in r->cur */
};

/* --- the PspCommand ---------------------------------------------------------------------
 * One value per kind, refilled for each output: its members are changed in place
 * (ks_batch_emit copies the value), not rebuilt. */
struct cmd {
    json_t *v, *details;
    json_t *message_id, *occurred_at, *partner, *command_id, *subject, *order, *psp, *key,
        *amount, *currency, *method;
};

struct risk {
    struct risk_rules *rules;
    const char *out_topic, *psp_default;
    char owner[300];      /* kasir_outbox.worker of this group: "risk/<group>" */
    const struct ks_schema *cmd_schema;

    struct pay *pays;
    struct pout *pouts;
    struct risk_order *orders;
    /* history(): the buyers' past payments, their amounts (currency strings in cur),
     * when each buyer was first seen (by kid, INT64_MAX: never), the bound of each
     * buyer's history read (by kid), the batch's payments of a buyer as a chain, the
     * counters of one payment */
    struct hev *ev;
    struct risk_amount *amt;
    char *cur;
    int64_t *first, *from, *stats;
    int *last, *slots;
    struct risk_amount *tmp;
    size_t cap_pays, cap_pouts, cap_orders, cap_ev, cap_amt, cap_cur, cap_first, cap_from,
        cap_last, cap_stats, cap_tmp, cap_slots;
    struct ks_pgarr_bin h[H__N], p[P__N], o[O__N], c[C__N];
    struct ks_pgarr_bin fund; /* payout ids for SQL_FUND */
    struct cmd charge, payout;
    /* the statements, prepared once per session of the worker's one connection */
    struct ks_pg_stmt q_history, q_payments, q_payments_again, q_payouts, q_payouts_again,
        q_fund;
};

static const char *str_field(const json_t *v, const char *name)
{
    return json_string_value(json_object_get(v, name));
}

static size_t slen(const char *s)
{
    return s ? strlen(s) : 0;
}

static int id_ok(const char *s)
{
    size_t n = slen(s);
    return n > 0 && n <= MAX_ID;
}

/* --- validate ---------------------------------------------------------------------------- */

/* An event time the windows can be counted from without overflow: 1970 to the end of 9999
 * in microseconds (the ingress stamps its own clock; anything else did not come from it). */
#define MAX_AT_US INT64_C(253402300799999999)

static enum ks_code validate_at(json_t *v, struct ks_err *err)
{
    json_int_t at = json_integer_value(json_object_get(v, "occurred_at"));
    if (at < 0 || at > MAX_AT_US)
        return ks_err_set(err, KS_EINVAL, 0, "occurred_at",
                          "occurred_at must be from 1970 to 9999 (microseconds since 1970)");
    return KS_OK;
}

static enum ks_code validate_payment(json_t *v, struct ks_err *err)
{
    static const char *const ids[] = {"partner_id", "payment_id", "buyer_id", "checkout_id"};
    json_t *orders = json_object_get(v, "orders");
    size_t n = json_array_size(orders);

    for (size_t i = 0; i < 4; i++)
        if (!id_ok(str_field(v, ids[i])))
            return ks_err_set(err, KS_EINVAL, 0, ids[i], "%s must have 1 to %d characters",
                              ids[i], MAX_ID);
    if (validate_at(v, err) != KS_OK)
        return err->code;
    if (n == 0 || n > MAX_ORDERS)
        return ks_err_set(err, KS_EINVAL, 0, "orders", "a payment has 1 to %d orders",
                          MAX_ORDERS);
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(orders, i);
        const char *cur = str_field(o, "currency");
        char f[40];
        if (!id_ok(str_field(o, "order_id")) || !id_ok(str_field(o, "seller_id"))) {
            snprintf(f, sizeof(f), "orders[%zu]", i);
            return ks_err_set(err, KS_EINVAL, 0, f, "order_id and seller_id must have 1 to %d "
                              "characters", MAX_ID);
        }
        if (json_integer_value(json_object_get(o, "amount_minor")) <= 0) {
            snprintf(f, sizeof(f), "orders[%zu].amount_minor", i);
            return ks_err_set(err, KS_EINVAL, 0, f, "amount_minor must be greater than zero");
        }
        if (!cur || ks_money_exponent(cur) < 0) {
            snprintf(f, sizeof(f), "orders[%zu].currency", i);
            return ks_err_set(err, KS_EINVAL, 0, f, "unknown currency %.8s", cur ? cur : "");
        }
        if (risk_method_parse(str_field(o, "method")) < 0) {
            snprintf(f, sizeof(f), "orders[%zu].method", i);
            return ks_err_set(err, KS_EINVAL, 0, f, "unknown method");
        }
    }
    return KS_OK;
}

static enum ks_code validate_payout(json_t *v, struct ks_err *err)
{
    static const char *const ids[] = {"partner_id", "payout_id", "seller_id",
                                      "destination_account"};
    const char *cur = str_field(v, "currency"), *ch = str_field(v, "channel");

    for (size_t i = 0; i < 4; i++)
        if (!id_ok(str_field(v, ids[i])))
            return ks_err_set(err, KS_EINVAL, 0, ids[i], "%s must have 1 to %d characters",
                              ids[i], MAX_ID);
    if (validate_at(v, err) != KS_OK)
        return err->code;
    if (json_integer_value(json_object_get(v, "amount_minor")) <= 0)
        return ks_err_set(err, KS_EINVAL, 0, "amount_minor",
                          "amount_minor must be greater than zero");
    if (!cur || ks_money_exponent(cur) < 0)
        return ks_err_set(err, KS_EINVAL, 0, "currency", "unknown currency %.8s",
                          cur ? cur : "");
    if (!ch || (strcmp(ch, "BANK_ACCOUNT") != 0 && strcmp(ch, "EWALLET") != 0))
        return ks_err_set(err, KS_EINVAL, 0, "channel", "unknown channel");
    return KS_OK;
}

static enum ks_code validate(const struct ks_msg *m, void *ctx, struct ks_err *err)
{
    (void)ctx;
    if (strcmp(m->schema, SCHEMA_PAYMENT) == 0)
        return validate_payment(m->value, err);
    if (strcmp(m->schema, SCHEMA_PAYOUT) == 0)
        return validate_payout(m->value, err);
    return ks_err_set(err, KS_EINVAL, 0, NULL, "unexpected schema %s", m->schema);
}

/* --- helpers ----------------------------------------------------------------------------- */

static void add_text(struct ks_pgarr_bin *a, const char *s)
{
    if (s)
        ks_pgarr_bin_bytes(a, s, strlen(s));
    else
        ks_pgarr_bin_bytes(a, NULL, 0);
}

static enum ks_code grow(void **p, size_t *cap, size_t want, size_t size, struct ks_err *err)
{
    void *np;
    size_t n = *cap ? *cap : 64;

    if (want <= *cap)
        return KS_OK;
    while (n < want)
        n *= 2;
    if (!(np = realloc(*p, n * size)))
        return ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
    *p = np;
    *cap = n;
    return KS_OK;
}

/* "A,B" of the verdict's codes (which) or rule ids */
static void join(const struct risk_verdict *v, int rules, char *buf, size_t len)
{
    size_t at = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < v->n && at < len; i++)
        at += (size_t)snprintf(buf + at, len - at, "%s%s", i ? "," : "",
                               rules ? v->rule[i] : v->code[i]);
}

static enum ks_code params_of(struct ks_pgarr_bin *a, size_t n, const char **params, int *lens,
                              int *fmts, struct ks_err *err)
{
    for (size_t k = 0; k < n; k++) {
        if (!(params[k] = ks_pgarr_bin_data(&a[k], &lens[k])))
            return ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
        fmts[k] = 1;
    }
    return KS_OK;
}

static enum ks_code exec(PGconn *pg, struct ks_pg_stmt *q, const char **params, int *lens,
                         int *fmts, const char *what, PGresult **out, struct ks_err *err)
{
    *out = ks_pg_exec(pg, q, params, lens, fmts, 0);
    return ks_pg_check(pg, *out, PGRES_TUPLES_OK, what, err);
}

/* Runs the plain form of a decisions statement under a savepoint, and on a unique
 * violation the ON CONFLICT form (the SQL_PAYMENTS comment says why two forms). */
static enum ks_code insert_decisions(PGconn *pg, struct ks_pg_stmt *plain,
                                     struct ks_pg_stmt *again, const char **params, int *lens,
                                     int *fmts, const char *what, PGresult **out,
                                     struct ks_err *err)
{
    PGresult *res = PQexec(pg, "SAVEPOINT risk_decide");
    enum ks_code rc = ks_pg_check(pg, res, PGRES_COMMAND_OK, "savepoint", err);
    const char *st;

    PQclear(res);
    if (rc != KS_OK)
        return rc;
    *out = ks_pg_exec(pg, plain, params, lens, fmts, 0);
    st = PQresultErrorField(*out, PG_DIAG_SQLSTATE);
    if (PQresultStatus(*out) != PGRES_TUPLES_OK && st && strcmp(st, "23505") == 0) {
        PQclear(*out);
        *out = NULL;
        res = PQexec(pg, "ROLLBACK TO SAVEPOINT risk_decide");
        rc = ks_pg_check(pg, res, PGRES_COMMAND_OK, "rollback to savepoint", err);
        PQclear(res);
        if (rc != KS_OK)
            return rc;
        *out = ks_pg_exec(pg, again, params, lens, fmts, 0);
    }
    if ((rc = ks_pg_check(pg, *out, PGRES_TUPLES_OK, what, err)) != KS_OK)
        return rc;
    res = PQexec(pg, "RELEASE SAVEPOINT risk_decide");
    rc = ks_pg_check(pg, res, PGRES_COMMAND_OK, "release savepoint", err);
    PQclear(res);
    return rc;
}

/* --- the PspCommand ------------------------------------------------------------------- */

static void cmd_release(struct cmd *c)
{
    json_decref(c->v);
    memset(c, 0, sizeof(*c));
}

static enum ks_code cmd_init(struct cmd *c, int payout, struct ks_err *err)
{
    c->v = json_pack("{s:s, s:I, s:s, s:s, s:s, s:s?, s:s?, s:n, s:s?, s:s, s:s, s:I, s:s, "
                     "s:s, s:i, s:{}}",
                     "message_id", "", "occurred_at", (json_int_t)0, "partner_id", "",
                     "command_id", "", "kind", payout ? "PAYOUT" : "CHARGE", "payment_id",
                     payout ? NULL : "", "order_id", payout ? NULL : "", "refund_id",
                     "payout_id", payout ? "" : NULL, "psp", "", "psp_idempotency_key", "",
                     "amount_minor", (json_int_t)0, "currency", "", "method", "CARD",
                     "attempt", 1, "details");
    if (!c->v)
        return ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
    c->details = json_object_get(c->v, "details");
    c->message_id = json_object_get(c->v, "message_id");
    c->occurred_at = json_object_get(c->v, "occurred_at");
    c->partner = json_object_get(c->v, "partner_id");
    c->command_id = json_object_get(c->v, "command_id");
    c->subject = json_object_get(c->v, payout ? "payout_id" : "payment_id");
    c->order = payout ? NULL : json_object_get(c->v, "order_id");
    c->psp = json_object_get(c->v, "psp");
    c->key = json_object_get(c->v, "psp_idempotency_key");
    c->amount = json_object_get(c->v, "amount_minor");
    c->currency = json_object_get(c->v, "currency");
    c->method = json_object_get(c->v, "method");
    return KS_OK;
}

/* s = v; 0 or -1 on no memory. Left alone when it is v already: json_string_set copies,
 * and the partner, PSP, currency and method mostly repeat from one command to the next. */
static int set_str(json_t *s, const char *v)
{
    return strcmp(json_string_value(s), v) == 0 ? 0 : json_string_set(s, v);
}

/* details[name] = v, or no such member when v is NULL; 0 or -1 on no memory */
static int detail(json_t *details, const char *name, const char *v)
{
    json_t *cur = json_object_get(details, name);

    if (!v)
        return cur ? json_object_del(details, name) : 0;
    return cur ? set_str(cur, v) : json_object_set_new(details, name, json_string(v));
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Fills r->charge for order o of payment pa. The command id and the idempotency key the
 * executor sends to the PSP derive from the order id: the same on every replay and every
 * retry; the command id leads with the order id's time bits (the journal's primary key
 * takes it at its end), the key stays the plain hash the PSP has always been sent.
 * message_id is left to the caller. */
static enum ks_code fill_charge(struct risk *r, const struct pay *pa, const struct risk_order *o,
                                int64_t at, struct ks_err *err)
{
    struct cmd *c = &r->charge;
    char cid[KS_ID_LEN], key[KS_ID_LEN];
    const struct risk_payment *p = &pa->p;

    ks_id_derive_after("cmd", "psp-command", cid, o->order_id, "CHARGE", NULL);
    ks_id_derive("idk", "psp-idempotency", key, "CHARGE", o->order_id, NULL);
    json_integer_set(c->occurred_at, at);
    json_integer_set(c->amount, o->amount);
    if (set_str(c->partner, p->partner) || json_string_set(c->command_id, cid) ||
        json_string_set(c->subject, p->payment_id) || json_string_set(c->order, o->order_id) ||
        set_str(c->psp, o->psp ? o->psp : r->psp_default) || json_string_set(c->key, key) ||
        set_str(c->currency, o->currency) || set_str(c->method, risk_method_names[o->method]) ||
        detail(c->details, "buyer_id", p->buyer) ||
        detail(c->details, "checkout_id", p->checkout) ||
        detail(c->details, "seller_id", o->seller) ||
        detail(c->details, "payment_token", o->token) ||
        detail(c->details, "bank_code", o->bank_code) ||
        detail(c->details, "ewallet_channel", o->ewallet))
        return ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
    return KS_OK;
}

static enum ks_code fill_payout(struct risk *r, const struct pout *po, int64_t at,
                                struct ks_err *err)
{
    struct cmd *c = &r->payout;
    char cid[KS_ID_LEN], key[KS_ID_LEN];
    const struct risk_payout *p = &po->p;

    ks_id_derive_after("cmd", "psp-command", cid, p->payout_id, "PAYOUT", NULL);
    ks_id_derive("idk", "psp-idempotency", key, "PAYOUT", p->payout_id, NULL);
    json_integer_set(c->occurred_at, at);
    json_integer_set(c->amount, p->amount);
    if (set_str(c->partner, p->partner) || json_string_set(c->command_id, cid) ||
        json_string_set(c->subject, p->payout_id) || set_str(c->psp, r->psp_default) ||
        json_string_set(c->key, key) || set_str(c->currency, p->currency) ||
        set_str(c->method, risk_method_names[p->method]) ||
        detail(c->details, "seller_id", p->seller) ||
        detail(c->details, "channel", po->channel) ||
        detail(c->details, "bank_code", p->bank_code) ||
        detail(c->details, "ewallet_channel", p->ewallet) ||
        detail(c->details, "destination_account", p->account) ||
        detail(c->details, "account_holder", po->holder) ||
        detail(c->details, "description", po->descr))
        return ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
    return KS_OK;
}

/* A held output, encoded now as ks_batch_emit would (Avro single-object, the runtime's
 * headers) and added to the c arrays for risk_hold_commands: the approval that releases it
 * runs in SQL, which cannot encode Avro. Its message id derives from the input's and the
 * key, so a replayed batch holds the same bytes. */
static enum ks_code hold_command(struct risk *r, struct cmd *c, struct ks_msg *m, int ord,
                                 int n, const char *key, struct ks_err *err)
{
    char mid[KS_ID_LEN], nbuf[16], tp[64], trace[33], span[17];
    uint8_t rnd[8];
    void *val = NULL, *hb = NULL;
    size_t vlen = 0, hlen = 0;
    rd_kafka_headers_t *h = NULL;
    enum ks_code rc;

    snprintf(nbuf, sizeof(nbuf), "%d", n);
    ks_id_derive("msg", "risk", mid, m->message_id, r->out_topic, "hold", nbuf, NULL);
    if (json_string_set(c->message_id, mid))
        return ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
    if ((rc = ks_serde_encode(r->cmd_schema, c->v, &val, &vlen, err)) != KS_OK)
        return rc;
    if (ks_random_bytes(rnd, sizeof(rnd), err) != KS_OK) {
        free(val);
        return err->code;
    }
    ks_hex_encode(rnd, sizeof(rnd), span);
    snprintf(trace, sizeof(trace), "%s", m->trace_id);
    ks_trace_format(trace, span, "01", tp);
    if (!(h = ks_headers_output(mid, "risk", m->message_id, tp))) {
        free(val);
        return ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
    }
    hb = ks_outbox_headers_encode(h, &hlen);
    rd_kafka_headers_destroy(h);
    ks_pgarr_bin_int4(&r->c[C_ORD], ord);
    ks_pgarr_bin_int4(&r->c[C_N], n);
    add_text(&r->c[C_MSGID], mid);
    ks_pgarr_bin_bytes(&r->c[C_KEY], key, strlen(key));
    ks_pgarr_bin_bytes(&r->c[C_VALUE], val, vlen);
    ks_pgarr_bin_bytes(&r->c[C_HEADERS], hb, hb ? hlen : 0);
    free(val);
    free(hb);
    return KS_OK;
}

static void log_verdict(const char *kind, const char *id, const char *partner,
                        const struct risk_verdict *v)
{
    char codes[512], rules[512];

    if (v->action == RISK_APPROVE)
        return;
    join(v, 0, codes, sizeof(codes));
    join(v, 1, rules, sizeof(rules));
    ks_log(KS_LOG_INFO, v->action == RISK_REJECT ? "risk.rejected" : "risk.held",
           v->action == RISK_REJECT ? "rejected" : "held for review", "kind", kind, "id", id,
           "partner", partner, "reasons", codes, "rules", rules, NULL);
}

/* --- payments ---------------------------------------------------------------------------- */

/* Reads the batch's payments into r->pays / r->orders and runs the message-only rules. */
static enum ks_code collect_payments(struct risk *r, struct ks_batch *b, size_t *np,
                                     struct ks_err *err)
{
    size_t n = ks_batch_count(b), k = 0, no = 0;

    if (grow((void **)&r->pays, &r->cap_pays, n, sizeof(*r->pays), err) != KS_OK)
        return KS_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        struct ks_msg *m = ks_batch_msg(b, i);
        json_t *v = m->value, *orders, *md;
        struct pay *pa;
        size_t cnt;

        if (strcmp(m->schema, SCHEMA_PAYMENT) != 0)
            continue;
        orders = json_object_get(v, "orders");
        cnt = json_array_size(orders);
        if (grow((void **)&r->orders, &r->cap_orders, no + cnt, sizeof(*r->orders), err) != KS_OK)
            return KS_ENOMEM;
        pa = &r->pays[k++];
        memset(pa, 0, sizeof(*pa));
        pa->m = m;
        pa->ord0 = no;
        pa->p.partner = str_field(v, "partner_id");
        pa->p.payment_id = str_field(v, "payment_id");
        pa->p.buyer = str_field(v, "buyer_id");
        pa->p.checkout = str_field(v, "checkout_id");
        pa->p.at_us = json_integer_value(json_object_get(v, "occurred_at"));
        md = json_object_get(v, "metadata");
        pa->p.card_fp = str_field(md, "card_fingerprint");
        pa->p.n_orders = cnt;
        for (size_t j = 0; j < cnt; j++) {
            json_t *o = json_array_get(orders, j);
            struct risk_order *ro = &r->orders[no++];
            ro->order_id = str_field(o, "order_id");
            ro->seller = str_field(o, "seller_id");
            ro->currency = str_field(o, "currency");
            ro->token = str_field(o, "payment_token");
            ro->psp = str_field(o, "psp_preference");
            ro->bank_code = str_field(o, "bank_code");
            ro->ewallet = str_field(o, "ewallet_channel");
            ro->amount = json_integer_value(json_object_get(o, "amount_minor"));
            ro->method = risk_method_parse(str_field(o, "method"));
        }
    }
    /* orders moved while the array grew: point the payments at them now */
    for (size_t i = 0; i < k; i++) {
        r->pays[i].p.orders = &r->orders[r->pays[i].ord0];
        risk_check_payment(r->rules, &r->pays[i].p, &r->pays[i].v);
    }
    *np = k;
    return KS_OK;
}

static int cmp_hev(const void *a, const void *b)
{
    const struct hev *x = a, *y = b;
    return x->kid != y->kid ? (x->kid < y->kid ? -1 : 1) : 0;
}

/* The text arrays of a history row, "{IDR,USD}" and "{150000,25}", as pairs in r->tmp;
 * each currency is copied to r->cur and, as r->cur may move while it grows, the pair
 * holds its offset there until every row is read. Returns the count, -1 on no memory. */
static long parse_amounts(struct risk *r, const char *curs, const char *amts, size_t *ncur,
                          struct ks_err *err)
{
    long n = 0;

    curs += *curs == '{';
    amts += *amts == '{';
    while (*curs && *curs != '}') {
        size_t len = strcspn(curs, ",}");
        char *end;
        if (grow((void **)&r->cur, &r->cap_cur, *ncur + 4, 1, err) != KS_OK ||
            grow((void **)&r->tmp, &r->cap_tmp, (size_t)n + 1, sizeof(*r->tmp), err) != KS_OK)
            return -1;
        snprintf(r->cur + *ncur, 4, "%.*s", (int)(len < 3 ? len : 3), curs);
        r->tmp[n].currency = (const char *)(uintptr_t)*ncur;
        r->tmp[n].minor = strtoll(amts, &end, 10);
        amts = *end == ',' ? end + 1 : end;
        curs += len + (curs[len] == ',');
        *ncur += 4;
        n++;
    }
    return n;
}

/* The batch's payments grouped by partner and buyer (by_buyer) or partner and checkout:
 * out(i) = the position of the first payment of i's group. An open-addressing table of
 * positions, as the batch has no such index of its own. */
static enum ks_code group(struct risk *r, size_t np, int by_buyer, struct ks_err *err)
{
    size_t cap = 16, mask;

    while (cap < 2 * np)
        cap *= 2;
    if (grow((void **)&r->slots, &r->cap_slots, cap, sizeof(*r->slots), err) != KS_OK)
        return KS_ENOMEM;
    mask = cap - 1;
    memset(r->slots, 0xff, cap * sizeof(*r->slots));
    for (size_t i = 0; i < np; i++) {
        struct pay *pa = &r->pays[i];
        const char *second = by_buyer ? pa->p.buyer : pa->p.checkout;
        size_t h = ks_hash_str(ks_hash_str(KS_HASH_INIT, pa->p.partner), second) & mask;
        int *out = by_buyer ? &pa->kid : &r->last[i];
        for (;; h = (h + 1) & mask) {
            const struct pay *q;
            if (r->slots[h] < 0) {
                r->slots[h] = (int)i;
                *out = (int)i;
                break;
            }
            q = &r->pays[r->slots[h]];
            if (strcmp(q->p.partner, pa->p.partner) == 0 &&
                strcmp(by_buyer ? q->p.buyer : q->p.checkout, second) == 0) {
                *out = r->slots[h];
                break;
            }
        }
    }
    return KS_OK;
}

/* The velocity and new-buyer rules (SQL_HISTORY, then the windows counted here). A payment
 * stays ST_DUPLICATE when it repeats a checkout of the batch or of its buyer's history. */
static enum ks_code history(struct risk *r, PGconn *pg, size_t np, struct ks_err *err)
{
    const char *params[7];
    int lens[7], fmts[7];
    size_t nv = r->rules->n_velocity, nev = 0, namt = 0, ncur = 0;
    PGresult *res = NULL;
    enum ks_code rc;

    if (grow((void **)&r->first, &r->cap_first, np, sizeof(*r->first), err) != KS_OK ||
        grow((void **)&r->from, &r->cap_from, np, sizeof(*r->from), err) != KS_OK ||
        grow((void **)&r->last, &r->cap_last, np, sizeof(*r->last), err) != KS_OK ||
        grow((void **)&r->stats, &r->cap_stats, 2 * nv + 1, sizeof(*r->stats), err) != KS_OK)
        return KS_ENOMEM;
    for (int k = 0; k < H__N; k++)
        ks_pgarr_bin_reset(&r->h[k]);
    /* r->last: the first payment of each checkout, until the chains below use it */
    if ((rc = group(r, np, 1, err)) != KS_OK || (rc = group(r, np, 0, err)) != KS_OK)
        return rc;
    /* r->first: 1 for a buyer (by kid) whose first payment is needed, until reset below;
     * r->from: the buyer's earliest payment in the batch */
    for (size_t i = 0; i < np; i++) {
        r->first[i] = 0;
        r->from[i] = INT64_MAX;
    }
    for (size_t i = 0; i < np; i++) {
        struct pay *pa = &r->pays[i];
        pa->state = r->last[i] == (int)i ? ST_CANDIDATE : ST_DUPLICATE;
        if (pa->state == ST_CANDIDATE && r->rules->new_buyer &&
            risk_needs_first_seen(r->rules, &pa->p))
            r->first[pa->kid] = 1;
        if (pa->p.at_us < r->from[pa->kid])
            r->from[pa->kid] = pa->p.at_us;
    }
    for (size_t i = 0; i < np; i++) {
        struct pay *pa = &r->pays[i];
        if (pa->kid == (int)i && nv) {
            ks_pgarr_bin_int4(&r->h[H_KID], (int32_t)i);
            add_text(&r->h[H_KPARTNER], pa->p.partner);
            add_text(&r->h[H_KBUYER], pa->p.buyer);
            /* what is older than the buyer's earliest payment less the longest window is
             * in no window of its payments (no overflow: validate_at bounds the times to
             * 1970-9999, rules.c the windows to a year) */
            ks_pgarr_bin_int8(&r->h[H_KFROM], r->from[i] - r->rules->max_window_us);
        }
        if (pa->kid == (int)i && r->first[i]) {
            ks_pgarr_bin_int4(&r->h[H_FKID], (int32_t)i);
            add_text(&r->h[H_FPARTNER], pa->p.partner);
            add_text(&r->h[H_FBUYER], pa->p.buyer);
        }
        r->first[i] = INT64_MAX;
        r->last[i] = -1;
    }
    if ((rc = params_of(r->h, H__N, params, lens, fmts, err)) != KS_OK)
        return rc;
    if ((rc = exec(pg, &r->q_history, params, lens, fmts, "risk history", &res, err)) != KS_OK)
        goto out;
    for (int t = 0; t < PQntuples(res); t++) {
        long kind = strtol(PQgetvalue(res, t, 0), NULL, 10);
        long kid = strtol(PQgetvalue(res, t, 1), NULL, 10);
        const char *co;
        size_t colen;
        long n;
        if (kid < 0 || (size_t)kid >= np)
            continue;
        if (kind == 2) {
            if (!PQgetisnull(res, t, 2))
                r->first[kid] = strtoll(PQgetvalue(res, t, 2), NULL, 10);
            continue;
        }
        n = parse_amounts(r, PQgetvalue(res, t, 3), PQgetvalue(res, t, 4), &ncur, err);
        co = PQgetvalue(res, t, 5);
        colen = (size_t)PQgetlength(res, t, 5) + 1;
        if (n < 0 || grow((void **)&r->ev, &r->cap_ev, nev + 1, sizeof(*r->ev), err) != KS_OK ||
            grow((void **)&r->amt, &r->cap_amt, namt + (size_t)n, sizeof(*r->amt), err) != KS_OK ||
            grow((void **)&r->cur, &r->cap_cur, ncur + colen, 1, err) != KS_OK) {
            rc = KS_ENOMEM;
            goto out;
        }
        r->ev[nev].kid = (int)kid;
        r->ev[nev].at = strtoll(PQgetvalue(res, t, 2), NULL, 10);
        r->ev[nev].off = namt;
        r->ev[nev].n = (size_t)n;
        r->ev[nev].checkout = ncur;
        memcpy(r->cur + ncur, co, colen);
        ncur += colen;
        memcpy(&r->amt[namt], r->tmp, (size_t)n * sizeof(*r->amt));
        namt += (size_t)n;
        nev++;
    }
    for (size_t k = 0; k < namt; k++) /* offsets into r->cur become pointers */
        r->amt[k].currency = r->cur + (uintptr_t)r->amt[k].currency;
    qsort(r->ev, nev, sizeof(*r->ev), cmp_hev);
    for (size_t i = 0; i < np; i++) {
        struct pay *pa = &r->pays[i];
        struct risk_stats st = {r->stats, r->stats + nv, pa->p.at_us};
        const struct hev *e = NULL, *end;
        struct hev key;
        size_t maxo = pa->p.n_orders;

        if (pa->state != ST_CANDIDATE)
            continue;
        key.kid = pa->kid;
        if (nev && (e = bsearch(&key, r->ev, nev, sizeof(*r->ev), cmp_hev)))
            while (e > r->ev && e[-1].kid == pa->kid)
                e--;
        for (end = e; end && end < r->ev + nev && end->kid == pa->kid; end++)
            if (strcmp(r->cur + end->checkout, pa->p.checkout) == 0)
                break;
        if (end && end < r->ev + nev && end->kid == pa->kid) {
            pa->state = ST_DUPLICATE; /* decided before: a redelivery */
            continue;
        }
        pa->prev = r->last[pa->kid];
        r->last[pa->kid] = (int)i;
        for (int j = pa->prev; j >= 0; j = r->pays[j].prev) {
            if (r->pays[j].p.at_us < st.first_us)
                st.first_us = r->pays[j].p.at_us;
            if (r->pays[j].p.n_orders > maxo)
                maxo = r->pays[j].p.n_orders;
        }
        if (r->first[pa->kid] < st.first_us)
            st.first_us = r->first[pa->kid];
        if (grow((void **)&r->tmp, &r->cap_tmp, maxo, sizeof(*r->tmp), err) != KS_OK) {
            rc = KS_ENOMEM;
            goto out;
        }
        for (const struct risk_rule *ru = r->rules->rule; ru < r->rules->rule + r->rules->n; ru++) {
            int64_t *cnt, *sum;
            if (ru->type != RT_VELOCITY)
                continue;
            cnt = &r->stats[ru->velocity_idx];
            sum = &r->stats[nv + (size_t)ru->velocity_idx];
            *cnt = *sum = 0;
            /* the payment itself, then the batch's earlier payments of the buyer */
            for (int j = (int)i; j >= 0; j = r->pays[j].prev) {
                const struct pay *pj = &r->pays[j];
                for (size_t o = 0; o < pj->p.n_orders; o++) {
                    r->tmp[o].currency = pj->p.orders[o].currency;
                    r->tmp[o].minor = pj->p.orders[o].amount;
                }
                risk_window_add(ru, pa->p.at_us, pj->p.at_us, r->tmp, pj->p.n_orders, cnt, sum);
            }
            for (const struct hev *h = e; h && h < r->ev + nev && h->kid == pa->kid; h++)
                risk_window_add(ru, pa->p.at_us, h->at, &r->amt[h->off], h->n, cnt, sum);
        }
        risk_check_history(r->rules, &pa->p, &st, &pa->v);
    }
out:
    PQclear(res);
    return rc;
}

/* "IDR" and "150000" (or "IDR,USD" and "150000,25"): the payment's totals per currency */
static void totals(const struct risk_payment *p, char *cur, size_t clen, char *amt, size_t alen)
{
    size_t ca = 0, aa = 0;

    cur[0] = amt[0] = '\0';
    for (size_t j = 0; j < p->n_orders; j++) {
        int64_t t = 0;
        size_t k;
        for (k = 0; k < j && strcmp(p->orders[k].currency, p->orders[j].currency) != 0; k++)
            ;
        if (k < j)
            continue; /* this currency was summed already */
        for (k = j; k < p->n_orders; k++)
            if (strcmp(p->orders[k].currency, p->orders[j].currency) == 0)
                t += p->orders[k].amount;
        if (ca < clen)
            ca += (size_t)snprintf(cur + ca, clen - ca, "%s%s", j ? "," : "",
                                   p->orders[j].currency);
        if (aa < alen)
            aa += (size_t)snprintf(amt + aa, alen - aa, "%s%" PRId64, j ? "," : "", t);
    }
}

static enum ks_code decide_payments(struct risk *r, struct ks_batch *b, PGconn *pg, size_t np,
                                    struct ks_err *err)
{
    const char *params[28];
    int lens[28], fmts[28];
    PGresult *res = NULL;
    enum ks_code rc = KS_OK;
    size_t live = 0;
    int64_t at = now_us();

    for (int k = 0; k < P__N; k++)
        ks_pgarr_bin_reset(&r->p[k]);
    for (int k = 0; k < C__N; k++)
        ks_pgarr_bin_reset(&r->c[k]);
    for (size_t i = 0; i < np; i++) {
        struct pay *pa = &r->pays[i];
        char codes[512], rules[512], cur[2048], amt[2048];
        char *md = NULL;
        json_t *mdj;

        if (pa->state != ST_CANDIDATE)
            continue;
        live++;
        join(&pa->v, 0, codes, sizeof(codes));
        join(&pa->v, 1, rules, sizeof(rules));
        totals(&pa->p, cur, sizeof(cur), amt, sizeof(amt));
        /* the read model's rows: a rejected or held payment's always, an approved one's
         * when the ingress has not written them (SQL_PAYMENTS, model) */
        mdj = json_object_get(pa->m->value, "metadata");
        if (json_object_size(mdj) && !(md = json_dumps(mdj, JSON_COMPACT)))
            return ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
        ks_pgarr_bin_int4(&r->p[P_ORD], (int32_t)i);
        add_text(&r->p[P_PARTNER], pa->p.partner);
        add_text(&r->p[P_CHECKOUT], pa->p.checkout);
        add_text(&r->p[P_PAYMENT], pa->p.payment_id);
        add_text(&r->p[P_BUYER], pa->p.buyer);
        ks_pgarr_bin_int8(&r->p[P_AT], pa->p.at_us);
        add_text(&r->p[P_CUR], cur);
        add_text(&r->p[P_AMT], amt);
        add_text(&r->p[P_DECISION], risk_action_names[pa->v.action]);
        add_text(&r->p[P_REASONS], pa->v.n ? codes : NULL);
        add_text(&r->p[P_RULES], pa->v.n ? rules : NULL);
        add_text(&r->p[P_METADATA], md);
        free(md);
        for (size_t j = 0; j < pa->p.n_orders; j++) {
            const struct risk_order *o = &pa->p.orders[j];
            ks_pgarr_bin_int4(&r->p[P_OORD], (int32_t)i);
            add_text(&r->p[P_OID], o->order_id);
            ks_pgarr_bin_int4(&r->p[P_OSEQ], (int32_t)j);
            add_text(&r->p[P_OSELLER], o->seller);
            ks_pgarr_bin_int8(&r->p[P_OAMT], o->amount);
            add_text(&r->p[P_OCUR], o->currency);
            add_text(&r->p[P_OMETHOD], risk_method_names[o->method]);
            add_text(&r->p[P_OPSP], o->psp);
            if (pa->v.action == RISK_REVIEW &&
                ((rc = fill_charge(r, pa, o, at, err)) != KS_OK ||
                 (rc = hold_command(r, &r->charge, pa->m, (int)i, (int)j, o->order_id, err)) !=
                     KS_OK))
                return rc;
        }
    }
    if (live == 0)
        return KS_OK;
    if ((rc = params_of(r->p, P__N, params, lens, fmts, err)) != KS_OK ||
        (rc = params_of(r->c, C__N, params + P__N, lens + P__N, fmts + P__N, err)) != KS_OK)
        return rc;
    params[26] = r->out_topic;
    params[27] = r->owner;
    fmts[26] = fmts[27] = 0;
    if ((rc = insert_decisions(pg, &r->q_payments, &r->q_payments_again, params, lens,
                               fmts, "risk payments", &res, err)) != KS_OK)
        goto out;
    for (int t = 0; t < PQntuples(res); t++) {
        long i = strtol(PQgetvalue(res, t, 0), NULL, 10);
        if (i >= 0 && (size_t)i < np)
            r->pays[i].state = ST_DECIDED;
    }
    /* outputs only for what was decided now: a replay or a second copy emits nothing */
    for (size_t i = 0; i < np; i++) {
        struct pay *pa = &r->pays[i];
        if (pa->state != ST_DECIDED)
            continue;
        log_verdict("payment", pa->p.payment_id, pa->p.partner, &pa->v);
        if (pa->v.action != RISK_APPROVE)
            continue;
        for (size_t j = 0; j < pa->p.n_orders; j++) {
            const struct risk_order *o = &pa->p.orders[j];
            char mid[KS_ID_LEN];
            ks_batch_next_id(b, pa->m, r->out_topic, mid);
            if ((rc = fill_charge(r, pa, o, at, err)) != KS_OK)
                goto out;
            if (json_string_set(r->charge.message_id, mid)) {
                rc = ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
                goto out;
            }
            if ((rc = ks_batch_emit(b, pa->m, r->out_topic, o->order_id, strlen(o->order_id),
                                    SCHEMA_COMMAND, r->charge.v, err)) != KS_OK)
                goto out;
        }
    }
out:
    PQclear(res);
    return rc;
}

/* --- payouts ----------------------------------------------------------------------------- */

/* The payouts approved now (r->pouts[0..k-1] in ST_DECIDED with APPROVE) get their funds
 * held by the ledger in this transaction (SQL_FUND); one the seller's wallet cannot cover
 * becomes ST_UNFUNDED (FAILED, INSUFFICIENT_FUNDS, written by the function): no command. */
static enum ks_code fund_payouts(struct risk *r, PGconn *pg, size_t k, struct ks_err *err)
{
    const char *p;
    int len, fmt = 1, any = 0;
    PGresult *res;
    enum ks_code rc;

    ks_pgarr_bin_reset(&r->fund);
    for (size_t i = 0; i < k; i++)
        if (r->pouts[i].state == ST_DECIDED && r->pouts[i].v.action == RISK_APPROVE) {
            add_text(&r->fund, r->pouts[i].p.payout_id);
            any = 1;
        }
    if (!any)
        return KS_OK;
    if (!(p = ks_pgarr_bin_data(&r->fund, &len)))
        return ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
    res = ks_pg_exec(pg, &r->q_fund, &p, &len, &fmt, 0);
    if ((rc = ks_pg_check(pg, res, PGRES_TUPLES_OK, "hold payout funds", err)) != KS_OK)
        goto out;
    for (int t = 0; t < PQntuples(res); t++) {
        const char *id = PQgetvalue(res, t, 0), *result = PQgetvalue(res, t, 1);
        if (strcmp(result, "held") == 0 || strcmp(result, "already_held") == 0)
            continue;
        if (strcmp(result, "insufficient_funds") != 0) {
            /* not_found: the row SQL_PAYOUTS wrote is missing; never emit unfunded */
            rc = ks_err_set(err, KS_ESTATE, 0, NULL, "payout %s: ledger answered %s", id,
                            result);
            goto out;
        }
        for (size_t i = 0; i < k; i++)
            if (r->pouts[i].state == ST_DECIDED && strcmp(r->pouts[i].p.payout_id, id) == 0)
                r->pouts[i].state = ST_UNFUNDED;
    }
out:
    PQclear(res);
    return rc;
}

static enum ks_code decide_payouts(struct risk *r, struct ks_batch *b, PGconn *pg,
                                   struct ks_err *err)
{
    const char *params[24];
    int lens[24], fmts[24];
    PGresult *res = NULL;
    enum ks_code rc = KS_OK;
    size_t n = ks_batch_count(b), k = 0;
    int64_t at = now_us();

    if (grow((void **)&r->pouts, &r->cap_pouts, n, sizeof(*r->pouts), err) != KS_OK)
        return KS_ENOMEM;
    for (int c = 0; c < O__N; c++)
        ks_pgarr_bin_reset(&r->o[c]);
    for (int c = 0; c < C__N; c++)
        ks_pgarr_bin_reset(&r->c[c]);
    for (size_t i = 0; i < n; i++) {
        struct ks_msg *m = ks_batch_msg(b, i);
        json_t *v = m->value;
        struct pout *po;
        char codes[512], rules[512];

        if (strcmp(m->schema, SCHEMA_PAYOUT) != 0)
            continue;
        po = &r->pouts[k];
        memset(po, 0, sizeof(*po));
        po->m = m;
        po->p.partner = str_field(v, "partner_id");
        po->p.payout_id = str_field(v, "payout_id");
        po->p.seller = str_field(v, "seller_id");
        po->p.currency = str_field(v, "currency");
        po->p.account = str_field(v, "destination_account");
        po->p.bank_code = str_field(v, "bank_code");
        po->p.ewallet = str_field(v, "ewallet_channel");
        po->p.amount = json_integer_value(json_object_get(v, "amount_minor"));
        po->channel = str_field(v, "channel");
        po->p.method = strcmp(po->channel, "EWALLET") == 0 ? RM_EWALLET : RM_BANK_TRANSFER;
        po->holder = str_field(v, "account_holder");
        po->descr = str_field(v, "description");
        risk_check_payout(r->rules, &po->p, &po->v);
        join(&po->v, 0, codes, sizeof(codes));
        join(&po->v, 1, rules, sizeof(rules));
        ks_pgarr_bin_int4(&r->o[O_ORD], (int32_t)k);
        add_text(&r->o[O_PAYOUT], po->p.payout_id);
        add_text(&r->o[O_PARTNER], po->p.partner);
        add_text(&r->o[O_SELLER], po->p.seller);
        ks_pgarr_bin_int8(&r->o[O_AT], json_integer_value(json_object_get(v, "occurred_at")));
        ks_pgarr_bin_int8(&r->o[O_AMT], po->p.amount);
        add_text(&r->o[O_CUR], po->p.currency);
        add_text(&r->o[O_DECISION], risk_action_names[po->v.action]);
        add_text(&r->o[O_REASONS], po->v.n ? codes : NULL);
        add_text(&r->o[O_RULES], po->v.n ? rules : NULL);
        add_text(&r->o[O_CHANNEL], po->channel);
        add_text(&r->o[O_BANK], po->p.bank_code);
        add_text(&r->o[O_EWALLET], po->p.ewallet);
        add_text(&r->o[O_DEST], po->p.account);
        add_text(&r->o[O_HOLDER], po->holder);
        add_text(&r->o[O_DESCR], po->descr);
        if (po->v.action == RISK_REVIEW &&
            ((rc = fill_payout(r, po, at, err)) != KS_OK ||
             (rc = hold_command(r, &r->payout, m, (int)k, 0, po->p.payout_id, err)) != KS_OK))
            return rc;
        k++;
    }
    if (k == 0)
        return KS_OK;
    if ((rc = params_of(r->o, O__N, params, lens, fmts, err)) != KS_OK ||
        (rc = params_of(r->c, C__N, params + O__N, lens + O__N, fmts + O__N, err)) != KS_OK)
        return rc;
    params[22] = r->out_topic;
    params[23] = r->owner;
    fmts[22] = fmts[23] = 0;
    if ((rc = insert_decisions(pg, &r->q_payouts, &r->q_payouts_again, params, lens,
                               fmts, "risk payouts", &res, err)) != KS_OK)
        goto out;
    for (int t = 0; t < PQntuples(res); t++) {
        long i = strtol(PQgetvalue(res, t, 0), NULL, 10);
        if (i >= 0 && (size_t)i < k)
            r->pouts[i].state = ST_DECIDED;
    }
    if ((rc = fund_payouts(r, pg, k, err)) != KS_OK)
        goto out;
    for (size_t i = 0; i < k; i++) {
        struct pout *po = &r->pouts[i];
        char mid[KS_ID_LEN];
        if (po->state == ST_UNFUNDED)
            ks_log(KS_LOG_INFO, "risk.payout.unfunded",
                   "approved, refused by the ledger: insufficient funds", "id",
                   po->p.payout_id, "partner", po->p.partner, NULL);
        if (po->state != ST_DECIDED)
            continue;
        log_verdict("payout", po->p.payout_id, po->p.partner, &po->v);
        if (po->v.action != RISK_APPROVE)
            continue;
        ks_batch_next_id(b, po->m, r->out_topic, mid);
        if ((rc = fill_payout(r, po, at, err)) != KS_OK)
            goto out;
        if (json_string_set(r->payout.message_id, mid)) {
            rc = ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
            goto out;
        }
        if ((rc = ks_batch_emit(b, po->m, r->out_topic, po->p.payout_id,
                                strlen(po->p.payout_id), SCHEMA_COMMAND, r->payout.v, err)) !=
            KS_OK)
            goto out;
    }
out:
    PQclear(res);
    return rc;
}

/* --- the batch --------------------------------------------------------------------------- */

static enum ks_code start(struct risk *r, struct ks_batch *b, struct ks_err *err);

static enum ks_code decide_batch(struct ks_batch *b, PGconn *pg, void *ctx, struct ks_err *err)
{
    struct risk *r = ctx;
    size_t np = 0;
    enum ks_code rc;

    if ((rc = start(r, b, err)) != KS_OK || (rc = collect_payments(r, b, &np, err)) != KS_OK)
        return rc;
    if (np && (r->rules->n_velocity || r->rules->new_buyer) &&
        (rc = history(r, pg, np, err)) != KS_OK)
        return rc;
    if (np && (rc = decide_payments(r, b, pg, np, err)) != KS_OK)
        return rc;
    return decide_payouts(r, b, pg, err);
}

/* --- main -------------------------------------------------------------------------------- */

static void report_rule(void *ctx, const char *rule, const char *field, const char *msg)
{
    const char *path = ctx;
    ks_log(KS_LOG_ERROR, "risk.rule.invalid", msg, "rule", rule, "field", field, "file", path,
           NULL);
}

/* the rules file named by the configuration, or NULL after reporting every problem */
static struct risk_rules *load_rules(const struct ks_config *cfg)
{
    const char *path = ks_config_str(cfg, "risk.rules");
    int np = 0;
    struct risk_rules *rs = risk_rules_load(path, report_rule, (void *)path, &np);

    if (!rs)
        ks_logf(KS_LOG_ERROR, "risk.rules.rejected", "%d problem%s in the rules file %s", np,
                np == 1 ? "" : "s", path ? path : "");
    return rs;
}

/* What depends on the rules alone, once at start. */
static void prepare(struct risk *r)
{
    for (int k = 0; k < H__N; k++)
        ks_pgarr_bin_init(&r->h[k], h_oid[k]);
    for (int k = 0; k < P__N; k++)
        ks_pgarr_bin_init(&r->p[k], p_oid[k]);
    for (int k = 0; k < O__N; k++)
        ks_pgarr_bin_init(&r->o[k], o_oid[k]);
    for (int k = 0; k < C__N; k++)
        ks_pgarr_bin_init(&r->c[k], c_oid[k]);
    ks_pgarr_bin_init(&r->fund, KS_OID_TEXT);
}

/* What depends on the running worker (its settings, the serde catalogue), at the first
 * batch. */
static enum ks_code start(struct risk *r, struct ks_batch *b, struct ks_err *err)
{
    const struct ks_config *cfg = ks_worker_config(ks_batch_worker(b));

    if (r->charge.v)
        return KS_OK;
    r->out_topic = ks_config_str(cfg, "risk.output_topic");
    r->psp_default = ks_config_str(cfg, "risk.psp_default");
    /* the outbox owner the runtime gives this group's rows (lib/worker.c) */
    snprintf(r->owner, sizeof(r->owner), "risk/%s", ks_config_str(cfg, "worker.group"));
    if (!(r->cmd_schema = ks_schema_by_name(SCHEMA_COMMAND)))
        return ks_err_set(err, KS_ENOTFOUND, 0, NULL, "no schema %s", SCHEMA_COMMAND);
    if (cmd_init(&r->payout, 1, err) != KS_OK || cmd_init(&r->charge, 0, err) != KS_OK) {
        cmd_release(&r->payout);
        return KS_ENOMEM;
    }
    return KS_OK;
}

static void release(struct risk *r)
{
    for (int k = 0; k < H__N; k++)
        ks_pgarr_bin_release(&r->h[k]);
    for (int k = 0; k < P__N; k++)
        ks_pgarr_bin_release(&r->p[k]);
    for (int k = 0; k < O__N; k++)
        ks_pgarr_bin_release(&r->o[k]);
    for (int k = 0; k < C__N; k++)
        ks_pgarr_bin_release(&r->c[k]);
    ks_pgarr_bin_release(&r->fund);
    free(r->pays);
    free(r->pouts);
    free(r->orders);
    free(r->stats);
    free(r->ev);
    free(r->amt);
    free(r->cur);
    free(r->first);
    free(r->from);
    free(r->last);
    free(r->tmp);
    free(r->slots);
    cmd_release(&r->charge);
    cmd_release(&r->payout);
    risk_rules_free(r->rules);
}

/* "-c file" as ks_worker_main takes it; 0, or -1 on anything else */
static int config_arg(int argc, char **argv, const char **path)
{
    *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
            *path = argv[++i];
        else
            return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static struct risk r = {
        .q_history = KS_PG_STMT("risk_history", SQL_HISTORY, 7),
        .q_payments = KS_PG_STMT("risk_payments", SQL_PAYMENTS, 28),
        .q_payments_again = KS_PG_STMT("risk_payments_again", SQL_PAYMENTS_AGAIN, 28),
        .q_payouts = KS_PG_STMT("risk_payouts", SQL_PAYOUTS, 24),
        .q_payouts_again = KS_PG_STMT("risk_payouts_again", SQL_PAYOUTS_AGAIN, 24),
        .q_fund = KS_PG_STMT("risk_fund", SQL_FUND, 1),
    };
    const struct ks_worker_spec spec = {
        .name = "risk",
        .group = RISK_GROUP,
        .topics = RISK_TOPICS,
        .http_port = RISK_PORT,
        .validate = validate,
        .handle_batch = decide_batch,
        .ctx = &r,
    };
    struct ks_config *cfg;
    const char *path;
    int check = 0, rc;

    if (argc > 1 && strcmp(argv[1], "holds") == 0)
        return risk_holds_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "config-doc") == 0) { /* make docs */
        ks_config_markdown(stdout, "kasir-risk (besides the common and runtime settings)",
                           risk_settings, risk_settings_count);
        return fflush(stdout) == 0 ? 0 : 1;
    }
    if (argc > 1 && strcmp(argv[1], "check-rules") == 0) {
        check = 1;
        argc--;
        argv++;
    }
    if (config_arg(argc, argv, &path) != 0) {
        fprintf(stderr, "usage: kasir-risk [check-rules] [-c config-file]\n"
                        "       kasir-risk holds list|approve|reject ... (kasir-risk holds "
                        "help)\n");
        return 2;
    }
    /* the rules are checked before anything starts: a bad file must stop the daemon at
     * once, with every problem named, not after it joined its group */
    if (!(cfg = risk_config_load(path)))
        return 2;
    r.rules = load_rules(cfg);
    if (!r.rules) {
        ks_config_free(cfg);
        return 2;
    }
    ks_logf(KS_LOG_INFO, "risk.rules.loaded", "%zu rules (%zu velocity) from %s", r.rules->n,
            r.rules->n_velocity, ks_config_str(cfg, "risk.rules"));
    if (check) {
        risk_rules_free(r.rules);
        ks_config_free(cfg);
        return 0;
    }
    prepare(&r);
    ks_config_free(cfg);
    rc = ks_worker_main(&spec, risk_settings, risk_settings_count, argc, argv);
    release(&r);
    return rc;
}
