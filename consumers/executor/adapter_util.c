/* adapter_util.c - helpers of the JSON-over-HTTP adapters (see adapter_util.h). */
#include "consumers/executor/adapter_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/crypto.h"
#include "lib/money.h"
#include "lib/banned.h"

const char *ex_cmd_detail(const struct ex_cmd *cmd, const char *name)
{
    for (size_t i = 0; i < cmd->n_details; i++)
        if (cmd->details[i].name && strcmp(cmd->details[i].name, name) == 0)
            return cmd->details[i].value ? cmd->details[i].value : "";
    return "";
}

void ex_req_basic_auth(struct ex_req *req, const char *user)
{
    size_t ul = strlen(user);
    char raw[512], enc[700];

    /* a key longer than any PSP issues is sent cut: the PSP answers 401, which says why */
    if (ul > sizeof(raw) - 2)
        ul = sizeof(raw) - 2;
    memcpy(raw, user, ul);
    raw[ul] = ':';
    ks_b64_encode((const uint8_t *)raw, ul + 1, enc);
    ks_buf_adds(&req->headers, "Authorization: Basic ");
    ks_buf_adds(&req->headers, enc);
    ks_buf_addc(&req->headers, '\n');
    /* the stack copies held the secret */
    memset(raw, 0, sizeof(raw));
    memset(enc, 0, sizeof(enc));
}

enum ks_code ex_req_header(struct ex_req *req, const char *name, const char *value,
                           const char *field, struct ks_err *err)
{
    if (strpbrk(value, "\r\n"))
        return ks_err_set(err, KS_EINVAL, 0, field, "contains a line break");
    ks_buf_printf(&req->headers, "%s: %s\n", name, value);
    return KS_OK;
}

enum ks_code ex_req_json(struct ex_req *req, struct ks_jw *w, struct ks_err *err)
{
    size_t len;
    char *s = ks_jw_take(w, &len);

    if (!s)
        return ks_err_set(err, KS_ENOMEM, 1, NULL, "could not build the request body");
    ks_buf_add(&req->body, s, len);
    memset(s, 0, len);
    free(s);
    req->content_type = "application/json";
    return req->body.oom ? ks_err_set(err, KS_ENOMEM, 1, NULL, "could not build the request")
                         : KS_OK;
}

enum ks_code ex_req_post_json(struct ex_req *req, const char *user, const char *name,
                              const char *value, const char *field, struct ks_jw *w,
                              struct ks_err *err)
{
    enum ks_code rc;

    req->method = "POST";
    ex_req_basic_auth(req, user);
    if (*value && (rc = ex_req_header(req, name, value, field, err)) != KS_OK)
        return rc;
    return ex_req_json(req, w, err);
}

void ex_req_url(struct ex_req *req, const char *base, const char *path)
{
    size_t bl = strlen(base);

    if (bl && base[bl - 1] == '/')
        bl--;
    ks_buf_reset(&req->url);
    ks_buf_add(&req->url, base, bl);
    ks_buf_adds(&req->url, path);
}

void ex_url_escape(struct ks_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";

    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            ks_buf_addc(b, c);
        } else {
            ks_buf_addc(b, '%');
            ks_buf_addc(b, hex[c >> 4]);
            ks_buf_addc(b, hex[c & 15]);
        }
    }
}

void ex_req_url_escape(struct ex_req *req, const char *s)
{
    ex_url_escape(&req->url, s);
}

void ex_form_add(struct ks_buf *b, const char *name, const char *value)
{
    if (b->len)
        ks_buf_addc(b, '&');
    ex_url_escape(b, name);
    ks_buf_addc(b, '=');
    ex_url_escape(b, value);
}

static int64_t scale_of(const char *currency)
{
    int exp = ks_money_exponent(currency);
    int64_t scale = 1;

    if (exp < 0)
        return 0;
    while (exp-- > 0)
        scale *= 10;
    return scale;
}

enum ks_code ex_whole_units(const struct ex_cmd *cmd, int64_t *out, struct ks_err *err)
{
    int64_t scale = scale_of(cmd->currency);

    if (!scale)
        return ks_err_set(err, KS_EINVAL, 0, "currency", "unknown currency '%s'", cmd->currency);
    if (cmd->amount_minor <= 0)
        return ks_err_set(err, KS_EINVAL, 0, "amount_minor", "must be greater than zero");
    if (cmd->amount_minor % scale != 0)
        return ks_err_set(err, KS_EINVAL, 0, "amount_minor",
                          "%lld minor units of %s is not a whole amount, which this PSP "
                          "requires",
                          (long long)cmd->amount_minor, cmd->currency);
    *out = cmd->amount_minor / scale;
    return KS_OK;
}

int64_t ex_units_to_minor(int64_t whole, const char *currency)
{
    int64_t scale = scale_of(currency);

    if (!scale || whole < 0 || whole > INT64_MAX / scale)
        return 0;
    return whole * scale;
}

int64_t ex_decimal_to_minor(const char *s, const char *currency)
{
    struct ks_money m;
    struct ks_err e = {0};

    if (ks_money_parse(s, currency, "amount", &m, &e) != KS_OK)
        return 0;
    return m.minor;
}

json_t *ex_json_load(const char *body, size_t len)
{
    return body && len ? json_loadb(body, len, 0, NULL) : NULL;
}

const char *ex_json_str(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "";
}

void ex_result_fail(struct ex_result *res, enum ex_verdict v, const char *code,
                    const char *message)
{
    res->verdict = v;
    snprintf(res->failure_code, sizeof(res->failure_code), "%s", code ? code : "");
    snprintf(res->failure_message, sizeof(res->failure_message), "%s", message ? message : "");
}

void ex_result_ref(struct ex_result *res, const char *ref)
{
    snprintf(res->psp_reference, sizeof(res->psp_reference), "%s", ref ? ref : "");
}
