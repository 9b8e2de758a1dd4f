/* kasir-ledger - posts kasir.psp.outcomes to the double-entry ledger (docs/LEDGER.md).
 *
 * A worker on lib/worker.h: validate + one batch handler. Each batch is one statement,
 * SQL_POST, that turns the batch's outcomes into journal entries, postings and status
 * changes (and the small insert of chain heads before it); payments of several orders
 * then get their status from ledger_payments_refresh(). Every
 * posted entry goes out as a kasir.ledger.LedgerEntry through the outbox. What keeps the
 * ledger true (balance, append-only, balances = postings, one entry per source event) is
 * enforced by PostgreSQL (840_ledger.sql, functions/ledger_*.sql); the statement only has
 * to write it right.
 *
 * `kasir-ledger verify` (verify.c) checks the hash chains, that every entry balances and
 * that every balance equals its postings, and exits non-zero naming the first violation. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/db.h"
#include "lib/log.h"
#include "lib/money.h"
#include "lib/pgarr.h"
#include "lib/worker.h"
#include "consumers/ledger/ledger.h"
#include "lib/banned.h"

/* One statement per batch, every step set-based (the posting rules are the table in
 * docs/LEDGER.md):
 *   u:     the outcomes as rows, in arrival order (ord);
 *   r:     each joined to its order, refund or payout by primary key, with what earlier
 *          outcomes of the same order in this batch said;
 *   v:     what makes it unusable on its own (the DLQ's reason);
 *   vf:    the final state its refund or payout is in (the row's, or the first usable
 *          final outcome before it in this batch);
 *   c0, c: the error that sends it to the DLQ (v's, or a contradiction of that final
 *          state), or the entry kind it posts (act), or neither (a status change only);
 *   fresh: the first outcome per source event not posted before (the exactly-once key);
 *   l:     the entry's lines, zero amounts dropped, numbered;
 *   e:     entries numbered per chain after the chain's head (locked), hashed in order
 *          by the ledger_chain window aggregate;
 * then accounts, entries, postings (whose trigger checks the balance and moves the
 * balance stripes), chain heads and the status columns are written, and the entries'
 * lines come back (with the DLQ verdicts) for the outputs. */
