/* control.c - the sandbox's own API for tests and the demo (not a PSP's):
 *
 *   GET  /healthz                          liveness
 *   GET  /_sandbox/ledger?psp=&kind=       every charge, refund, payout accepted, and the
 *                                          references accepted more than once ("duplicates")
 *   GET  /_sandbox/webhooks                every webhook delivery and its attempts
 *   GET  /_sandbox/faults                  the fault settings in force
 *   POST /_sandbox/faults                  {"error_pct":30,"timeout_pct":10,"decline_pct":0,
 *                                           "latency_ms":50,"jitter_ms":0,"hold_ms":0,"seed":7}
 *   POST /_sandbox/events                  {"psp","event","id","amount"?,"duplicates"?,
 *                                           "out_of_order"?,"delay_ms"?}: a customer pays a VA,
 *                                          a QR code or an e-wallet, or a charge expires
 *   GET  /_sandbox/settlements/{psp}?date=YYYY-MM-DD&discrepancies=missing:1,amount:1&seed=N
 *                                          &format=native|kasir
 *                                          the PSP's settlement CSV for that day; &manifest=1
 *                                          answers JSON {csv, injected[]} instead
 *   POST /_sandbox/reset                   forget everything (objects, keys, ledger, log) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deploy/psp-sandbox/sandbox.h"
#include "deploy/psp-sandbox/http.h"
#include "lib/jsonw.h"
#include "lib/banned.h"

static void problem(struct sb_resp *r, int status, const char *msg)
{
    /* msg may end in a character its buffer cut (an id of the request's, quoted): with it,
     * jansson refuses the text and the answer was empty */
    sb_respond_json(r, status, json_pack("{s:s%}", "error", msg, ks_utf8_uncut(msg)));
}

static json_t *faults_json(void)
{
    const struct sb_faults *f = &SB.faults;

    return json_pack("{s:i, s:i, s:i, s:i, s:i, s:i, s:I, s:o}", "decline_pct", f->decline_pct,
                     "error_pct", f->error_pct, "timeout_pct", f->timeout_pct, "latency_ms",
                     f->latency_ms, "jitter_ms", f->jitter_ms, "hold_ms", f->hold_ms, "seed",
                     (json_int_t)f->seed, "injected", sb_http_stats());
}

static int set_faults(json_t *b, char *msg, size_t cap)
{
    struct sb_faults f = SB.faults;
    const char *k;
    json_t *v;

    json_object_foreach(b, k, v) {
        json_int_t n;
        if (!json_is_integer(v)) {
            snprintf(msg, cap, "%s must be an integer", k);
            return -1;
        }
        n = json_integer_value(v);
        if (strcmp(k, "seed") == 0) {
            f.seed = (uint64_t)n;
            continue;
        }
        if (n < 0 || n > (strstr(k, "_pct") ? 100 : 600000)) {
            snprintf(msg, cap, "%s is out of range", k);
            return -1;
        }
        if (strcmp(k, "decline_pct") == 0)
            f.decline_pct = (int)n;
        else if (strcmp(k, "error_pct") == 0)
            f.error_pct = (int)n;
        else if (strcmp(k, "timeout_pct") == 0)
            f.timeout_pct = (int)n;
        else if (strcmp(k, "latency_ms") == 0)
            f.latency_ms = (int)n;
        else if (strcmp(k, "jitter_ms") == 0)
            f.jitter_ms = (int)n;
        else if (strcmp(k, "hold_ms") == 0)
            f.hold_ms = (int)n;
        else {
            snprintf(msg, cap, "unknown setting %s", k);
            return -1;
        }
    }
    if (f.error_pct + f.timeout_pct + f.decline_pct > 100) {
        snprintf(msg, cap, "error_pct + timeout_pct + decline_pct must not exceed 100");
        return -1;
    }
    if (json_object_get(b, "seed"))
        sb_reseed(f.seed);
    SB.faults = f;
    return 0;
}

