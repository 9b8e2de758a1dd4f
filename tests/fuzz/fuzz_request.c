/* fuzz_request.c - libFuzzer target for the ingress's request parsers (validate.c).
 * The first byte picks the parser; the rest is the body. Every parser must either accept
 * (and then its output must be self-consistent) or fill a problem with a catalogued code. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "producers/ingress/validate.h"

static int code_known(const char *code)
{
    for (size_t i = 0; i < ing_codes_count; i++)
        if (strcmp(ing_codes[i].code, code) == 0)
            return 1;
    return 0;
}

static int on_row(const struct ing_settle_row *row, void *opaque)
{
    (void)opaque;
    if (!row->reference || !row->status || row->amount_minor < 0 || !row->raw)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ing_problem p;
    const char *body;
    size_t len;
    int rc = 0;

    if (size < 1)
        return 0;
    body = (const char *)data + 1;
    len = size - 1;
    memset(&p, 0, sizeof(p));
    switch (data[0] % 8) {
    case 0: {
        struct ing_payment x;
        rc = ing_parse_payment(body, len, &x, &p);
        if (rc == 0) {
            if (x.n_orders < 1 || x.n_orders > ING_MAX_ORDERS)
                abort();
            for (size_t i = 0; i < x.n_orders; i++)
                if (x.orders[i].amount.minor <= 0)
                    abort();
            json_decref(x.root);
        }
        break;
    }
    case 1: {
        struct ing_refund x;
        if ((rc = ing_parse_refund(body, len, &x, &p)) == 0)
            json_decref(x.root);
        break;
    }
    case 2: {
        struct ing_payout x;
        if ((rc = ing_parse_payout(body, len, &x, &p)) == 0)
            json_decref(x.root);
        break;
    }
    case 3: {
        struct ing_token_req x;
        if ((rc = ing_parse_token_req(body, len, &x, &p)) == 0)
            json_decref(x.root);
        break;
    }
    case 4:
        rc = ing_settle_parse(body, len, "sandbox", on_row, NULL, &p) < 0 ? -1 : 0;
        break;
    case 5:
        rc = ing_settle_parse(body, len, "generic", on_row, NULL, &p) < 0 ? -1 : 0;
        break;
    case 6: {
        char *s = malloc(len + 1);
        if (!s)
            return 0;
        memcpy(s, body, len);
        s[len] = '\0';
        (void)ing_has_card_number(s);
        (void)ing_parse_rfc3339(s);
        (void)ing_idem_key_ok(s);
        free(s);
        return 0;
    }
    default: {
        const char *key = NULL;
        char *s = malloc(len + 1);
        if (!s)
            return 0;
        memcpy(s, body, len);
        s[len] = '\0';
        rc = ing_idem_key_pick(len ? s : NULL, len > 3 ? s + 3 : NULL, &key, &p);
        free(s);
        break;
    }
    }
    if (rc != 0 && (!p.code || !code_known(p.code) || p.status < 400 || p.status > 599))
        abort();
    return 0;
}