static const char SQL_POST[] =
    "WITH u AS ("
    "  SELECT msg, outcome_id COLLATE \"C\" AS outcome_id, kind, status,"
    "         partner COLLATE \"C\" AS partner, order_id COLLATE \"C\" AS order_id,"
    "         refund_id COLLATE \"C\" AS refund_id, payout_id COLLATE \"C\" AS payout_id,"
    "         psp COLLATE \"C\" AS psp, amount, fee, cur, chain COLLATE \"C\" AS chain,"
    "         next_action, fcode, fmsg, ord"
    "  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],"
    "              $6::text[], $7::text[], $8::text[], $9::text[], $10::bigint[],"
    "              $11::bigint[], $12::text[], $13::text[], $14::text[], $15::text[],"
    "              $16::text[])"
    "    WITH ORDINALITY AS x(msg, outcome_id, kind, status, partner, order_id, refund_id,"
    "                         payout_id, psp, amount, fee, cur, chain, next_action, fcode,"
    "                         fmsg, ord)),"
    " r AS ("
    "  SELECT u.*, o.seller_id AS o_seller, o.partner_id AS o_partner, o.currency AS o_cur,"
    "         o.status AS o_status, o.payment_id AS o_payment, o.amount_minor AS o_amount,"
    "         f.status AS f_status, f.partner_id AS f_partner, f.amount_minor AS f_amount,"
    "         f.order_id AS f_order,"
    "         p.status AS p_status, p.partner_id AS p_partner, p.seller_id AS p_seller,"
    "         p.amount_minor AS p_amount, p.currency AS p_cur,"
    "         coalesce(bool_or(u.kind = 'CHARGE' AND u.status IN ('FAILED', 'EXPIRED')) OVER w,"
    "                  false) AS failed_before,"
    "         coalesce(bool_or(u.kind = 'CHARGE' AND u.status = 'SUCCEEDED') OVER w,"
    "                  false) AS captured_before"
    "  FROM u LEFT JOIN payment_orders o ON o.order_id = u.order_id"
    "         LEFT JOIN refunds f ON u.kind = 'REFUND' AND f.refund_id = u.refund_id"
    "         LEFT JOIN payouts p ON u.kind = 'PAYOUT' AND p.payout_id = u.payout_id"
    "  WINDOW w AS (PARTITION BY u.order_id ORDER BY u.ord"
    "               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)),"
    /* what makes an outcome unusable on its own (to the DLQ) */
    " v AS ("
    "  SELECT r.*,"
    "    CASE"
    "      WHEN r.kind <> 'PAYOUT' AND r.o_seller IS NULL THEN 'unknown order ' || r.order_id"
    "      WHEN r.kind = 'REFUND' AND r.f_status IS NULL THEN 'unknown refund ' || r.refund_id"
    "      WHEN r.kind = 'PAYOUT' AND r.p_status IS NULL THEN 'unknown payout ' || r.payout_id"
    "      WHEN coalesce(r.p_partner, r.f_partner, r.o_partner) <> r.partner"
    "        THEN 'partner_id differs from the one of the ' || lower(r.kind)"
    "      WHEN coalesce(r.p_cur, r.o_cur) <> r.cur"
    "        THEN 'currency differs from the ' || lower(r.kind) || '''s ' || coalesce(r.p_cur, r.o_cur)"
    "      WHEN r.kind = 'PAYOUT' AND r.status IN ('PAID_OUT', 'SUCCEEDED') AND r.amount <> r.p_amount"
    "        THEN 'amount_minor differs from the payout''s ' || r.p_amount"
    /* money the PSP reports is bounded by what was asked of it: a refund by its reservation
     * (refunds stay within the capture), a capture or chargeback by the order's amount */
    "      WHEN r.kind = 'REFUND' AND r.f_order <> r.order_id"
    "        THEN 'order_id differs from the refund''s ' || r.f_order"
    "      WHEN r.kind = 'REFUND' AND r.status IN ('SUCCEEDED', 'REFUNDED') AND r.amount > r.f_amount"
    "        THEN 'amount_minor is above the refund''s ' || r.f_amount"
    "      WHEN r.kind = 'CHARGE' AND r.status IN ('SUCCEEDED', 'REFUNDED') AND r.amount > r.o_amount"
    "        THEN 'amount_minor is above the order''s ' || r.o_amount"
    "      WHEN r.kind = 'CHARGE' AND r.status = 'REFUNDED' AND NOT r.captured_before"
    "           AND NOT EXISTS (SELECT 1 FROM ledger_entries e"
    "                           WHERE e.source_key = 'capture:' || r.order_id)"
    "        THEN 'chargeback of an order never captured'"
    "    END AS bad"
    "  FROM r),"
    /* a refund's or payout's final state: the row's if final, else the first final
     * outcome of this batch before this one that is usable (one dead-lettered by v says
     * nothing about the object). The filter takes the other kinds' rows out of the
     * aggregate: their value is never read, and all of a batch's CHARGE outcomes share
     * one partition, where each row's array held every earlier one (a copy per row,
     * quadratic in the batch) */
    " vf AS ("
    "  SELECT v.*,"
    "    CASE WHEN v.kind = 'REFUND' AND v.f_status IN ('SUCCEEDED', 'FAILED') THEN v.f_status"
    "         WHEN v.kind = 'PAYOUT' AND v.p_status IN ('PAID_OUT', 'FAILED') THEN v.p_status"
    "         WHEN v.kind IN ('REFUND', 'PAYOUT') THEN (array_agg("
    "           CASE WHEN v.status IN ('FAILED', 'EXPIRED') THEN 'FAILED'"
    "                WHEN v.kind = 'REFUND' THEN 'SUCCEEDED' ELSE 'PAID_OUT' END)"
    "           FILTER (WHERE v.kind IN ('REFUND', 'PAYOUT') AND v.bad IS NULL"
    "                     AND v.status IN ('SUCCEEDED', 'REFUNDED', 'PAID_OUT', 'FAILED',"
    "                                      'EXPIRED')) OVER wf)[1]"
    "    END AS was_final"
    "  FROM v"
    "  WINDOW wf AS (PARTITION BY v.kind, CASE v.kind WHEN 'REFUND' THEN v.refund_id"
    "                                                 WHEN 'PAYOUT' THEN v.payout_id END"
    "                ORDER BY v.ord ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)),"
    " c0 AS ("
    "  SELECT vf.*,"
    /* another final state than the one the refund or payout is in moves no money: a refund
     * failed has given its reservation back (a success posted now would let the same money
     * be refunded twice), a payout failed has released its hold or never held; a bank
     * return after a success is money moved that no rule books. An operator decides */
    "    coalesce(vf.bad, CASE"
    "      WHEN vf.was_final = 'FAILED' AND vf.status IN ('SUCCEEDED', 'REFUNDED', 'PAID_OUT')"
    "        OR vf.was_final IN ('SUCCEEDED', 'PAID_OUT') AND vf.status IN ('FAILED', 'EXPIRED')"
    "        THEN 'conflicting_final: ' || lower(vf.kind) || ' '"
    "             || CASE vf.kind WHEN 'REFUND' THEN vf.refund_id ELSE vf.payout_id END"
    "             || ' is ' || vf.was_final || ', this outcome says ' || vf.status END) AS err,"
    /* CASE keeps it a probe of the unique index for payouts only: a bare EXISTS may be
     * planned as a hashed subplan that reads every entry */
    "    CASE WHEN vf.kind = 'PAYOUT' THEN EXISTS (SELECT 1 FROM ledger_entries e"
    "         WHERE e.source_key = 'payout_hold:' || vf.payout_id) ELSE false END AS held"
    "  FROM vf),"
    " c AS ("
    "  SELECT c0.*, coalesce(c0.o_seller, c0.p_seller) AS seller,"
    "    CASE"
    "      WHEN c0.kind = 'CHARGE' AND c0.status = 'SUCCEEDED' THEN"
    "        CASE WHEN c0.o_status IN ('FAILED', 'EXPIRED') OR c0.failed_before"
    "             THEN 'late_capture' ELSE 'capture' END"
    "      WHEN c0.kind = 'CHARGE' AND c0.status = 'REFUNDED' THEN 'chargeback'"
    "      WHEN c0.kind = 'REFUND' AND c0.status IN ('SUCCEEDED', 'REFUNDED') THEN 'refund'"
    "      WHEN c0.kind = 'PAYOUT' AND c0.status IN ('PAID_OUT', 'SUCCEEDED') THEN 'payout'"
    "      WHEN c0.kind = 'PAYOUT' AND c0.status IN ('FAILED', 'EXPIRED') AND c0.held"
    "        THEN 'payout_release'"
    "    END AS act"
    "  FROM c0 WHERE c0.err IS NULL),"
    " k AS ("
    "  SELECT c.*,"
    "    CASE c.act WHEN 'capture' THEN 'capture:' || c.order_id"
    "               WHEN 'late_capture' THEN 'capture:' || c.order_id"
    "               WHEN 'chargeback' THEN 'chargeback:' || c.outcome_id"
    "               WHEN 'refund' THEN 'refund:' || c.refund_id"
    "               ELSE 'payout_result:' || c.payout_id END AS source_key,"
    "    CASE WHEN c.kind = 'PAYOUT' THEN c.payout_id WHEN c.kind = 'REFUND' THEN c.refund_id"
    "         ELSE c.order_id END AS journal"
    "  FROM c WHERE c.act IS NOT NULL),"
    " fresh AS ("
    "  SELECT DISTINCT ON (k.source_key) k.* FROM k"
    "  WHERE NOT EXISTS (SELECT 1 FROM ledger_entries e WHERE e.source_key = k.source_key)"
    "  ORDER BY k.source_key, k.ord),"
    " l0 AS ("
    "  SELECT f.ord, x.slot, x.type, ledger_account_code(x.type, f.partner, f.seller, f.psp, f.cur)"
    "         AS account, x.amt, f.cur, f.partner, f.seller, f.psp"
    "  FROM fresh f"
    "  LEFT JOIN ledger_fee_plans fp ON f.act = 'capture' AND fp.partner_id = f.partner"
    "                              AND fp.currency = f.cur"
    /* round(amount * bps / 10000) without the product: amount * bps overflows bigint
     * from 9.2e14 minor units at 100 %, a valid amount whose capture was dead-lettered */
    "  CROSS JOIN LATERAL (SELECT least(f.amount, coalesce(f.amount / 10000 * fp.bps"
    "                               + (f.amount % 10000 * fp.bps + 5000) / 10000"
    "                               + fp.fixed_minor, 0)) AS pfee) pf"
    "  CROSS JOIN LATERAL (VALUES"
    "    (1, 'psp_clearing', CASE WHEN f.act IN ('capture', 'late_capture') THEN f.amount - f.fee"
    "                             WHEN f.act IN ('refund', 'chargeback', 'payout')"
    "                               THEN -(f.amount + f.fee) END),"
    "    (2, 'psp_fee_expense', CASE WHEN f.act <> 'payout_release' THEN f.fee END),"
    "    (3, 'seller_wallet', CASE WHEN f.act = 'capture' THEN -(f.amount - pf.pfee)"
    "                              WHEN f.act IN ('refund', 'chargeback') THEN f.amount"
    "                              WHEN f.act = 'payout' AND NOT f.held THEN f.amount"
    "                              WHEN f.act = 'payout_release' THEN -f.p_amount END),"
    "    (4, 'payout_hold', CASE WHEN f.act = 'payout' AND f.held THEN f.amount"
    "                            WHEN f.act = 'payout_release' THEN f.p_amount END),"
    "    (5, 'fee_revenue', CASE WHEN f.act = 'capture' THEN -pf.pfee END),"
    "    (6, 'suspense', CASE WHEN f.act = 'late_capture' THEN -f.amount END)"
    "  ) AS x(slot, type, amt)"
    "  WHERE x.amt IS NOT NULL AND x.amt <> 0),"
    " l AS (SELECT l0.*, row_number() OVER (PARTITION BY l0.ord ORDER BY l0.slot) AS line FROM l0),"
    " txt AS MATERIALIZED ("
    "  SELECT ord, string_agg(ledger_line_text(account, amt, cur), '' ORDER BY line) AS lines,"
    "         count(*) AS n"
    "  FROM l GROUP BY ord),"
    " heads AS ("
    "  SELECT h.chain, h.last_seq, h.last_hash FROM ledger_chains h"
    "  WHERE h.chain IN (SELECT DISTINCT chain FROM fresh) FOR UPDATE),"
    " e0 AS ("
    "  SELECT f.ord, f.chain, f.source_key, f.act, f.journal, f.partner, f.msg, f.seller, f.cur,"
    "         t.lines, t.n, h.last_hash AS head,"
    "         h.last_seq + row_number() OVER (PARTITION BY f.chain ORDER BY f.ord) AS seq"
    "  FROM fresh f JOIN heads h ON h.chain = f.chain JOIN txt t ON t.ord = f.ord),"
    " e1 AS ("
    "  SELECT e0.*, ledger_chain(e0.head, ledger_entry_content(e0.chain, e0.seq, e0.source_key,"
    "           e0.act, e0.journal, e0.partner, e0.msg, e0.lines))"
    "           OVER (PARTITION BY e0.chain ORDER BY e0.seq) AS hash"
    "  FROM e0),"
    " e AS ("
    "  SELECT e1.*, coalesce(lag(e1.hash) OVER (PARTITION BY e1.chain ORDER BY e1.seq), e1.head)"
    "           AS prev_hash, nextval('ledger_entries_entry_id_seq') AS entry_id"
    "  FROM e1),"
    " ins_acc AS ("
    "  INSERT INTO ledger_accounts (account, type, currency, normal_side, partner_id, seller_id,"
    "                               psp)"
    "  SELECT DISTINCT ON (l.account) l.account, l.type, l.cur,"
    "         CASE WHEN l.type IN ('psp_clearing', 'psp_fee_expense') THEN 'D' ELSE 'C' END,"
    "         CASE WHEN l.type IN ('seller_wallet', 'payout_hold', 'suspense') THEN l.partner END,"
    "         CASE WHEN l.type IN ('seller_wallet', 'payout_hold') THEN l.seller END,"
    "         CASE WHEN l.type IN ('psp_clearing', 'psp_fee_expense') THEN l.psp END"
    "  FROM (SELECT DISTINCT ON (account) * FROM l ORDER BY account) l"
    "  WHERE NOT EXISTS (SELECT 1 FROM ledger_accounts a WHERE a.account = l.account)"
    "  ORDER BY l.account"
    "  ON CONFLICT DO NOTHING),"
    " ins_e AS ("
    "  INSERT INTO ledger_entries (entry_id, chain, seq, source_key, kind, journal_id, partner_id,"
    "                              reference, n_lines, prev_hash, hash)"
    "  SELECT entry_id, chain, seq, source_key, act, journal, partner, msg, n, prev_hash, hash"
    "  FROM e),"
    " ins_p AS ("
    "  INSERT INTO ledger_postings (entry_id, line, account, amount_minor, currency, chain)"
    "  SELECT e.entry_id, l.line, l.account, l.amt, l.cur, e.chain FROM l JOIN e ON e.ord = l.ord),"
    " upd_chain AS ("
    "  UPDATE ledger_chains h SET last_seq = x.seq, last_hash = x.hash, updated_at = now()"
    "  FROM (SELECT DISTINCT ON (chain) chain, seq, hash FROM e ORDER BY chain, seq DESC) x"
    "  WHERE h.chain = x.chain),"
    /* statuses: per object, the first final outcome of the batch wins; else the last
     * PENDING_CUSTOMER; never out of a final state */
    " ofin AS ("
    "  SELECT DISTINCT ON (order_id) order_id, o_payment,"
    "         CASE status WHEN 'SUCCEEDED' THEN 'SUCCESS' WHEN 'FAILED' THEN 'FAILED'"
    "                     WHEN 'EXPIRED' THEN 'EXPIRED' ELSE 'PENDING_CUSTOMER' END AS st,"
    "         amount, next_action"
    "  FROM c WHERE kind = 'CHARGE' AND status IN ('SUCCEEDED', 'FAILED', 'EXPIRED',"
    "                                              'PENDING_CUSTOMER')"
    "        AND o_status NOT IN ('SUCCESS', 'FAILED', 'EXPIRED')"
    "  ORDER BY order_id, (status = 'PENDING_CUSTOMER'),"
    "           CASE WHEN status = 'PENDING_CUSTOMER' THEN -ord ELSE ord END),"
    " ffin AS ("
    "  SELECT DISTINCT ON (refund_id) refund_id, order_id, f_amount, amount,"
    "         CASE WHEN status IN ('SUCCEEDED', 'REFUNDED') THEN 'SUCCEEDED' ELSE 'FAILED' END AS st"
    "  FROM c WHERE kind = 'REFUND' AND status IN ('SUCCEEDED', 'REFUNDED', 'FAILED', 'EXPIRED')"
    "        AND f_status NOT IN ('SUCCEEDED', 'FAILED')"
    "  ORDER BY refund_id, ord),"
    " upd_f AS ("
    "  UPDATE refunds f SET status = x.st, updated_at = now(),"
    "      refunded_minor = CASE WHEN x.st = 'SUCCEEDED' THEN x.amount END"
    "  FROM ffin x"
    "  WHERE f.refund_id = x.refund_id),"
    /* a failed refund's reservation, and what a partial one did not refund, are given back
     * by the refunds trigger (ingress_refund_failed): not here a second time */
    " upd_o AS ("
    "  UPDATE payment_orders o"
    "  SET status = coalesce(x.st, o.status),"
    "      captured_minor = CASE WHEN x.st = 'SUCCESS' THEN x.amount ELSE o.captured_minor END,"
    "      next_action = CASE WHEN x.st = 'PENDING_CUSTOMER' THEN x.next_action::jsonb"
    "                         ELSE o.next_action END,"
    "      updated_at = now()"
    "  FROM ofin x"
    "  WHERE o.order_id = x.order_id),"
    /* a payment of one order takes its status from it here; the payments of several
     * orders go back to the caller for ledger_payments_refresh() (locks, then a later
     * snapshot: their orders are posted by other partitions) */
    " pay_n AS MATERIALIZED ("
    "  SELECT x.payment_id, x.st,"
    "         (SELECT count(*) FROM payment_orders o WHERE o.payment_id = x.payment_id) AS n"
    "  FROM (SELECT o_payment AS payment_id,"
    "               CASE min(st) WHEN 'SUCCESS' THEN 'SUCCESS' WHEN 'PENDING_CUSTOMER' THEN 'EXECUTING'"
    "                            ELSE 'FAILED' END AS st"
    "        FROM ofin GROUP BY o_payment) x),"
    " upd_pay AS ("
    "  UPDATE payments p SET status = n.st, updated_at = now()"
    "  FROM pay_n n"
    "  WHERE n.n = 1 AND p.payment_id = n.payment_id AND p.status IN ('NOT_STARTED', 'EXECUTING')"
    "    AND p.status <> n.st),"
    " upd_p AS ("
    "  UPDATE payouts p"
    "  SET status = CASE WHEN x.status IN ('PAID_OUT', 'SUCCEEDED') THEN 'PAID_OUT' ELSE 'FAILED' END,"
    "      failure_code = CASE WHEN x.status IN ('FAILED', 'EXPIRED')"
    "                          THEN coalesce(x.fcode, x.status) END,"
    "      failure_message = CASE WHEN x.status IN ('FAILED', 'EXPIRED') THEN x.fmsg END,"
    "      updated_at = now()"
    "  FROM (SELECT DISTINCT ON (payout_id) payout_id, status, fcode, fmsg FROM c"
    "        WHERE kind = 'PAYOUT' AND status IN ('PAID_OUT', 'SUCCEEDED', 'FAILED', 'EXPIRED')"
    "          AND p_status NOT IN ('PAID_OUT', 'FAILED')"
    "        ORDER BY payout_id, ord) x"
    "  WHERE p.payout_id = x.payout_id)"
    /* the lines of every entry posted now (what is the entry's, not the line's, on its
     * first line only: entry.c reads it there, and the hashes in hex on every line were
     * most of the bytes sent), and the outcomes that go to the DLQ */
    " SELECT e.ord, e.entry_id,"
    "        CASE WHEN l.line = 1 THEN e.act END, CASE WHEN l.line = 1 THEN e.journal END,"
    "        CASE WHEN l.line = 1 THEN encode(e.prev_hash, 'hex') END,"
    "        CASE WHEN l.line = 1 THEN encode(e.hash, 'hex') END,"
    "        CASE WHEN l.line = 1"
    "             THEN ledger_account_code('seller_wallet', e.partner, e.seller, NULL, e.cur) END,"
    "        l.account, l.amt, l.cur, NULL, l.line, NULL"
    " FROM e JOIN l ON l.ord = e.ord"
    " UNION ALL"
    " SELECT ord, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, err, 0, NULL FROM c0"
    " WHERE err IS NOT NULL"
    " UNION ALL"
    " SELECT 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, payment_id"
    " FROM pay_n WHERE n > 1"
    " ORDER BY 1, 12";