static void event(json_t *b, struct sb_resp *r)
{
    const char *psp = json_string_value(json_object_get(b, "psp"));
    const char *ev = json_string_value(json_object_get(b, "event"));
    const char *id = json_string_value(json_object_get(b, "id"));
    struct sb_hook_opts o = {0};
    char msg[300] = "";
    int rc;

    if (!psp || !ev || !id) {
        problem(r, 400, "psp, event and id are required");
        return;
    }
    o.duplicates = (int)json_integer_value(json_object_get(b, "duplicates"));
    o.out_of_order = json_is_true(json_object_get(b, "out_of_order"));
    o.delay_ms = json_integer_value(json_object_get(b, "delay_ms"));
    if (o.duplicates < 0 || o.duplicates > 10 || o.delay_ms < 0 || o.delay_ms > 600000) {
        problem(r, 400, "duplicates must be 0..10 and delay_ms 0..600000");
        return;
    }
    if (strcmp(psp, "stripe") == 0)
        rc = sb_stripe_event(ev, id, &o, msg, sizeof(msg));
    else if (strcmp(psp, "xendit") == 0)
        rc = sb_xendit_event(ev, id, json_integer_value(json_object_get(b, "amount")), &o, msg,
                             sizeof(msg));
    else if (strcmp(psp, "midtrans") == 0)
        rc = sb_midtrans_event(ev, id, &o, msg, sizeof(msg));
    else if (strcmp(psp, "sandbox") == 0)
        rc = sb_native_event(ev, id, &o, msg, sizeof(msg));
    else {
        problem(r, 400, "psp must be stripe, xendit, midtrans or sandbox");
        return;
    }
    if (rc != 0) {
        problem(r, 409, msg);
        return;
    }
    sb_respond_json(r, 202, json_pack("{s:s, s:s, s:s}", "psp", psp, "event", ev, "id", id));
}

int sb_control_handle(const struct sb_call *c, struct sb_resp *r)
{
    int post = strcmp(c->method, "POST") == 0;
    json_t *b = NULL;
    char msg[300];

    if (strcmp(c->path, "/healthz") == 0) {
        sb_respond_json(r, 200, json_pack("{s:s}", "status", "ok"));
        return 1;
    }
    if (strncmp(c->path, "/_sandbox/", 10) != 0)
        return 0;
    if (post) {
        b = c->len ? json_loadb(c->body, c->len, JSON_REJECT_DUPLICATES, NULL) : json_object();
        if (!json_is_object(b)) {
            json_decref(b);
            problem(r, 400, "body must be a JSON object");
            return 1;
        }
    }
    if (!post && strcmp(c->path, "/_sandbox/ledger") == 0) {
        sb_respond_json(r, 200, sb_ledger_query(sb_query(c, "psp"), sb_query(c, "kind")));
    } else if (!post && strcmp(c->path, "/_sandbox/webhooks") == 0) {
        sb_respond_json(r, 200, json_pack("{s:o}", "deliveries", sb_hooks_log()));
    } else if (strcmp(c->path, "/_sandbox/faults") == 0) {
        if (post && set_faults(b, msg, sizeof(msg)) != 0)
            problem(r, 400, msg);
        else
            sb_respond_json(r, 200, faults_json());
    } else if (post && strcmp(c->path, "/_sandbox/events") == 0) {
        event(b, r);
    } else if (post && strcmp(c->path, "/_sandbox/reset") == 0) {
        sb_store_reset();
        sb_hooks_reset();
        sb_respond_json(r, 200, json_pack("{s:s}", "status", "reset"));
    } else if (!post && strncmp(c->path, "/_sandbox/settlements/", 22) == 0) {
        const char *date = sb_query(c, "date"), *seed = sb_query(c, "seed");
        const char *fmt = sb_query(c, "format");
        json_t *inj = json_array();
        char *csv = sb_settlement_csv(c->path + 22, date ? date : "", sb_query(c, "discrepancies"),
                                      fmt ? fmt : "native", seed ? strtoull(seed, NULL, 10) : 1,
                                      inj, msg, sizeof(msg));
        if (!csv) {
            problem(r, 400, msg);
            json_decref(inj);
        } else if (sb_query(c, "manifest")) {
            sb_respond_json(r, 200, json_pack("{s:s, s:o}", "csv", csv, "injected", inj));
            free(csv);
        } else {
            json_decref(inj);
            sb_respond_text(r, 200, "text/csv", csv);
        }
    } else {
        problem(r, 404, "no such sandbox endpoint");
    }
    json_decref(b);
    return 1;
}
