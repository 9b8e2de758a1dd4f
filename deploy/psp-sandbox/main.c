/* main.c - kasir-psp-sandbox: a PSP simulator speaking Stripe, Xendit and Midtrans.
 *
 *   kasir-psp-sandbox [--config FILE]     serve (README.md says what and how)
 *   kasir-psp-sandbox config-doc          the settings table as Markdown
 *
 * Credentials and webhook secrets come from settings (environment in tests and the demo);
 * none has a default and none is ever logged. A PSP whose API key is unset answers 401. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <curl/curl.h>

#include "deploy/psp-sandbox/http.h"
#include "deploy/psp-sandbox/sandbox.h"
#include "lib/log.h"
#include "lib/banned.h"

struct sb_ctx SB;

static const struct ks_config_def defs[] = {
    {"http.port", KS_CFG_INT, "8091", 1, "TCP port of the sandbox's HTTP listener"},
    {"http.bind", KS_CFG_STRING, "127.0.0.1", 1, "IPv4 address to listen on"},
    {"http.threads", KS_CFG_INT, "2", 0, "libmicrohttpd thread pool size (poll() per thread)"},
    {"log.level", KS_CFG_STRING, "info", 1, "least severe level written: debug, info, warn or error"},
    {"stripe.secret_key", KS_CFG_STRING, "", 0,
     "Stripe secret key clients must present (sk_test_...); empty: Stripe answers 401"},
    {"stripe.webhook_secret", KS_CFG_STRING, "", 0,
     "signing secret of Stripe events (whsec_...), as the ingress's webhook.stripe.secret"},
    {"xendit.secret_key", KS_CFG_STRING, "", 0,
     "Xendit secret key (Basic auth user name); empty: Xendit answers 401"},
    {"xendit.callback_token", KS_CFG_STRING, "", 0,
     "x-callback-token sent with Xendit callbacks, as the ingress's webhook.xendit.token"},
    {"midtrans.server_key", KS_CFG_STRING, "", 0,
     "Midtrans server key (Basic auth user name, notification signature_key); empty: 401"},
    {"iris.api_key", KS_CFG_STRING, "", 0, "Iris creator API key (Basic auth); empty: 401"},
    {"iris.merchant_key", KS_CFG_STRING, "", 0, "Iris merchant key that signs Iris-Signature"},
    {"sandbox.api_key", KS_CFG_STRING, "", 0,
     "Bearer key of the sandbox's own API (/sandbox/v1/); empty: it answers 401"},
    {"sandbox.webhook_secret", KS_CFG_STRING, "", 0,
     "Standard Webhooks secret (whsec_<base64>) of its events, as the ingress's "
     "webhook.sandbox.secret"},
    {"webhook.base", KS_CFG_STRING, "", 0,
     "where notifications go: <base>/<psp> (e.g. http://127.0.0.1:8080/v1/webhooks); empty: "
     "none unless a per-PSP URL is set"},
    {"webhook.stripe_url", KS_CFG_STRING, "", 0, "Stripe endpoint URL (overrides webhook.base)"},
    {"webhook.xendit_url", KS_CFG_STRING, "", 0,
     "Xendit VA and disbursement callback URL (QR codes use their callback_url)"},
    {"webhook.midtrans_url", KS_CFG_STRING, "", 0,
     "Midtrans notification URL (X-Override-Notification on a charge wins)"},
    {"webhook.iris_url", KS_CFG_STRING, "", 0, "Iris payout notification URL"},
    {"webhook.sandbox_url", KS_CFG_STRING, "", 0, "URL of the sandbox API's own events"},
    {"webhook.sandbox_events", KS_CFG_STRING, "*", 0,
     "the sandbox API's events its endpoint receives, comma separated, as Stripe's "
     "enabled_events: * (all), a type (charge.succeeded), or a type for one method, as Xendit "
     "sets callbacks per product (charge.succeeded:virtual_account); the others are not sent"},
    {"webhook.attempts", KS_CFG_INT, "5", 0, "deliveries tried per notification (back-off doubling from 250 ms)"},
    {"webhook.threads", KS_CFG_INT, "2", 0, "webhook sender threads"},
    {"payout.delay", KS_CFG_DURATION_MS, "200ms", 0,
     "after this a disbursement's or Iris payout's result is notified"},
    {"fault.decline_pct", KS_CFG_INT, "0", 0, "share of charges and payouts declined, percent"},
    {"fault.error_pct", KS_CFG_INT, "0", 0, "share of PSP calls answered 5xx without running, percent"},
    {"fault.timeout_pct", KS_CFG_INT, "0", 0,
     "share of PSP calls that run (a charge is made) and then get no answer, percent"},
    {"fault.latency", KS_CFG_DURATION_MS, "0", 0, "added to every PSP answer"},
    {"fault.jitter", KS_CFG_DURATION_MS, "0", 0, "up to this much more, uniformly"},
    {"fault.hold", KS_CFG_DURATION_MS, "0", 0,
     "a timed-out call holds its connection this long before dropping it"},
    {"fault.seed", KS_CFG_INT, "1", 0, "seed of the fault decisions (same seed, same sequence)"},
};
#define NDEFS (sizeof(defs) / sizeof(defs[0]))

static volatile sig_atomic_t got_signal;
static void on_signal(int sig)
{
    got_signal = sig;
}

static const char *hook_url(const struct ks_config *cfg, const char *name, const char *psp,
                            char *buf, size_t cap)
{
    const char *v = ks_config_str(cfg, name), *base = ks_config_str(cfg, "webhook.base");

    if (*v)
        return v;
    if (!*base)
        return "";
    snprintf(buf, cap, "%s/%s", base, psp);
    return buf;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    struct ks_config *cfg;
    static char u1[512], u2[512], u3[512], u4[512], u5[512];
    char port[16];
    int i, rc = 1;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "config-doc") == 0) {
            ks_config_markdown(stdout, "kasir-psp-sandbox", defs, NDEFS);
            return 0;
        }
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            path = argv[++i];
        } else {
            fprintf(stderr, "usage: kasir-psp-sandbox [--config FILE] | config-doc\n");
            return 2;
        }
    }
    cfg = ks_config_load_main("psp-sandbox", defs, NDEFS, path);
    if (!cfg)
        return 2;
    SB.cfg = cfg;
    SB.stripe_key = ks_config_str(cfg, "stripe.secret_key");
    SB.stripe_whsec = ks_config_str(cfg, "stripe.webhook_secret");
    SB.xendit_key = ks_config_str(cfg, "xendit.secret_key");
    SB.xendit_token = ks_config_str(cfg, "xendit.callback_token");
    SB.midtrans_key = ks_config_str(cfg, "midtrans.server_key");
    SB.iris_key = ks_config_str(cfg, "iris.api_key");
    SB.iris_merchant_key = ks_config_str(cfg, "iris.merchant_key");
    SB.native_key = ks_config_str(cfg, "sandbox.api_key");
    SB.native_whsec = ks_config_str(cfg, "sandbox.webhook_secret");
    SB.native_events = ks_config_str(cfg, "webhook.sandbox_events");
    SB.hook_stripe = hook_url(cfg, "webhook.stripe_url", "stripe", u1, sizeof(u1));
    SB.hook_xendit = hook_url(cfg, "webhook.xendit_url", "xendit", u2, sizeof(u2));
    SB.hook_midtrans = hook_url(cfg, "webhook.midtrans_url", "midtrans", u3, sizeof(u3));
    SB.hook_iris = hook_url(cfg, "webhook.iris_url", "iris", u4, sizeof(u4));
    SB.hook_native = hook_url(cfg, "webhook.sandbox_url", "sandbox", u5, sizeof(u5));
    SB.hook_attempts = (int)ks_config_int(cfg, "webhook.attempts");
    SB.payout_delay_ms = ks_config_ms(cfg, "payout.delay");
    SB.faults.decline_pct = (int)ks_config_int(cfg, "fault.decline_pct");
    SB.faults.error_pct = (int)ks_config_int(cfg, "fault.error_pct");
    SB.faults.timeout_pct = (int)ks_config_int(cfg, "fault.timeout_pct");
    SB.faults.latency_ms = (int)ks_config_ms(cfg, "fault.latency");
    SB.faults.jitter_ms = (int)ks_config_ms(cfg, "fault.jitter");
    SB.faults.hold_ms = (int)ks_config_ms(cfg, "fault.hold");
    SB.faults.seed = (uint64_t)ks_config_int(cfg, "fault.seed");
    if (SB.faults.decline_pct < 0 || SB.faults.error_pct < 0 || SB.faults.timeout_pct < 0 ||
        SB.faults.decline_pct + SB.faults.error_pct + SB.faults.timeout_pct > 100) {
        ks_log(KS_LOG_ERROR, "config.invalid",
               "fault percentages must be >= 0 and add up to at most 100", NULL);
        rc = 2;
        goto out;
    }
    {
        char msg[200];
        if (sb_native_events_check(SB.native_events, msg, sizeof(msg)) != 0) {
            ks_log(KS_LOG_ERROR, "config.invalid", msg, "setting", "webhook.sandbox_events",
                   NULL);
            rc = 2;
            goto out;
        }
    }
    if (*SB.stripe_whsec == '\0' && *SB.hook_stripe)
        ks_log(KS_LOG_WARN, "sandbox.config", "stripe.webhook_secret is empty: Stripe events "
               "are signed with an empty secret", NULL);
    json_object_seed(0);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    if (sb_store_init() != 0 || sb_hooks_start((int)ks_config_int(cfg, "webhook.threads")) != 0)
        goto out;
    if (sb_http_start(ks_config_str(cfg, "http.bind"), (int)ks_config_int(cfg, "http.port"),
                      (int)ks_config_int(cfg, "http.threads")) != 0) {
        ks_logf(KS_LOG_ERROR, "sandbox.http.start", "could not listen on %s:%lld",
                ks_config_str(cfg, "http.bind"), (long long)ks_config_int(cfg, "http.port"));
        sb_hooks_stop();
        goto out;
    }
    snprintf(port, sizeof(port), "%lld", (long long)ks_config_int(cfg, "http.port"));
    ks_log(KS_LOG_INFO, "sandbox.started", "listening", "port", port, "stripe",
           *SB.stripe_key ? "on" : "off", "xendit", *SB.xendit_key ? "on" : "off", "midtrans",
           *SB.midtrans_key ? "on" : "off", "iris", *SB.iris_key ? "on" : "off", "native",
           *SB.native_key ? "on" : "off", NULL);
    while (!got_signal)
        pause();
    ks_log(KS_LOG_INFO, "sandbox.stopping", "answering delayed requests and stopping", NULL);
    SB.stopping = 1;
    sb_http_stop();
    sb_hooks_stop();
    rc = 0;
out:
    curl_global_cleanup();
    ks_config_free(cfg);
    return rc;
}