enum { NCOL = 16 };
static const unsigned col_oid[NCOL] = {
    KS_OID_TEXT, KS_OID_TEXT, KS_OID_TEXT, KS_OID_TEXT, KS_OID_TEXT, KS_OID_TEXT, KS_OID_TEXT,
    KS_OID_TEXT, KS_OID_TEXT, KS_OID_INT8, KS_OID_INT8, KS_OID_TEXT, KS_OID_TEXT, KS_OID_TEXT,
    KS_OID_TEXT, KS_OID_TEXT};


/* chains the statement may extend: a row must exist before its head can be locked */
static const char SQL_CHAINS[] =
    "INSERT INTO ledger_chains (chain) SELECT DISTINCT unnest($1::text[]) ORDER BY 1"
    " ON CONFLICT DO NOTHING";
static const char SQL_PAYMENTS[] = "SELECT ledger_payments_refresh($1::text[])";
/* The batch statement's working memory, for its transaction only: with the default 4 MB a
 * batch of 2,000 outcomes spilled its CTE rows and the postings trigger's transition table
 * to temporary files, written and read back every batch (docs/LEDGER.md, "Cost per entry") */
static const char SQL_WORK_MEM[] = "SELECT set_config('work_mem', '64MB', true)";

struct ledger {
    struct ledger_pub *pub; /* the publisher thread, stopped by the runtime's stopped hook */
    /* the statements, prepared once per session of the worker's one connection: planning
     * the post statement costs as much as running it for a small batch */
    struct ks_pg_stmt q_post, q_queued, q_chains, q_payments;
    struct ks_pgarr_bin a[NCOL];
    struct ks_pgarr_bin chains, payments;
    struct ks_msg **msgs; /* by ord - 1 */
    unsigned char *failed; /* by ord - 1: dead-lettered by the statement */
    size_t cap;
    json_t *out;
};

