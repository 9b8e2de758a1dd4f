/* err.c - see err.h */
#include <stdio.h>
#include <string.h>

#include "err.h"

static const char *const code_names[KS__CODE_COUNT] = {
    [KS_OK] = "ok",           [KS_EINVAL] = "invalid",     [KS_ENOMEM] = "nomem",
    [KS_ERANGE] = "range",    [KS_EOVERFLOW] = "overflow", [KS_EIO] = "io",
    [KS_EDB] = "db",          [KS_EKAFKA] = "kafka",       [KS_ETIMEOUT] = "timeout",
    [KS_ENOTFOUND] = "not_found", [KS_ECONFLICT] = "conflict", [KS_EAUTH] = "auth",
    [KS_EPOISON] = "poison",  [KS_ESCHEMA] = "schema",     [KS_EPSP] = "psp",
    [KS_ECONFIG] = "config",  [KS_EFORBIDDEN] = "forbidden", [KS_ESTATE] = "state",
};

enum ks_code ks_err_vset(struct ks_err *err, enum ks_code code, int retriable,
                         const char *field, const char *fmt, va_list ap)
{
    if (!err)
        return code;
    err->code = code;
    err->retriable = retriable;
    snprintf(err->field, sizeof(err->field), "%s", field ? field : "");
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    return code;
}

enum ks_code ks_err_set(struct ks_err *err, enum ks_code code, int retriable,
                        const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ks_err_vset(err, code, retriable, field, fmt, ap);
    va_end(ap);
    return code;
}

void ks_err_clear(struct ks_err *err)
{
    if (!err)
        return;
    memset(err, 0, sizeof(*err));
}

const char *ks_code_name(enum ks_code code)
{
    if ((int)code < 0 || code >= KS__CODE_COUNT || !code_names[code])
        return "unknown";
    return code_names[code];
}
