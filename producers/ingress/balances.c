/* balances.c - GET /v1/balances/{seller_id}: a seller's wallet in each currency, as the
 * ledger holds it (docs/LEDGER.md): available (the seller_wallet account: what payouts may
 * draw) and held for payouts in flight (the payout_hold account), each the sum of the
 * account's balance stripes, read in one statement (one snapshot).
 *
 * Scoped to the calling partner: accounts are named after their partner, so another
 * partner's seller, an unknown seller and a seller with no money movement yet all answer
 * the same 404 (nothing tells one from the other). Scope payouts:read: the balance is what
 * payouts draw from. */
#include <stdlib.h>
#include <string.h>

#include "lib/money.h"
#include "producers/ingress/ingress.h"
#include "lib/banned.h"

/* Both accounts of every currency of the seller, by range scans of the accounts' primary
 * key (codes are "<type>/<partner>/<seller>/<CUR>", '/' is in no id: the range holds this
 * seller's accounts only; '0' is the character after '/'). Credit-normal: shown negated. */
static const char SQL_BALANCE[] =
    "SELECT a.currency,"
    "       -coalesce(sum(b.balance_minor) FILTER (WHERE a.type = 'seller_wallet'), 0),"
    "       -coalesce(sum(b.balance_minor) FILTER (WHERE a.type = 'payout_hold'), 0)"
    "  FROM ledger_accounts a LEFT JOIN ledger_balances b ON b.account = a.account"
    " WHERE (a.account >= 'seller_wallet/' || $2 || '/' || $1 || '/'"
    "        AND a.account < 'seller_wallet/' || $2 || '/' || $1 || '0')"
    "    OR (a.account >= 'payout_hold/' || $2 || '/' || $1 || '/'"
    "        AND a.account < 'payout_hold/' || $2 || '/' || $1 || '0')"
    " GROUP BY a.currency ORDER BY a.currency";

/* a seller id as the ingress accepts them (validate.c): 1-64 of letters, digits, _ - . : */
static int seller_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > ING_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.' || c == ':'))
            return 0;
    }
    return 1;
}

static void money(json_t *o, const char *name, int64_t minor, const char *cur)
{
    char buf[KS_MONEY_STRLEN];

    ing_amount_fmt(minor, cur, buf);
    json_object_set_new(o, name, json_pack("{s:s, s:s}", "amount", buf, "currency", cur));
}

/* reader thread */
static void balance_job(struct ing_req *r, struct ing_rdb *db)
{
    const char *params[2] = {r->qarg, r->partner_id};
    struct ing_problem p;
    PGresult *res = ing_rdb_query(db, r, SQL_BALANCE, 2, params, &p);
    json_t *list, *out;

    if (!res)
        goto fail;
    if (PQntuples(res) == 0) {
        PQclear(res);
        ing_problem(&p, "not_found", "seller_id", "no balance for this seller");
        goto fail;
    }
    list = json_array();
    for (int t = 0; t < PQntuples(res); t++) {
        const char *cur = PQgetvalue(res, t, 0);
        json_t *b = json_pack("{s:s}", "currency", cur);
        money(b, "available", strtoll(PQgetvalue(res, t, 1), NULL, 10), cur);
        money(b, "held_for_payouts", strtoll(PQgetvalue(res, t, 2), NULL, 10), cur);
        json_array_append_new(list, b);
    }
    PQclear(res);
    out = json_pack("{s:s, s:o}", "seller_id", r->qarg, "balances", list);
    ing_respond_json(r, 200, out);
    ing_req_done(r);
    return;
fail:
    ing_respond_problem(r, &p);
    ing_req_done(r);
}

void ing_balance_get(struct ing_req *r)
{
    const char *seller = r->arg;
    struct ing_problem p;

    if (!seller_ok(seller)) {
        ing_problem(&p, "not_found", "seller_id", "no balance for this seller");
        goto fail;
    }
    if (!(r->qarg = strdup(seller))) {
        ing_problem(&p, "internal", NULL, "out of memory");
        goto fail;
    }
    if (ing_defer(r, balance_job, 0, ING.read_timeout_ms, &p) != 0)
        goto fail;
    return;
fail:
    ing_respond_problem(r, &p);
}
