/* fuzz_webhook.c - libFuzzer target for the webhook verifiers (lib/webhook.c) and the JWT
 * verifier (lib/jwt.c). Input: selector byte, then "<header>\n<body>". Random input must
 * never verify (the secrets are not in it), and nothing may crash or leak. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/jwt.h"
#include "lib/webhook.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ks_err e;
    char *buf, *nl, *hdr, *body;
    size_t blen;
    enum ks_code rc = KS_EAUTH;
    static const char stripe[] = "whsec_fuzzsecret";
    static const char standard[] = "whsec_ZnV6enNlY3JldGZ1enpzZWNyZXQ=";
    char sig[KS_WEBHOOK_SIG_LEN];

    if (size < 1)
        return 0;
    buf = malloc(size);
    if (!buf)
        return 0;
    memcpy(buf, data + 1, size - 1);
    buf[size - 1] = '\0';
    nl = memchr(buf, '\n', size - 1);
    hdr = buf;
    body = nl ? nl + 1 : buf + size - 1;
    if (nl)
        *nl = '\0';
    blen = (size_t)(buf + size - 1 - body);
    memset(&e, 0, sizeof(e));
    switch (data[0] % 6) {
    case 0:
        rc = ks_webhook_verify_stripe(hdr, body, blen, stripe, 1700000000, 300, &e);
        break;
    case 1: {
        char *ts = strchr(hdr, ' '), *s2 = ts ? strchr(ts + 1, ' ') : NULL;
        if (ts)
            *ts++ = '\0';
        if (s2)
            *s2++ = '\0';
        rc = ks_webhook_verify_standard(hdr, ts, s2, body, blen, standard, 1700000000, 300, &e);
        break;
    }
    case 2:
        rc = ks_webhook_verify_xendit(hdr, "fuzz-callback-token", &e);
        break;
    case 3: {
        char ev[256];
        rc = ks_webhook_verify_midtrans(body, blen, "fuzz-server-key", ev, sizeof(ev), &e);
        break;
    }
    case 4: {
        json_t *claims = NULL;
        rc = ks_jwt_verify(buf, size - 1, "fuzzkey", 7, 1700000000, 5, &claims, &e);
        json_decref(claims);
        break;
    }
    default:
        /* a genuine signature over the fuzzed body must verify: round trip */
        ks_webhook_sign_stripe(stripe, 1700000000, body, blen, sig);
        if (ks_webhook_verify_stripe(sig, body, blen, stripe, 1700000000, 300, &e) != KS_OK)
            abort();
        if (ks_webhook_sign_standard(standard, "msg_1", 1700000000, body, blen, sig) != 0 ||
            ks_webhook_verify_standard("msg_1", "1700000000", sig, body, blen, standard,
                                       1700000000, 300, &e) != KS_OK)
            abort();
        rc = KS_EAUTH;
        break;
    }
    if (rc == KS_OK)
        abort(); /* forged without the secret */
    free(buf);
    return 0;
}
