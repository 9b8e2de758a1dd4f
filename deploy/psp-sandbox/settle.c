/* settle.c - settlement files for a day, from the ledger, with injected discrepancies.
 *
 * Layouts (format=native, the default):
 *   stripe   - the columns of Stripe's "Itemized balance change from activity" report
 *              (https://docs.stripe.com/reports/report-types/balance): amounts in major
 *              units, currency lower case, refunds negative, reporting_category per row;
 *   xendit   - modelled on the Xendit Dashboard's transaction report (Xendit publishes no
 *              column schema): whole-rupiah amounts, upper-case types and statuses;
 *   midtrans - modelled on the Midtrans MAP settlement export (likewise unpublished):
 *              order_id, transaction_id, gross "150000.00", transaction_status.
 * format=kasir writes the same rows in the ingress's "generic" layout (reference,
 * gross_amount, fee_amount, currency, transaction_status, settlement_time), which
 * POST /v1/settlements/{psp} reads today.
 *
 * Discrepancies ("missing:1,extra:1,amount:1,fee:1,currency:1,duplicate:1,status:1") each
 * pick distinct rows with the seed, so a test knows exactly what recon must find; every
 * change is reported in `injected`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deploy/psp-sandbox/sandbox.h"
#include "lib/jsonw.h"
#include "lib/banned.h"

struct row {
    char ref[128], merchant_ref[128], txn[128], kind[8], method[24], currency[4], status[16];
    int64_t gross, fee, at_us;
    int dup, drop;
};

static const char *const classes[] = {"missing", "extra", "amount", "fee", "currency",
                                      "duplicate", "status", NULL};

/* src into dst, cut (if it must be) between characters: the CSV and its manifest stay UTF-8 */
static void copy_text(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%.*s", (int)ks_utf8_prefix(src, cap - 1), src);
}

static int64_t fee_of(const char *psp, const char *kind, const char *method, int64_t gross)
{
    if (strcmp(kind, "refund") == 0)
        return 0;
    if (strcmp(kind, "payout") == 0)
        return 500000; /* Rp 5,000 a transfer */
    if (strcmp(psp, "stripe") == 0 || strcmp(method, "card") == 0)
        return gross * 29 / 1000 + 30; /* 2.9 % + 30 minor units */
    if (strcmp(method, "virtual_account") == 0)
        return 400000; /* Rp 4,000 a VA payment */
    if (strcmp(method, "ewallet") == 0)
        return gross * 2 / 100;
    return gross * 7 / 1000; /* QRIS MDR 0.7 % */
}