static const char *str_field(const json_t *v, const char *name)
{
    const char *s = json_string_value(json_object_get(v, name));
    return s ? s : "";
}

static const char *opt_field(const json_t *v, const char *name)
{
    const char *s = json_string_value(json_object_get(v, name));
    return s && *s ? s : NULL;
}

/* The states an operation of each kind can reach (the schema's OutcomeStatus, per
 * CommandKind): a charge succeeds, fails, expires, waits for the buyer or is charged back
 * (REFUNDED); a refund succeeds (REFUNDED, or SUCCEEDED), fails or expires; a payout is
 * paid (PAID_OUT, or SUCCEEDED), fails or expires. Anything else (a CHARGE PAID_OUT, a
 * REFUND PENDING_CUSTOMER) is a reporter's bug that no rule books: to the DLQ, not a
 * commit that changes nothing. 1 meaningful, 0 not, -1 an unknown kind. */
static int status_meaningful(const char *kind, const char *status)
{
    static const struct {
        const char *kind, *statuses;
    } ok[] = {
        {"CHARGE", " SUCCEEDED FAILED EXPIRED PENDING_CUSTOMER REFUNDED "},
        {"REFUND", " SUCCEEDED REFUNDED FAILED EXPIRED "},
        {"PAYOUT", " PAID_OUT SUCCEEDED FAILED EXPIRED "},
    };
    char word[32];
    int bad = !*status || strlen(status) > sizeof(word) - 3 || strchr(status, ' ');

    snprintf(word, sizeof(word), " %.28s ", status);
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (strcmp(kind, ok[i].kind) == 0)
            return !bad && strstr(ok[i].statuses, word) != NULL;
    return -1;
}

