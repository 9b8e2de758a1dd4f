/* entry.c - the one home of the kasir.ledger.LedgerEntry message: its fields and its key,
 * for the entries kasir-ledger posts from outcomes (through the batch's outbox) and for
 * those the ledger's SQL entry points posted (payout holds, settlements, adjustments) that
 * it publishes afterwards (publish.c, or the batch's outbox). */
#include <stdlib.h>
#include <string.h>

#include "lib/worker.h"
#include "consumers/ledger/ledger.h"
#include "lib/banned.h"

/* The entries the ledger's SQL entry points posted (ledger_post: payout holds, settlements,
 * adjustments; ledger_unpublished), claimed from the publication queue in this transaction
 * (deleted here, so each goes to the outbox once; SKIP LOCKED: another instance's batch
 * takes the rest), queued at least $1 ms ago, one row per line in the columns of ledger.h,
 * then partner (10), reference (12) and posted_at in microseconds (13). */
const char LEDGER_SQL_QUEUED[] =
    "WITH d AS ("
    "  DELETE FROM ledger_unpublished u WHERE u.entry_id IN ("
    "    SELECT q.entry_id FROM ledger_unpublished q"
    "     WHERE q.queued_at <= now() - $1::bigint * interval '1 millisecond'"
    "     ORDER BY q.entry_id LIMIT 1000"
    "    FOR UPDATE SKIP LOCKED)"
    "  RETURNING u.entry_id)"
    " SELECT e.entry_id, e.entry_id, e.kind, e.journal_id, encode(e.prev_hash, 'hex'),"
    "        encode(e.hash, 'hex'),"
    "        coalesce(min(CASE WHEN a.type IN ('seller_wallet', 'payout_hold')"
    "                          THEN ledger_account_code('seller_wallet', a.partner_id,"
    "                                                   a.seller_id, NULL, a.currency) END) OVER w,"
    "                 min(CASE WHEN a.type = 'psp_clearing' THEN a.account END) OVER w,"
    "                 first_value(p.account) OVER w),"
    "        p.account, p.amount_minor, p.currency, e.partner_id, p.line, e.reference,"
    "        (extract(epoch FROM e.posted_at) * 1000000)::bigint"
    " FROM d JOIN ledger_entries e ON e.entry_id = d.entry_id"
    "   JOIN ledger_postings p ON p.entry_id = e.entry_id"
    "   JOIN ledger_accounts a ON a.account = p.account"
    " WINDOW w AS (PARTITION BY e.entry_id ORDER BY p.line"
    "              ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)"
    " ORDER BY e.entry_id, p.line";

int ledger_queued_entry(PGresult *res, int k, int64_t now_us, struct ledger_entry_src *e)
{
    int end = k + 1, rows = PQntuples(res);

    while (end < rows && strcmp(PQgetvalue(res, end, 0), PQgetvalue(res, k, 0)) == 0)
        end++;
    e->res = res;
    e->from = k;
    e->to = end;
    e->partner = PQgetisnull(res, k, 10) ? NULL : PQgetvalue(res, k, 10);
    e->reference = PQgetvalue(res, k, 12);
    e->posted_us = strtoll(PQgetvalue(res, k, 13), NULL, 10);
    e->now_us = now_us;
    return end;
}

enum ks_code ledger_entry_value(json_t *out, const struct ledger_entry_src *e,
                                const char *message_id, struct ks_err *err)
{
    json_t *postings = json_array();

    if (!postings)
        return ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
    for (int k = e->from; k < e->to; k++) {
        long long amt = strtoll(PQgetvalue(e->res, k, LEDGER_COL_AMOUNT), NULL, 10);
        json_t *p = json_pack("{s:s, s:s, s:I, s:s}", "account",
                              PQgetvalue(e->res, k, LEDGER_COL_ACCOUNT), "direction",
                              amt > 0 ? "DEBIT" : "CREDIT", "amount_minor",
                              (json_int_t)(amt > 0 ? amt : -amt), "currency",
                              PQgetvalue(e->res, k, LEDGER_COL_CURRENCY));
        if (!p || json_array_append_new(postings, p)) {
            json_decref(postings);
            return ks_err_set(err, KS_ENOMEM, 1, NULL, "out of memory");
        }
    }
    json_object_set_new(out, "message_id", json_string(message_id));
    json_object_set_new(out, "occurred_at", json_integer(e->now_us));
    json_object_set_new(out, "entry_id", json_string(PQgetvalue(e->res, e->from, LEDGER_COL_ENTRY)));
    json_object_set_new(out, "journal_id", json_string(PQgetvalue(e->res, e->from, LEDGER_COL_JOURNAL)));
    json_object_set_new(out, "partner_id", e->partner ? json_string(e->partner) : json_null());
    json_object_set_new(out, "kind", json_string(PQgetvalue(e->res, e->from, LEDGER_COL_KIND)));
    json_object_set_new(out, "postings", postings);
    json_object_set_new(out, "reference", json_string(e->reference));
    json_object_set_new(out, "prev_hash", json_string(PQgetvalue(e->res, e->from, LEDGER_COL_PREV)));
    json_object_set_new(out, "hash", json_string(PQgetvalue(e->res, e->from, LEDGER_COL_HASH)));
    json_object_set_new(out, "posted_at", json_integer(e->posted_us));
    return KS_OK;
}

const char *ledger_entry_key(const struct ledger_entry_src *e)
{
    return PQgetvalue(e->res, e->from, LEDGER_COL_KEY);
}

enum ks_code ledger_entry_emit(json_t *out, struct ks_batch *b, struct ks_msg *cause,
                               const char *topic, const struct ledger_entry_src *e,
                               struct ks_err *err)
{
    char id[KS_ID_LEN];
    const char *key = ledger_entry_key(e);
    enum ks_code rc;

    ks_batch_next_id(b, cause, topic, id);
    if ((rc = ledger_entry_value(out, e, id, err)) != KS_OK)
        return rc;
    return ks_batch_emit(b, cause, topic, key, strlen(key), "kasir.ledger.LedgerEntry", out, err);
}
