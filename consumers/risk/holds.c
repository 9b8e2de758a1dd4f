/* holds.c - `kasir-risk holds`: the admin operations on held payments and payouts, from a
 * shell. The same SQL functions as the ingress's admin endpoints (functions/risk_hold_*.sql),
 * so both ways record who and why and release the commands exactly once.
 *
 *   kasir-risk holds list    --partner P [--status HELD|APPROVED|REJECTED|all]
 *                            [--limit N] [--after HOLD_ID]
 *   kasir-risk holds approve --partner P --by WHO --reason WHY HOLD_ID
 *   kasir-risk holds reject  --partner P --by WHO --reason WHY HOLD_ID
 * Every form takes [-c config-file] (pg.dsn, or env KASIR_PG_DSN). list prints one JSON
 * object per hold; approve and reject print the hold. Exit status: 0 done (or already so),
 * 1 not found, a conflicting decision or a database error, 2 bad usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/config.h"
#include "lib/db.h"
#include "lib/log.h"
#include "consumers/risk/risk.h"
#include "lib/banned.h"

static const char SQL_LIST[] = "SELECT risk_holds_list($1, $2, $3::int, $4)";
static const char SQL_DECIDE[] = "SELECT risk_hold_decide($1, $2, $3::boolean, $4, $5)";

static int usage(void)
{
    fprintf(stderr,
            "usage: kasir-risk holds list --partner P [--status HELD|APPROVED|REJECTED|all] "
            "[--limit N] [--after HOLD_ID] [-c file]\n"
            "       kasir-risk holds approve|reject --partner P --by WHO --reason WHY "
            "[-c file] HOLD_ID\n");
    return 2;
}

int risk_holds_main(int argc, char **argv)
{
    const char *verb = argc > 1 ? argv[1] : "", *partner = NULL, *status = "HELD",
               *limit = "100", *after = NULL, *by = NULL, *reason = NULL, *hold = NULL,
               *path = NULL;
    struct ks_config *cfg = NULL;
    struct ks_db *db = NULL;
    struct ks_err e = {0};
    PGresult *res = NULL;
    char actor[300];
    int list = strcmp(verb, "list") == 0, approve = strcmp(verb, "approve") == 0,
        reject = strcmp(verb, "reject") == 0, rc = 1;

    if (!list && !approve && !reject)
        return usage();
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (a[0] != '-') {
            if (hold || list)
                return usage();
            hold = a;
            continue;
        }
        if (!v)
            return usage();
        if (strcmp(a, "--partner") == 0)
            partner = v;
        else if (strcmp(a, "--status") == 0 && list)
            status = strcmp(v, "all") == 0 ? NULL : v;
        else if (strcmp(a, "--limit") == 0 && list)
            limit = v;
        else if (strcmp(a, "--after") == 0 && list)
            after = v;
        else if (strcmp(a, "--by") == 0 && !list)
            by = v;
        else if (strcmp(a, "--reason") == 0 && !list)
            reason = v;
        else if (strcmp(a, "-c") == 0)
            path = v;
        else
            return usage();
        i++;
    }
    if (!partner || (!list && (!hold || !by || !*by || !reason || !*reason)))
        return usage();
    if (!(cfg = risk_config_load(path)))
        return 2;
    if (!(db = ks_db_connect(ks_config_str(cfg, "pg.dsn"), &e))) {
        ks_log(KS_LOG_ERROR, "risk.holds.db", e.msg, NULL);
        goto out;
    }
    if (list) {
        const char *params[4] = {partner, status, limit, after};
        res = PQexecParams(ks_db_conn(db), SQL_LIST, 4, NULL, params, NULL, NULL, 0);
        if (ks_db_check(db, res, PGRES_TUPLES_OK, "list holds", &e) != KS_OK) {
            ks_log(KS_LOG_ERROR, "risk.holds.failed", e.msg, NULL);
            goto out;
        }
        for (int t = 0; t < PQntuples(res); t++)
            printf("%s\n", PQgetvalue(res, t, 0));
        rc = 0;
    } else {
        /* who: the operator named on the command line, marked as coming from a shell */
        snprintf(actor, sizeof(actor), "cli:%s", by);
        const char *params[5] = {partner, hold, approve ? "true" : "false", actor, reason};
        json_t *out;
        const char *outcome;
        res = PQexecParams(ks_db_conn(db), SQL_DECIDE, 5, NULL, params, NULL, NULL, 0);
        if (ks_db_check(db, res, PGRES_TUPLES_OK, "decide hold", &e) != KS_OK) {
            ks_log(KS_LOG_ERROR, "risk.holds.failed", e.msg, NULL);
            goto out;
        }
        out = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
        outcome = json_string_value(json_object_get(out, "outcome"));
        if (outcome && (strcmp(outcome, "decided") == 0 || strcmp(outcome, "unchanged") == 0)) {
            char *h = json_dumps(json_object_get(out, "hold"), JSON_COMPACT);
            printf("%s\n", h ? h : "{}");
            free(h);
            rc = 0;
        } else if (outcome && strcmp(outcome, "conflict") == 0) {
            ks_log(KS_LOG_ERROR, "risk.holds.conflict", "the hold was decided the other way",
                   "hold_id", hold, NULL);
        } else {
            ks_log(KS_LOG_ERROR, "risk.holds.not_found", "no such hold for this partner",
                   "hold_id", hold, "partner", partner, NULL);
        }
        json_decref(out);
    }
out:
    PQclear(res);
    ks_db_free(db);
    ks_config_free(cfg);
    return rc;
}