static enum ks_code validate(const struct ks_msg *m, void *ctx, struct ks_err *err)
{
    const json_t *v = m->value;
    const char *kind = str_field(v, "kind"), *status = str_field(v, "status");
    const char *cur = str_field(v, "currency");
    json_int_t amount = json_integer_value(json_object_get(v, "amount_minor"));
    json_int_t fee = json_integer_value(json_object_get(v, "fee_minor"));
    int posts = strcmp(status, "SUCCEEDED") == 0 || strcmp(status, "REFUNDED") == 0 ||
                strcmp(status, "PAID_OUT") == 0;
    int meaningful;

    (void)ctx;
    if (strcmp(m->schema, "kasir.psp.PspOutcome") != 0)
        return ks_err_set(err, KS_EINVAL, 0, NULL, "unexpected schema %s", m->schema);
    if (!ledger_id_ok(str_field(v, "partner_id")))
        return ks_err_set(err, KS_EINVAL, 0, "partner_id", "partner_id is empty or holds '/'");
    if (!ledger_id_ok(str_field(v, "psp")))
        return ks_err_set(err, KS_EINVAL, 0, "psp", "psp is empty or holds '/'");
    if (!*str_field(v, "outcome_id"))
        return ks_err_set(err, KS_EINVAL, 0, "outcome_id", "outcome_id is empty");
    if ((meaningful = status_meaningful(kind, status)) < 0)
        return ks_err_set(err, KS_EINVAL, 0, "kind", "unknown kind %.20s", kind);
    if (!meaningful)
        return ks_err_set(err, KS_EINVAL, 0, "status",
                          "status %.20s means nothing for a %.10s outcome", status, kind);
    if (strcmp(kind, "PAYOUT") == 0) {
        if (!opt_field(v, "payout_id"))
            return ks_err_set(err, KS_EINVAL, 0, "payout_id", "payout_id is required for PAYOUT");
    } else {
        if (!opt_field(v, "order_id"))
            return ks_err_set(err, KS_EINVAL, 0, "order_id", "order_id is required for %s", kind);
        if (strcmp(kind, "REFUND") == 0 && !opt_field(v, "refund_id"))
            return ks_err_set(err, KS_EINVAL, 0, "refund_id", "refund_id is required for REFUND");
    }
    if (ks_money_exponent(cur) < 0)
        return ks_err_set(err, KS_EINVAL, 0, "currency", "unknown currency %.8s", cur);
    if (amount < 0 || (posts && amount == 0))
        return ks_err_set(err, KS_EINVAL, 0, "amount_minor",
                          "amount_minor must be greater than zero for %s", status);
    if (amount > KS_LEDGER_MAX_MINOR)
        return ks_err_set(err, KS_EINVAL, 0, "amount_minor", "amount_minor is out of range");
    if (fee < 0 || fee > amount)
        return ks_err_set(err, KS_EINVAL, 0, "fee_minor",
                          "fee_minor must be between 0 and amount_minor");
    return KS_OK;
}

