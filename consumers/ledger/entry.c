/* entry.c - the one home of the kasir.ledger.LedgerEntry message: its fields and its key,
 * for the entries kasir-ledger posts from outcomes and for those the ledger's SQL entry
 * points posted (payout holds, settlements, adjustments) that it publishes afterwards. */
#include <stdlib.h>
#include <string.h>

#include "lib/worker.h"
#include "consumers/ledger/ledger.h"
#include "lib/banned.h"

enum ks_code ledger_entry_emit(json_t *out, struct ks_batch *b, struct ks_msg *cause,
                               const char *topic, const struct ledger_entry_src *e,
                               struct ks_err *err)
{
    json_t *postings = json_array();
    char id[KS_ID_LEN];

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
    ks_batch_next_id(b, cause, topic, id);
    json_object_set_new(out, "message_id", json_string(id));
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
    {
        const char *key = PQgetvalue(e->res, e->from, LEDGER_COL_KEY);
        return ks_batch_emit(b, cause, topic, key, strlen(key), "kasir.ledger.LedgerEntry", out,
                             err);
    }
}
