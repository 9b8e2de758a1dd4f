/* adapter_util.h - small helpers the executor's adapters share: command details, JSON and
 * form bodies, URL escaping. Pure, like the adapters. */
#ifndef KS_EXECUTOR_ADAPTER_UTIL_H
#define KS_EXECUTOR_ADAPTER_UTIL_H

#include <jansson.h>

#include "consumers/executor/adapter.h"

/* The command detail called name, or "" when absent. */
const char *ex_detail(const struct ex_cmd *cmd, const char *name);
/* Appends v, compact, to req->body; 0, or -1 on no memory. */
int ex_json_body(struct ex_req *req, const json_t *v);
/* Appends s percent-encoded (RFC 3986 unreserved characters kept) to b. */
void ex_url_escape(struct ks_buf *b, const char *s);
/* Appends "name=value" (both escaped) to a form body, with '&' before all but the first. */
void ex_form_add(struct ks_buf *b, const char *name, const char *value);

#endif
