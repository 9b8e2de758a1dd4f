/* adapter.c - the adapter registry and the request/result helpers every adapter shares. */
#include "consumers/executor/adapter.h"

#include <stdio.h>
#include <string.h>

static const struct ex_adapter *const adapters[] = {
    &ex_adapter_sandbox,
    &ex_adapter_stripe,
    &ex_adapter_xendit,
    &ex_adapter_midtrans,
};

const struct ex_adapter *ex_adapter_find(const char *name)
{
    for (size_t i = 0; name && i < sizeof(adapters) / sizeof(adapters[0]); i++)
        if (strcmp(adapters[i]->name, name) == 0)
            return adapters[i];
    return NULL;
}

void ex_req_init(struct ex_req *req)
{
    req->method = "GET";
    req->content_type = NULL;
    ks_buf_init(&req->url);
    ks_buf_init(&req->body);
    ks_buf_init(&req->headers);
}

void ex_req_reset(struct ex_req *req)
{
    req->method = "GET";
    req->content_type = NULL;
    ks_buf_reset(&req->url);
    /* The body and headers may have held a secret: wipe before reuse. */
    if (req->body.p)
        memset(req->body.p, 0, req->body.cap);
    if (req->headers.p)
        memset(req->headers.p, 0, req->headers.cap);
    ks_buf_reset(&req->body);
    ks_buf_reset(&req->headers);
}

void ex_req_release(struct ex_req *req)
{
    ex_req_reset(req);
    ks_buf_release(&req->url);
    ks_buf_release(&req->body);
    ks_buf_release(&req->headers);
}

void ex_result_clear(struct ex_result *res)
{
    memset(res, 0, sizeof(*res));
    res->verdict = EX_UNKNOWN;
}

int ex_result_add_next(struct ex_result *res, const char *name, const char *value)
{
    size_t used = 0;
    if (res->n_next_action > 0) {
        const struct ex_kv *last = &res->next_action[res->n_next_action - 1];
        used = (size_t)(last->value - res->next_action_buf) + strlen(last->value) + 1;
    }
    size_t nl = strlen(name), vl = strlen(value);
    if (res->n_next_action >= EX_MAX_NEXT_ACTION || used + nl + vl + 2 > sizeof(res->next_action_buf))
        return -1;
    char *n = res->next_action_buf + used;
    memcpy(n, name, nl + 1);
    char *v = n + nl + 1;
    memcpy(v, value, vl + 1);
    res->next_action[res->n_next_action].name = n;
    res->next_action[res->n_next_action].value = v;
    res->n_next_action++;
    return 0;
}