static void add_text(struct ks_pgarr_bin *a, const char *s)
{
    if (s)
        ks_pgarr_bin_bytes(a, s, strlen(s));
    else
        ks_pgarr_bin_bytes(a, NULL, 0);
}

/* chain of a message: the partition it was read from, whose one owner extends it */
static void chain_name(const struct ks_msg *m, char *out, size_t cap)
{
    snprintf(out, cap, "%s:%" PRId32, m->topic, m->partition);
}

/* Every batch, before SQL_POST: the head rows of the batch's chains exist in this
 * transaction (SQL_POST locks them; an entry whose chain has no head would not be
 * written). Not remembered across batches: a savepoint rolled back or a failed commit
 * would take a created row away. A handful of rows: one per partition in the batch. */
static enum ks_code ensure_chains(struct ledger *d, PGconn *pg, struct ks_batch *b,
                                  struct ks_err *err)
{
    char last[300] = "";
    const char *p;
    int len, fmt = 1;
    PGresult *res;

    ks_pgarr_bin_reset(&d->chains);
    for (size_t i = 0; i < ks_batch_count(b); i++) {
        char name[300];
        chain_name(ks_batch_msg(b, i), name, sizeof(name));
        if (strcmp(name, last) == 0)
            continue; /* messages of one partition come together */
        add_text(&d->chains, name);
        memcpy(last, name, sizeof(last));
    }
    if (!(p = ks_pgarr_bin_data(&d->chains, &len)))
        return ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
    res = ks_pg_exec(pg, &d->q_chains, &p, &len, &fmt, 0);
    if (ks_pg_check(pg, res, PGRES_COMMAND_OK, "create ledger chains", err) != KS_OK) {
        PQclear(res);
        return err->code;
    }
    PQclear(res);
    return KS_OK;
}

/* Publishes the queued entries of the SQL entry points (LEDGER_SQL_QUEUED), caused by cause (a
 * message of this batch that is not dead-lettered: its outputs and effects stay with it). */
static enum ks_code publish_queued(struct ledger *d, struct ks_batch *b, PGconn *pg,
                                   struct ks_msg *cause, const char *topic, int64_t now_us,
                                   struct ks_err *err)
{
    const char *any_age = "0";
    PGresult *res = ks_pg_exec(pg, &d->q_queued, &any_age, NULL, NULL, 0);
    enum ks_code rc;

    if ((rc = ks_pg_check(pg, res, PGRES_TUPLES_OK, "publish queued entries", err)) != KS_OK)
        goto out;
    for (int k = 0, rows = PQntuples(res); k < rows;) {
        struct ledger_entry_src e;
        k = ledger_queued_entry(res, k, now_us, &e);
        if ((rc = ledger_entry_emit(d->out, b, cause, topic, &e, err)) != KS_OK)
            goto out;
    }
out:
    PQclear(res);
    return rc;
}

