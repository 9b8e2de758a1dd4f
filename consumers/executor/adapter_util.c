/* adapter_util.c - see adapter_util.h. */
#include "consumers/executor/adapter_util.h"

#include <stdlib.h>
#include <string.h>

#include "lib/banned.h"

const char *ex_detail(const struct ex_cmd *cmd, const char *name)
{
    for (size_t i = 0; i < cmd->n_details; i++)
        if (strcmp(cmd->details[i].name, name) == 0 && cmd->details[i].value)
            return cmd->details[i].value;
    return "";
}

int ex_json_body(struct ex_req *req, const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT);

    if (!s)
        return -1;
    ks_buf_adds(&req->body, s);
    /* a body may carry a payment token: wipe the copy jansson made */
    memset(s, 0, strlen(s));
    free(s);
    return req->body.oom ? -1 : 0;
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

void ex_form_add(struct ks_buf *b, const char *name, const char *value)
{
    if (b->len)
        ks_buf_addc(b, '&');
    ex_url_escape(b, name);
    ks_buf_addc(b, '=');
    ex_url_escape(b, value);
}