static uint64_t rs;
static uint64_t rnd(void)
{
    uint64_t z = (rs += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void put_amount(struct ks_jw *w, int64_t minor, const char *cur, int whole)
{
    char buf[48];

    if (whole) /* Xendit writes whole rupiah */
        snprintf(buf, sizeof(buf), "%lld", (long long)(minor / 100));
    else
        sb_amount_str(minor, cur, buf, sizeof(buf));
    ks_jw_put(w, buf, strlen(buf));
}

static void cell(struct ks_jw *w, const char *s, int last)
{
    /* RFC 4180: quote a field holding a comma, quote or line break */
    if (strpbrk(s, ",\"\r\n")) {
        ks_jw_put(w, "\"", 1);
        for (; *s; s++) {
            if (*s == '"')
                ks_jw_put(w, "\"", 1);
            ks_jw_put(w, s, 1);
        }
        ks_jw_put(w, "\"", 1);
    } else {
        ks_jw_put(w, s, strlen(s));
    }
    ks_jw_put(w, last ? "\n" : ",", 1);
}

static void write_row(struct ks_jw *w, const char *psp, const char *format, const struct row *r)
{
    char t[40], a[48], cur[4];
    int refund = strcmp(r->kind, "refund") == 0, i;
    int64_t sign = refund ? -1 : 1;

    sb_time_iso(r->at_us, 0, t, sizeof(t));
    /* the sandbox's own layout is the ingress's "sandbox" one: same cells as kasir's */
    if (strcmp(format, "kasir") == 0 || strcmp(psp, "sandbox") == 0) {
        cell(w, r->ref, 0);
        sb_amount_str(r->gross, r->currency, a, sizeof(a));
        cell(w, a, 0);
        sb_amount_str(r->fee, r->currency, a, sizeof(a));
        cell(w, a, 0);
        cell(w, r->currency, 0);
        cell(w, r->status, 0);
        cell(w, t, 1);
        return;
    }
    if (strcmp(psp, "stripe") == 0) {
        char bt[48];
        snprintf(bt, sizeof(bt), "txn_%s", r->ref + 3);
        cell(w, bt, 0);
        cell(w, t, 0);
        cell(w, t, 0);
        for (i = 0; i < 3; i++)
            cur[i] = (char)(r->currency[i] + 32);
        cur[3] = '\0';
        cell(w, cur, 0);
        sb_amount_str(sign * r->gross, r->currency, a, sizeof(a));
        cell(w, a, 0);
        sb_amount_str(r->fee, r->currency, a, sizeof(a));
        cell(w, a, 0);
        sb_amount_str(sign * r->gross - r->fee, r->currency, a, sizeof(a));
        cell(w, a, 0);
        cell(w, r->status, 0); /* reporting_category */
        cell(w, r->ref, 0);
        cell(w, refund ? "REFUND FOR CHARGE" : "", 0);
        cell(w, refund ? "" : r->ref, 0);
        cell(w, r->merchant_ref, 1);
    } else if (strcmp(psp, "xendit") == 0) {
        cell(w, r->merchant_ref, 0);
        cell(w, r->ref, 0);
        cell(w, strcmp(r->kind, "payout") == 0 ? "DISBURSEMENT"
                : strcmp(r->method, "qris") == 0 ? "QR_CODE"
                                                 : "VIRTUAL_ACCOUNT", 0);
        cell(w, r->status, 0);
        cell(w, r->currency, 0);
        put_amount(w, r->gross, r->currency, 1);
        ks_jw_put(w, ",", 1);
        put_amount(w, r->fee, r->currency, 1);
        ks_jw_put(w, ",", 1);
        put_amount(w, r->gross - r->fee, r->currency, 1);
        ks_jw_put(w, ",", 1);
        cell(w, t, 0);
        cell(w, t, 1);
    } else {
        cell(w, r->ref, 0); /* Midtrans' reference is the merchant's order_id */
        cell(w, r->txn, 0);
        cell(w, r->method, 0);
        cell(w, r->status, 0);
        cell(w, r->currency, 0);
        sb_amount_str(r->gross, r->currency, a, sizeof(a));
        cell(w, a, 0);
        sb_amount_str(r->fee, r->currency, a, sizeof(a));
        cell(w, a, 0);
        sb_amount_str(r->gross - r->fee, r->currency, a, sizeof(a));
        cell(w, a, 0);
        cell(w, t, 0);
        cell(w, t, 1);
    }
}

static const char *header_of(const char *psp, const char *format)
{
    if (strcmp(format, "kasir") == 0)
        return "reference,gross_amount,fee_amount,currency,transaction_status,settlement_time\n";
    if (strcmp(psp, "sandbox") == 0)
        return "psp_reference,amount,fee,currency,status,settled_at\n";
    if (strcmp(psp, "stripe") == 0)
        return "balance_transaction_id,created_utc,available_on_utc,currency,gross,fee,net,"
               "reporting_category,source_id,description,payment_intent_id,"
               "payment_metadata[order_id]\n";
    if (strcmp(psp, "xendit") == 0)
        return "Reference,Transaction ID,Type,Status,Currency,Amount,Fee,Net Amount,"
               "Created Date,Settlement Date\n";
    return "Order ID,Transaction ID,Payment Type,Transaction Status,Currency,Gross Amount,Fee,"
           "Net Amount,Transaction Time,Settlement Time\n";
}

static void status_of(const char *psp, const char *format, const char *kind, int failed,
                      char *out, size_t cap)
{
    int kasir = strcmp(format, "kasir") == 0 || strcmp(psp, "sandbox") == 0;
    int payout = strcmp(kind, "payout") == 0, refund = strcmp(kind, "refund") == 0;

    if (kasir)
        snprintf(out, cap, "%s", failed ? "failed" : payout ? "paid_out" : refund ? "refunded" : "settled");
    else if (strcmp(psp, "stripe") == 0)
        snprintf(out, cap, "%s", failed ? "charge_failure" : refund ? "refund" : "charge");
    else if (strcmp(psp, "xendit") == 0)
        snprintf(out, cap, "%s", failed ? "FAILED" : refund ? "REFUNDED" : payout ? "COMPLETED" : "SETTLED");
    else
        snprintf(out, cap, "%s", failed ? "deny" : refund ? "refund" : payout ? "completed" : "settlement");
}

char *sb_settlement_csv(const char *psp, const char *date, const char *spec, const char *format,
                        uint64_t seed, json_t *injected, char *msg, size_t cap)
{
    json_t *led = sb_ledger_entries(), *e;
    struct row *rows = NULL, *extra = NULL;
    size_t n = 0, i, nextra = 0, *order = NULL, used = 0;
    struct ks_jw w;
    char *out = NULL, day[16];
    int counts[8] = {0};

    if (strcmp(psp, "stripe") != 0 && strcmp(psp, "xendit") != 0 && strcmp(psp, "midtrans") != 0 &&
        strcmp(psp, "sandbox") != 0) {
        snprintf(msg, cap, "psp must be stripe, xendit, midtrans or sandbox");
        return NULL;
    }
    if (strcmp(format, "native") != 0 && strcmp(format, "kasir") != 0) {
        snprintf(msg, cap, "format must be native or kasir");
        return NULL;
    }
    if (strlen(date) != 10 || date[4] != '-' || date[7] != '-' ||
        strspn(date, "0123456789") != 4 || strspn(date + 5, "0123456789") != 2 ||
        strspn(date + 8, "0123456789") != 2) {
        snprintf(msg, cap, "date must be YYYY-MM-DD");
        return NULL;
    }
    /* discrepancy counts */
    for (const char *p = spec ? spec : ""; *p;) {
        size_t len = strcspn(p, ","), k;
        int found = 0;
        for (k = 0; classes[k]; k++) {
            size_t cl = strlen(classes[k]);
            if (len > cl + 1 && strncmp(p, classes[k], cl) == 0 && p[cl] == ':') {
                counts[k] = (int)strtol(p + cl + 1, NULL, 10);
                found = counts[k] >= 0 && counts[k] <= 1000;
            }
        }
        if (!found) {
            snprintf(msg, cap, "discrepancies: expected class:count with class one of missing, "
                               "extra, amount, fee, currency, duplicate, status");
            return NULL;
        }
        p += len;
        if (*p == ',')
            p++;
    }
    rows = calloc(json_array_size(led) + 1, sizeof(*rows));
    if (!rows)
        goto oom;
    json_array_foreach(led, i, e) {
        struct row *r;
        const char *cur = json_string_value(json_object_get(e, "currency"));
        const char *ref = json_string_value(json_object_get(e, "reference"));
        if (strcmp(json_string_value(json_object_get(e, "psp")), psp) != 0)
            continue;
        sb_time_iso(json_integer_value(json_object_get(e, "at_us")), 0, day, sizeof(day));
        if (strncmp(day, date, 10) != 0)
            continue;
        r = &rows[n++];
        copy_text(r->ref, sizeof(r->ref), json_string_value(json_object_get(e, "object_id")));
        copy_text(r->merchant_ref, sizeof(r->merchant_ref), ref ? ref : "");
        snprintf(r->kind, sizeof(r->kind), "%s", json_string_value(json_object_get(e, "kind")));
        snprintf(r->method, sizeof(r->method), "%s",
                 json_string_value(json_object_get(e, "method")) ? json_string_value(json_object_get(e, "method")) : "");
        for (int k = 0; k < 3 && cur[k]; k++)
            r->currency[k] = (char)(cur[k] >= 'a' && cur[k] <= 'z' ? cur[k] - 32 : cur[k]);
        r->gross = json_integer_value(json_object_get(e, "amount"));
        r->fee = fee_of(psp, r->kind, r->method, r->gross);
        {
            json_t *tx = strcmp(psp, "midtrans") == 0 ? sb_obj_get("midtrans_tx", r->ref) : NULL;
            const char *tid = json_string_value(json_object_get(tx, "transaction_id"));
            copy_text(r->txn, sizeof(r->txn), tid ? tid : r->ref);
        }
        r->at_us = json_integer_value(json_object_get(e, "at_us"));
        status_of(psp, format, r->kind, 0, r->status, sizeof(r->status));
    }
    /* a seeded permutation: each altering class takes the next unused rows */
    order = calloc(n + 1, sizeof(*order));
    if (!order)
        goto oom;
    for (i = 0; i < n; i++)
        order[i] = i;
    rs = seed;
    for (i = n; i > 1; i--) {
        size_t j = (size_t)(rnd() % i), t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
    for (int k = 0; classes[k]; k++) {
        for (int c = 0; c < counts[k]; c++) {
            struct row *r;
            char detail[120] = "";
            if (strcmp(classes[k], "extra") == 0) {
                struct row *ne = realloc(extra, (nextra + 1) * sizeof(*extra));
                char id[48];
                if (!ne)
                    goto oom;
                extra = ne;
                r = &extra[nextra++];
                memset(r, 0, sizeof(*r));
                /* from the seed, so the same request gives the same file */
                snprintf(id, sizeof(id), "%sx%016llx", strcmp(psp, "stripe") == 0 ? "pi_" : "",
                         (unsigned long long)rnd());
                snprintf(r->ref, sizeof(r->ref), "%s", id);
                snprintf(r->merchant_ref, sizeof(r->merchant_ref), "unknown-%s", id);
                snprintf(r->txn, sizeof(r->txn), "%s", id);
                snprintf(r->kind, sizeof(r->kind), "charge");
                snprintf(r->method, sizeof(r->method), strcmp(psp, "stripe") == 0 ? "card" : "qris");
                snprintf(r->currency, sizeof(r->currency), "IDR");
                r->gross = 1500000;
                r->fee = fee_of(psp, "charge", r->method, r->gross);
                r->at_us = n ? rows[0].at_us : sb_now_us();
                status_of(psp, format, "charge", 0, r->status, sizeof(r->status));
                json_array_append_new(injected, json_pack("{s:s, s:s}", "class", "extra",
                                                          "reference", r->ref));
                continue;
            }
            if (used >= n) {
                snprintf(msg, cap, "only %zu rows on %s: too few for the discrepancies asked",
                         n, date);
                goto fail;
            }
            r = &rows[order[used++]];
            if (strcmp(classes[k], "missing") == 0) {
                r->drop = 1;
            } else if (strcmp(classes[k], "amount") == 0) {
                r->gross += 100;
                snprintf(detail, sizeof(detail), "gross +1.00");
            } else if (strcmp(classes[k], "fee") == 0) {
                r->fee += 100;
                snprintf(detail, sizeof(detail), "fee +1.00");
            } else if (strcmp(classes[k], "currency") == 0) {
                snprintf(r->currency, sizeof(r->currency), "%s",
                         strcmp(r->currency, "USD") == 0 ? "SGD" : "USD");
                snprintf(detail, sizeof(detail), "currency %s", r->currency);
            } else if (strcmp(classes[k], "duplicate") == 0) {
                r->dup = 1;
            } else {
                status_of(psp, format, r->kind, 1, r->status, sizeof(r->status));
                snprintf(detail, sizeof(detail), "status %s", r->status);
            }
            json_array_append_new(injected, json_pack("{s:s, s:s, s:s?}", "class", classes[k],
                                                      "reference", r->ref, "detail",
                                                      detail[0] ? detail : NULL));
        }
    }
    ks_jw_init(&w, NULL, 0);
    ks_jw_put(&w, header_of(psp, format), strlen(header_of(psp, format)));
    for (i = 0; i < n; i++) {
        if (rows[i].drop)
            continue;
        write_row(&w, psp, format, &rows[i]);
        if (rows[i].dup)
            write_row(&w, psp, format, &rows[i]);
    }
    for (i = 0; i < nextra; i++)
        write_row(&w, psp, format, &extra[i]);
    out = ks_jw_take(&w, NULL);
    if (!out)
        goto oom;
    goto done;
oom:
    snprintf(msg, cap, "out of memory");
fail:
    out = NULL;
done:
    free(rows);
    free(extra);
    free(order);
    return out;
}
