/* state.c - the state machine of one PSP operation, as notifications tell it
 * (webhooks.h). Pure; the worker locks the operation and stores its state. */
#include <string.h>

#include "consumers/webhooks/webhooks.h"
#include "lib/banned.h"

static const char *const result_names[] = {"applied", "duplicate", "stale", "late_success"};

const char *wh_result_name(enum wh_result r)
{
    return (unsigned)r < 4 ? result_names[r] : "";
}

enum wh_result wh_decide(enum wh_kind k, int cur, int late_done, enum wh_status to)
{
    if (cur < 0)
        return WH_APPLIED;
    if (cur == WH_PENDING_CUSTOMER)
        return to == WH_PENDING_CUSTOMER ? WH_DUPLICATE : WH_APPLIED;
    if ((int)to == cur)
        return WH_DUPLICATE;
    /* the money moved even though Kasir had given up on it: the ledger must book it
     * (to suspense, docs/LEDGER.md), so it is reported, once */
    if (k == WH_CHARGE && to == WH_SUCCEEDED && (cur == WH_FAILED || cur == WH_EXPIRED))
        return late_done ? WH_DUPLICATE : WH_LATE;
    return WH_STALE;
}

int wh_status_parse(const char *st)
{
    for (int s = WH_SUCCEEDED; st && s <= WH_PAID_OUT; s++)
        if (strcmp(wh_status_name((enum wh_status)s), st) == 0)
            return s;
    return -1;
}

int wh_table_state(enum wh_kind k, const char *st)
{
    static const struct {
        enum wh_kind k;
        const char *st;
        enum wh_status to;
    } map[] = {
        {WH_CHARGE, "PENDING_CUSTOMER", WH_PENDING_CUSTOMER},
        {WH_CHARGE, "SUCCESS", WH_SUCCEEDED},
        {WH_CHARGE, "FAILED", WH_FAILED},
        {WH_CHARGE, "EXPIRED", WH_EXPIRED},
        {WH_REFUND, "SUCCEEDED", WH_REFUNDED},
        {WH_REFUND, "FAILED", WH_FAILED},
        {WH_PAYOUT, "PAID_OUT", WH_PAID_OUT},
        {WH_PAYOUT, "FAILED", WH_FAILED},
    };
    for (size_t i = 0; st && i < sizeof(map) / sizeof(map[0]); i++)
        if (map[i].k == k && strcmp(map[i].st, st) == 0)
            return (int)map[i].to;
    return -1;
}