static enum ks_code post_batch(struct ks_batch *b, PGconn *pg, void *ctx, struct ks_err *err)
{
    struct ledger *d = ctx;
    const char *topic = ks_config_str(ks_worker_config(ks_batch_worker(b)), "ledger.output_topic");
    const char *params[NCOL];
    int lens[NCOL], fmts[NCOL];
    PGresult *res = NULL;
    enum ks_code rc = KS_OK;
    size_t n = ks_batch_count(b), npay = 0;
    struct timespec ts;
    int64_t now_us;

    if (n == 0)
        return KS_OK;
    if (n > d->cap) {
        struct ks_msg **nm = realloc(d->msgs, n * sizeof(*nm));
        unsigned char *nf;
        if (!nm)
            return ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
        d->msgs = nm;
        if (!(nf = realloc(d->failed, n)))
            return ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
        d->failed = nf;
        d->cap = n;
    }
    res = PQexec(pg, SQL_WORK_MEM);
    rc = ks_pg_check(pg, res, PGRES_TUPLES_OK, "set the batch's work_mem", err);
    PQclear(res);
    res = NULL;
    if (rc != KS_OK)
        return rc;
    if ((rc = ensure_chains(d, pg, b, err)) != KS_OK)
        return rc;
    for (int k = 0; k < NCOL; k++) {
        ks_pgarr_bin_reset(&d->a[k]);
        fmts[k] = 1;
    }
    ks_pgarr_bin_reset(&d->payments);
    for (size_t i = 0; i < n; i++) {
        struct ks_msg *m = ks_batch_msg(b, i);
        const json_t *v = m->value;
        const char *status = str_field(v, "status"), *kind = str_field(v, "kind");
        const json_t *na = json_object_get(v, "next_action");
        char chain[300], *na_text = NULL;

        d->msgs[i] = m;
        chain_name(m, chain, sizeof(chain));
        if (strcmp(status, "PENDING_CUSTOMER") == 0 && json_object_size(na) > 0 &&
            !(na_text = json_dumps(na, JSON_COMPACT)))
            return ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
        add_text(&d->a[0], m->message_id);
        add_text(&d->a[1], str_field(v, "outcome_id"));
        add_text(&d->a[2], kind);
        add_text(&d->a[3], status);
        add_text(&d->a[4], str_field(v, "partner_id"));
        add_text(&d->a[5], opt_field(v, "order_id"));
        add_text(&d->a[6], opt_field(v, "refund_id"));
        add_text(&d->a[7], opt_field(v, "payout_id"));
        add_text(&d->a[8], str_field(v, "psp"));
        ks_pgarr_bin_int8(&d->a[9], json_integer_value(json_object_get(v, "amount_minor")));
        ks_pgarr_bin_int8(&d->a[10], json_integer_value(json_object_get(v, "fee_minor")));
        add_text(&d->a[11], str_field(v, "currency"));
        add_text(&d->a[12], chain);
        add_text(&d->a[13], na_text);
        add_text(&d->a[14], opt_field(v, "failure_code"));
        add_text(&d->a[15], opt_field(v, "failure_message"));
        free(na_text);
    }
    for (int k = 0; k < NCOL; k++)
        if (!(params[k] = ks_pgarr_bin_data(&d->a[k], &lens[k])))
            return ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
    res = ks_pg_exec(pg, &d->q_post, params, lens, fmts, 0);
    if ((rc = ks_pg_check(pg, res, PGRES_TUPLES_OK, "post outcomes", err)) != KS_OK)
        goto out;
    clock_gettime(CLOCK_REALTIME, &ts);
    now_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    /* the SQL entry points' entries go out first (a payout's hold before its result),
     * with a message that stays in the batch as their cause */
    for (size_t i = 0; i < n; i++)
        d->failed[i] = 0;
    for (int k = 0, rows = PQntuples(res); k < rows; k++) {
        long ord = strtol(PQgetvalue(res, k, 0), NULL, 10);
        if (ord >= 1 && (size_t)ord <= n && !PQgetisnull(res, k, 10))
            d->failed[ord - 1] = 1;
    }
    for (size_t i = 0; i < n; i++)
        if (!d->failed[i]) {
            if ((rc = publish_queued(d, b, pg, d->msgs[i], topic, now_us, err)) != KS_OK)
                goto out;
            break;
        }
    for (int k = 0, rows = PQntuples(res); k < rows;) {
        long ord = strtol(PQgetvalue(res, k, 0), NULL, 10);
        struct ks_msg *m = ord >= 1 && (size_t)ord <= n ? d->msgs[ord - 1] : NULL;
        int end = k + 1;

        if (ord == 0) { /* a payment of several orders whose status may move */
            add_text(&d->payments, PQgetvalue(res, k, 12));
            npay++;
            k++;
            continue;
        }
        if (!m) {
            rc = ks_err_set(err, KS_ESTATE, 0, NULL, "post statement returned ord %ld", ord);
            goto out;
        }
        if (!PQgetisnull(res, k, 10)) {
            /* no effect was written for it: it goes to the DLQ, the batch goes on */
            struct ks_err bad = {0};
            ks_err_set(&bad, KS_EINVAL, 0, NULL, "%s", PQgetvalue(res, k, 10));
            ks_batch_fail(b, m, &bad);
            k++;
            continue;
        }
        while (end < rows && strcmp(PQgetvalue(res, end, 0), PQgetvalue(res, k, 0)) == 0 &&
               PQgetisnull(res, end, 10))
            end++;
        {
            struct ledger_entry_src e = {.res = res, .from = k, .to = end, .posted_us = now_us,
                                         .now_us = now_us, .reference = m->message_id,
                                         .partner = str_field(m->value, "partner_id")};
            if ((rc = ledger_entry_emit(d->out, b, m, topic, &e, err)) != KS_OK)
                goto out;
        }
        k = end;
    }
    if (npay > 0) {
        const char *p;
        int len, fmt = 1;
        PQclear(res);
        if (!(p = ks_pgarr_bin_data(&d->payments, &len))) {
            res = NULL;
            rc = ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
            goto out;
        }
        res = ks_pg_exec(pg, &d->q_payments, &p, &len, &fmt, 0);
        if ((rc = ks_pg_check(pg, res, PGRES_TUPLES_OK, "refresh payment statuses", err)) != KS_OK)
            goto out;
    }
out:
    PQclear(res);
    return rc;
}

