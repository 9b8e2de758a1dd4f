/* kasir-adaptercall - test tool: runs one PSP adapter's step sequence, and its status
 * sequence when the outcome is unknown, with libcurl easy against a base URL (the PSP
 * sandbox), and prints the result as one JSON line. For tests only: the executor core owns
 * the real transport (libcurl multi), the journal and the retries.
 *
 *   kasir-adaptercall --psp xendit|midtrans --base URL --op charge|refund|payout
 *       --method M --amount-minor N [--currency IDR] [--order-id X] [--refund-id X]
 *       [--payout-id X] [--charge-ref X] --idem-key K [--detail name=value]...
 *       [--payout-base URL] [--notify-url URL] [--fault-first F] [--header 'N: v']...
 *       [--no-resolve] [--status-only] [--psp-reference R] [--timeout-ms N]
 *
 * Secrets come from the environment, never the command line (ps shows it):
 * KASIR_ADAPTERCALL_SECRET, KASIR_ADAPTERCALL_PAYOUT_SECRET.
 * --fault-first sends X-Sandbox-Fault: F with the first request only; --header adds a line
 * to every request. Output: {"call":{...},"status":{...}} where each sequence has
 * "verdict", "psp_reference", "amount_minor", "failure_code", "failure_message",
 * "next_action" and "requests" [{"method","url","http"}] (http 0: no answer; "transport":
 * the curl error). Exit 0 when a verdict was printed, 2 on bad arguments or a build error
 * (printed as {"build_error":{"code","field","msg"}}). */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consumers/executor/adapter.h"
#include "lib/buf.h"
#include "lib/jsonw.h"
#include "lib/banned.h"

#define MAX_DETAILS 16
#define MAX_HEADERS 8
#define MAX_STEPS 4

static const char *const verdicts[] = {"NEXT",   "SUCCEEDED", "PENDING_CUSTOMER", "PENDING",
                                       "FAILED", "RETRY",     "UNKNOWN",          "ABSENT"};

struct opts {
    const struct ex_adapter *a;
    struct ex_conf conf;
    struct ex_cmd cmd;
    struct ex_kv details[MAX_DETAILS];
    char *extra[MAX_HEADERS];
    size_t n_extra;
    const char *fault_first;
    const char *psp_reference;
    int resolve, status_only;
    long timeout_ms;
};

struct seq {
    struct ex_result res;
    struct ks_jw reqs; /* the requests' JSON array */
    int sent;          /* requests sent in all, for --fault-first */
};

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    ks_buf_add(ud, p, size * n);
    return size * n;
}

/* Sends req; the HTTP status (0 when no answer came) and the body into ans. */
static long send_req(const struct opts *o, struct ex_req *req, int first, struct ks_buf *ans,
                     CURLcode *cc)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    const char *s = ks_buf_str(&req->headers);
    char line[1024];
    long http = 0;

    ks_buf_reset(ans);
    if (!c) {
        *cc = CURLE_FAILED_INIT;
        return 0;
    }
    /* "Name: value\n" lines, as the adapter wrote them */
    while (s && *s) {
        const char *nl = strchr(s, '\n');
        size_t n = nl ? (size_t)(nl - s) : strlen(s);
        snprintf(line, sizeof(line), "%.*s", (int)n, s);
        h = curl_slist_append(h, line);
        s += n + (nl ? 1 : 0);
    }
    if (req->content_type) {
        snprintf(line, sizeof(line), "Content-Type: %s", req->content_type);
        h = curl_slist_append(h, line);
    }
    h = curl_slist_append(h, "Accept: application/json");
    h = curl_slist_append(h, "Expect:");
    for (size_t i = 0; i < o->n_extra; i++)
        h = curl_slist_append(h, o->extra[i]);
    if (first && o->fault_first) {
        snprintf(line, sizeof(line), "X-Sandbox-Fault: %s", o->fault_first);
        h = curl_slist_append(h, line);
    }
    curl_easy_setopt(c, CURLOPT_URL, ks_buf_str(&req->url));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, o->timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, ans);
    if (strcmp(req->method, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body.len ? (char *)req->body.p : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)req->body.len);
    }
    *cc = curl_easy_perform(c);
    if (*cc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &http);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return http;
}

/* Runs the step sequence (status = 0) or the status sequence (1), starting from prev.
 * KS_OK, or the build error in err. */
