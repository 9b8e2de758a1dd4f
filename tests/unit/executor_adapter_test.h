/* executor_adapter_test.h - what the adapter unit tests (test_executor_<psp>.c) share: the
 * adapters compiled in, a command and a configuration with a key made at run time, and
 * checks of a built request.
 *
 * A test defines FX_XENDIT or FX_MIDTRANS before including this: one adapter per test
 * program (the adapters' static names are alike, as each is its own translation unit in
 * the executor). adapter.c's registry names all four adapters; here the three not under
 * test stand for the one that is, so no fake adapter is defined and nothing outside tests/
 * changes. */
#ifndef EXECUTOR_ADAPTER_TEST_H
#define EXECUTOR_ADAPTER_TEST_H

#include <stdio.h>
#include <string.h>

#if defined(FX_XENDIT)
#include "consumers/executor/adapter_xendit.c"
#define ex_adapter_midtrans ex_adapter_xendit
#define ex_adapter_sandbox ex_adapter_xendit
#define ex_adapter_stripe ex_adapter_xendit
#elif defined(FX_MIDTRANS)
#include "consumers/executor/adapter_midtrans.c"
#define ex_adapter_xendit ex_adapter_midtrans
#define ex_adapter_sandbox ex_adapter_midtrans
#define ex_adapter_stripe ex_adapter_midtrans
#else
#error "define FX_XENDIT or FX_MIDTRANS"
#endif
#include "consumers/executor/adapter.c"
#undef ex_adapter_sandbox
#undef ex_adapter_stripe
#include "consumers/executor/adapter_util.c"
#include "lib/crypto.h"
#include "tests/unit/ktest.h"

/* A key made at run time (never a fixture), and its Basic header line. */
static char fx_secret[64], fx_payout_secret[64], fx_auth[256], fx_payout_auth[256];

static void fx_key(const char *prefix, char *key, size_t cap, char *line, size_t lcap)
{
    uint8_t raw[12];
    char hex[25], up[128], enc[200];
    struct ks_err e = {0};

    if (ks_random_bytes(raw, sizeof(raw), &e) != KS_OK)
        memset(raw, 0x42, sizeof(raw));
    ks_hex_encode(raw, sizeof(raw), hex);
    snprintf(key, cap, "%s%s", prefix, hex);
    snprintf(up, sizeof(up), "%s:", key);
    ks_b64_encode((const uint8_t *)up, strlen(up), enc);
    snprintf(line, lcap, "Authorization: Basic %s\n", enc);
}

static void fx_keys(const char *prefix, const char *payout_prefix)
{
    fx_key(prefix, fx_secret, sizeof(fx_secret), fx_auth, sizeof(fx_auth));
    fx_key(payout_prefix, fx_payout_secret, sizeof(fx_payout_secret), fx_payout_auth,
           sizeof(fx_payout_auth));
}

static struct ex_conf fx_conf(const char *base, const char *notify)
{
    struct ex_conf c = {.base_url = base, .secret = fx_secret, .payout_base_url = "",
                        .payout_secret = fx_payout_secret, .notify_url = notify};
    return c;
}

static struct ex_cmd fx_cmd(enum ex_op op, const char *method, int64_t amount,
                            const struct ex_kv *details, size_t n)
{
    struct ex_cmd c = {.op = op, .command_id = "cmd_test", .partner_id = "partner_test",
                       .payment_id = "", .order_id = "", .refund_id = "", .payout_id = "",
                       .idem_key = "idem_0190f3c2-7b1e-7cc3-9d5e-3f1a2b4c5d6e",
                       .amount_minor = amount, .currency = "IDR", .method = method,
                       .details = details, .n_details = n, .charge_ref = ""};
    return c;
}

/* The built request as one comparable text: "METHOD url\nheaders\ncontent-type\nbody". */
static const char *fx_text(struct ex_req *r, char *out, size_t cap)
{
    snprintf(out, cap, "%s %s\n%s%s\n%s", r->method, ks_buf_str(&r->url),
             ks_buf_str(&r->headers), r->content_type ? r->content_type : "-",
             r->body.len ? ks_buf_str(&r->body) : "");
    return out;
}

/* The secrets appear nowhere but in the Authorization line, and there only encoded. */
static int fx_no_secret(struct ex_req *r)
{
    const char *parts[] = {ks_buf_str(&r->url), r->body.len ? ks_buf_str(&r->body) : "",
                           ks_buf_str(&r->headers)};
    for (size_t i = 0; i < 3; i++)
        if (parts[i] && (strstr(parts[i], fx_secret) || strstr(parts[i], fx_payout_secret)))
            return 0;
    return 1;
}

/* Builds step of cmd into a fresh request; rc, and the text in out. */
static enum ks_code fx_build(const struct ex_adapter *a, int status, const struct ex_conf *conf,
                             const struct ex_cmd *cmd, int step, const struct ex_result *prev,
                             char *out, size_t cap, struct ks_err *err)
{
    struct ex_req r;
    enum ks_code rc;

    ex_req_init(&r);
    memset(err, 0, sizeof(*err));
    rc = (status ? a->build_status : a->build)(conf, cmd, step, prev, &r, err);
    if (rc == KS_OK) {
        fx_text(&r, out, cap);
        KT_CHECK_MSG(fx_no_secret(&r), "a secret outside the Authorization header: %s", out);
    } else {
        out[0] = '\0';
    }
    ex_req_release(&r);
    return rc;
}

static void fx_parse(const struct ex_adapter *a, int status, const struct ex_cmd *cmd, int step,
                     long http, const char *body, struct ex_result *res)
{
    struct ex_conf c = fx_conf("https://psp.invalid", "");
    ex_result_clear(res);
    (status ? a->parse_status : a->parse)(&c, cmd, step, http, body, strlen(body), res);
}

static const char *fx_next(const struct ex_result *res, const char *name)
{
    for (size_t i = 0; i < res->n_next_action; i++)
        if (strcmp(res->next_action[i].name, name) == 0)
            return res->next_action[i].value;
    return "";
}

#endif