/* The worker's settings as ks_worker_main loads them (same table, file and environment),
 * for the publisher thread, which starts before the worker; NULL when they do not load
 * (the worker then reports every problem and exits 2). *all lives as long as the result. */
static struct ks_config *publisher_config(const struct ks_worker_spec *spec,
                                          const struct ks_config_def *defs, size_t ndefs,
                                          int argc, char **argv, struct ks_config_def **all)
{
    size_t ncommon = ks_common_settings_count, total = ncommon + KS_WORKER_SETTINGS_COUNT + ndefs;
    const char *path = NULL;
    struct ks_err err = {0};
    struct ks_config *cfg;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-c") != 0 || i + 1 >= argc)
            return NULL; /* config-doc, or a usage the worker refuses */
        path = argv[++i];
    }
    if (!(*all = calloc(total, sizeof(**all))))
        return NULL;
    memcpy(*all, ks_common_settings, ncommon * sizeof(**all));
    ks_worker_settings(spec->group, spec->topics, *all + ncommon);
    memcpy(*all + ncommon + KS_WORKER_SETTINGS_COUNT, defs, ndefs * sizeof(**all));
    if (!(cfg = ks_config_load(*all, total, path, NULL, &err))) {
        free(*all);
        *all = NULL;
    }
    return cfg;
}

/* the worker has stopped: the publisher goes before the Avro catalogue it encodes with */
static void stopped(void *ctx)
{
    struct ledger *d = ctx;
    ledger_pub_stop(d->pub);
    d->pub = NULL;
}

int main(int argc, char **argv)
{
    static const struct ks_config_def defs[] = {
        {"ledger.output_topic", KS_CFG_STRING, "kasir.ledger.entries", 0,
         "topic the posted journal entries (kasir.ledger.LedgerEntry) go to"},
        {"ledger.publish.every", KS_CFG_DURATION_MS, "250ms", 0,
         "how often the entries posted by the ledger's SQL functions (payout holds, settlements, "
         "adjustments) are looked for and published, when outcomes do not bring them out first"},
    };
    struct ks_config_def *pub_defs = NULL;
    struct ks_config *pub_cfg;
    struct ks_err err = {0};
    static struct ledger d = {
        .q_post = KS_PG_STMT("ledger_post", SQL_POST, NCOL),
        .q_queued = KS_PG_STMT("ledger_queued", LEDGER_SQL_QUEUED, 1),
        .q_chains = KS_PG_STMT("ledger_chains", SQL_CHAINS, 1),
        .q_payments = KS_PG_STMT("ledger_payments", SQL_PAYMENTS, 1),
    };
    const struct ks_worker_spec spec = {
        .name = "ledger",
        .group = "kasir-ledger",
        .topics = "kasir.psp.outcomes",
        .http_port = "8140",
        .validate = validate,
        .handle_batch = post_batch,
        .ctx = &d,
        .stopped = stopped,
    };
    int rc;

    if (argc >= 2 && strcmp(argv[1], "verify") == 0)
        return ledger_verify_main(argc - 1, argv + 1);
    for (int k = 0; k < NCOL; k++)
        ks_pgarr_bin_init(&d.a[k], col_oid[k]);
    ks_pgarr_bin_init(&d.chains, KS_OID_TEXT);
    ks_pgarr_bin_init(&d.payments, KS_OID_TEXT);
    if (!(d.out = json_object()))
        return 1;
    pub_cfg = publisher_config(&spec, defs, sizeof(defs) / sizeof(defs[0]), argc, argv, &pub_defs);
    if (pub_cfg && !(d.pub = ledger_pub_start(pub_cfg, &err))) {
        ks_log(KS_LOG_ERROR, "ledger.publish.start", err.msg, NULL);
        ks_config_free(pub_cfg);
        free(pub_defs);
        return 1;
    }
    rc = ks_worker_main(&spec, defs, sizeof(defs) / sizeof(defs[0]), argc, argv);
    ledger_pub_stop(d.pub); /* stopped already, unless ks_worker_main returned early */
    ks_config_free(pub_cfg);
    free(pub_defs);
    for (int k = 0; k < NCOL; k++)
        ks_pgarr_bin_release(&d.a[k]);
    ks_pgarr_bin_release(&d.chains);
    ks_pgarr_bin_release(&d.payments);
    free(d.msgs);
    free(d.failed);
    json_decref(d.out);
    return rc;
}