static enum ks_code run(struct opts *o, int status, const struct ex_result *prev, struct seq *q,
                        struct ks_err *err)
{
    struct ex_req req;
    struct ks_buf ans = KS_BUF_INIT;
    struct ex_result last;
    enum ks_code rc = KS_OK;

    ex_req_init(&req);
    if (prev)
        last = *prev;
    else
        ex_result_clear(&last);
    ks_jw_init(&q->reqs, NULL, 0);
    ks_jw_open_array(&q->reqs, NULL);
    for (int step = 0; step < MAX_STEPS; step++) {
        CURLcode cc;
        long http;

        ex_req_reset(&req);
        rc = (status ? o->a->build_status : o->a->build)(&o->conf, &o->cmd, step,
                                                         step || prev ? &last : NULL, &req, err);
        if (rc != KS_OK)
            break;
        http = send_req(o, &req, q->sent++ == 0, &ans, &cc);
        ks_jw_open(&q->reqs, NULL);
        ks_jw_str(&q->reqs, "method", req.method);
        ks_jw_str(&q->reqs, "url", ks_buf_str(&req.url));
        ks_jw_int(&q->reqs, "http", http);
        if (cc != CURLE_OK)
            ks_jw_str(&q->reqs, "transport", curl_easy_strerror(cc));
        ks_jw_close(&q->reqs, '}');
        ex_result_clear(&q->res);
        if (cc != CURLE_OK) {
            /* the core's rule: nothing sent is a retry, anything later is unknown */
            q->res.verdict = cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST
                                 ? EX_RETRY
                                 : EX_UNKNOWN;
            break;
        }
        (status ? o->a->parse_status : o->a->parse)(&o->conf, &o->cmd, step, http,
                                                    (const char *)ans.p, ans.len, &q->res);
        if (q->res.verdict != EX_NEXT)
            break;
        last = q->res;
    }
    ks_jw_close(&q->reqs, ']');
    ex_req_release(&req);
    ks_buf_release(&ans);
    return rc;
}

static void print_seq(struct ks_jw *w, const char *name, struct seq *q)
{
    size_t len;
    char *reqs = ks_jw_take(&q->reqs, &len);

    ks_jw_open(w, name);
    ks_jw_str(w, "verdict", verdicts[q->res.verdict]);
    ks_jw_str(w, "psp_reference", q->res.psp_reference);
    ks_jw_int(w, "amount_minor", q->res.amount_minor);
    ks_jw_str(w, "failure_code", q->res.failure_code);
    ks_jw_str(w, "failure_message", q->res.failure_message);
    ks_jw_open(w, "next_action");
    for (size_t i = 0; i < q->res.n_next_action; i++)
        ks_jw_str(w, q->res.next_action[i].name, q->res.next_action[i].value);
    ks_jw_close(w, '}');
    ks_jw_json(w, "requests", reqs ? reqs : "[]");
    ks_jw_close(w, '}');
    free(reqs);
}

static int usage(const char *why)
{
    fprintf(stderr, "kasir-adaptercall: %s (see the comment at the top of "
                    "tests/tools/adaptercall/main.c)\n", why);
    return 2;
}

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v ? v : "";
}

