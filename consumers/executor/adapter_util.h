/* adapter_util.h - what the adapters share: command details, Basic credentials, header
 * lines, URL escaping, JSON and form bodies, whole-unit amounts and reading answers.
 *
 * Pure like the adapters: no I/O, no clock. A secret passed here goes only into the
 * Authorization header line of the request, which ex_req_reset wipes. */
#ifndef KS_EXECUTOR_ADAPTER_UTIL_H
#define KS_EXECUTOR_ADAPTER_UTIL_H

#include <jansson.h>
#include <stdint.h>

#include "consumers/executor/adapter.h"
#include "lib/err.h"
#include "lib/jsonw.h"

/* The command detail called name, or "" when absent. */
const char *ex_cmd_detail(const struct ex_cmd *cmd, const char *name);

/* Appends "Authorization: Basic base64(user:)\n" (the PSPs' secret key as user name, empty
 * password) to req->headers. */
void ex_req_basic_auth(struct ex_req *req, const char *user);
/* Appends "name: value\n"; KS_EINVAL naming field when value holds a CR or LF (a header
 * must not be split by data). */
enum ks_code ex_req_header(struct ex_req *req, const char *name, const char *value,
                           const char *field, struct ks_err *err)
    __attribute__((warn_unused_result));
/* Makes req a JSON POST to the URL already set: Basic credentials with user, the header
 * "name: value" when value is not "" (KS_EINVAL naming field when it holds a line break),
 * and the text of w as the body (taken: w is empty after), Content-Type application/json.
 * KS_ENOMEM (retriable) when memory ran out while building. */
enum ks_code ex_req_post_json(struct ex_req *req, const char *user, const char *name,
                              const char *value, const char *field, struct ks_jw *w,
                              struct ks_err *err) __attribute__((warn_unused_result));
/* req->url = base + path; a trailing '/' of base is dropped. */
void ex_req_url(struct ex_req *req, const char *base, const char *path);
/* Appends s to b, percent-encoding all but RFC 3986 unreserved characters, so an id cannot
 * change a path or a query, nor a value a form field. */
void ex_url_escape(struct ks_buf *b, const char *s);
/* ex_url_escape onto the request's URL. */
void ex_req_url_escape(struct ex_req *req, const char *s);
/* Appends "name=value" (both escaped) to a form body, with '&' before all but the first. */
void ex_form_add(struct ks_buf *b, const char *name, const char *value);
/* The one way a JSON request body is made: w's text (closed by the caller) becomes
 * req->body, Content-Type application/json. The taken copy is wiped before it is freed (a
 * body may carry a payment token). KS_ENOMEM when w or the body ran out of memory. */
enum ks_code ex_req_json(struct ex_req *req, struct ks_jw *w, struct ks_err *err)
    __attribute__((warn_unused_result));

/* The amount in whole units of its currency (Xendit and Midtrans take whole rupiah).
 * KS_EINVAL naming amount_minor when it has a fraction or is not positive, naming currency
 * when the currency is unknown. */
enum ks_code ex_whole_units(const struct ex_cmd *cmd, int64_t *out, struct ks_err *err)
    __attribute__((warn_unused_result));
/* whole units of currency -> minor units; 0 when out of range or the currency unknown. */
int64_t ex_units_to_minor(int64_t whole, const char *currency);
/* "145000.00" (a PSP's decimal amount) -> minor units of currency; 0 when unreadable. */
int64_t ex_decimal_to_minor(const char *s, const char *currency);

/* The answer as a JSON value (the caller json_decref's it), or NULL when it is not JSON. */
json_t *ex_json_load(const char *body, size_t len);
/* obj[key] as a string ("" when absent or not a string). */
const char *ex_json_str(const json_t *obj, const char *key);

/* Fills the failure of res: code (normalized) and the PSP's message, both cut to fit. */
void ex_result_fail(struct ex_result *res, enum ex_verdict v, const char *code,
                    const char *message);
/* res->psp_reference = ref, cut to fit. */
void ex_result_ref(struct ex_result *res, const char *ref);

#endif