int main(int argc, char **argv)
{
    struct opts o = {.resolve = 1, .timeout_ms = 5000};
    struct seq call = {0}, st = {0};
    struct ks_err err = {0};
    struct ks_jw w;
    size_t nd = 0;
    enum ks_code rc = KS_OK;
    char *text;

    o.conf = (struct ex_conf){.base_url = "", .secret = env("KASIR_ADAPTERCALL_SECRET"),
                              .payout_base_url = "",
                              .payout_secret = env("KASIR_ADAPTERCALL_PAYOUT_SECRET"),
                              .notify_url = ""};
    o.cmd = (struct ex_cmd){.op = EX_OP_CHARGE, .command_id = "cmd_adaptercall",
                            .partner_id = "adaptercall", .payment_id = "", .order_id = "",
                            .refund_id = "", .payout_id = "", .idem_key = "", .currency = "IDR",
                            .method = "", .charge_ref = ""};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int flag = strcmp(a, "--no-resolve") == 0 || strcmp(a, "--status-only") == 0;
        if (!flag && !v)
            return usage("a value is missing");
        if (strcmp(a, "--psp") == 0) {
            o.a = ex_adapter_find(v);
            if (!o.a || (strcmp(v, "xendit") != 0 && strcmp(v, "midtrans") != 0))
                return usage("--psp is xendit or midtrans");
        } else if (strcmp(a, "--base") == 0) {
            o.conf.base_url = v;
        } else if (strcmp(a, "--payout-base") == 0) {
            o.conf.payout_base_url = v;
        } else if (strcmp(a, "--notify-url") == 0) {
            o.conf.notify_url = v;
        } else if (strcmp(a, "--op") == 0) {
            if (strcmp(v, "charge") == 0)
                o.cmd.op = EX_OP_CHARGE;
            else if (strcmp(v, "refund") == 0)
                o.cmd.op = EX_OP_REFUND;
            else if (strcmp(v, "payout") == 0)
                o.cmd.op = EX_OP_PAYOUT;
            else
                return usage("--op is charge, refund or payout");
        } else if (strcmp(a, "--method") == 0) {
            o.cmd.method = v;
        } else if (strcmp(a, "--amount-minor") == 0) {
            char *end;
            o.cmd.amount_minor = strtoll(v, &end, 10);
            if (*end || end == v)
                return usage("--amount-minor is an integer");
        } else if (strcmp(a, "--currency") == 0) {
            o.cmd.currency = v;
        } else if (strcmp(a, "--order-id") == 0) {
            o.cmd.order_id = v;
        } else if (strcmp(a, "--refund-id") == 0) {
            o.cmd.refund_id = v;
        } else if (strcmp(a, "--payout-id") == 0) {
            o.cmd.payout_id = v;
        } else if (strcmp(a, "--charge-ref") == 0) {
            o.cmd.charge_ref = v;
        } else if (strcmp(a, "--idem-key") == 0) {
            o.cmd.idem_key = v;
        } else if (strcmp(a, "--detail") == 0) {
            char *eq = strchr(argv[i + 1], '=');
            if (!eq || nd == MAX_DETAILS)
                return usage("--detail is name=value (at most 16)");
            *eq = '\0';
            o.details[nd++] = (struct ex_kv){argv[i + 1], eq + 1};
        } else if (strcmp(a, "--header") == 0) {
            if (o.n_extra == MAX_HEADERS)
                return usage("at most 8 --header");
            o.extra[o.n_extra++] = argv[i + 1];
        } else if (strcmp(a, "--fault-first") == 0) {
            o.fault_first = v;
        } else if (strcmp(a, "--psp-reference") == 0) {
            o.psp_reference = v;
        } else if (strcmp(a, "--timeout-ms") == 0) {
            o.timeout_ms = strtol(v, NULL, 10);
        } else if (strcmp(a, "--no-resolve") == 0) {
            o.resolve = 0;
        } else if (strcmp(a, "--status-only") == 0) {
            o.status_only = 1;
        } else {
            return usage("unknown argument");
        }
        if (!flag)
            i++;
    }
    if (!o.a || !*o.conf.base_url || !*o.cmd.method)
        return usage("--psp, --base and --method are required");
    o.cmd.details = o.details;
    o.cmd.n_details = nd;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    ks_jw_init(&w, NULL, 0);
    ks_jw_open(&w, NULL);
    if (o.status_only) {
        struct ex_result prev;
        ex_result_clear(&prev);
        snprintf(prev.psp_reference, sizeof(prev.psp_reference), "%s",
                 o.psp_reference ? o.psp_reference : "");
        rc = run(&o, 1, &prev, &st, &err);
        if (rc == KS_OK)
            print_seq(&w, "status", &st);
    } else {
        rc = run(&o, 0, NULL, &call, &err);
        if (rc == KS_OK)
            print_seq(&w, "call", &call);
        /* as the core does: an unknown outcome is asked about before anything is resent */
        if (rc == KS_OK && o.resolve && call.res.verdict == EX_UNKNOWN) {
            st.sent = call.sent;
            rc = run(&o, 1, &call.res, &st, &err);
            if (rc == KS_OK)
                print_seq(&w, "status", &st);
        }
    }
    if (rc != KS_OK) {
        ks_jw_open(&w, "build_error");
        ks_jw_str(&w, "code", ks_code_name(err.code));
        ks_jw_str(&w, "field", err.field);
        ks_jw_str(&w, "msg", err.msg);
        ks_jw_close(&w, '}');
    }
    ks_jw_close(&w, '}');
    text = ks_jw_take(&w, NULL);
    printf("%s\n", text ? text : "{}");
    free(text);
    ks_jw_free(&call.reqs);
    ks_jw_free(&st.reqs);
    curl_global_cleanup();
    return rc == KS_OK ? 0 : 2;
}
