/* webhook.h - verification of PSP notifications over the raw request bytes.
 *
 * Four schemes (SPEC 4, NOTES "Webhook signatures"); every comparison is constant-time
 * and every check runs on the exact bytes received, before any parsing that could
 * normalise them. Results: KS_OK; KS_EAUTH for a missing, malformed or wrong signature;
 * KS_ERANGE for a correct signature whose timestamp is outside the tolerance (a replay).
 * err->msg names what failed and never contains a secret or a signature.
 * The signing functions produce what the PSPs send, for tests and the sandbox PSP. */
#ifndef KS_WEBHOOK_H
#define KS_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Longest header value produced by the signing functions, with its NUL. */
#define KS_WEBHOOK_SIG_LEN 160

/* Stripe-Signature: "t=<unix>,v1=<hex>[,v1=<hex>...]" (other schemes such as v0 are
 * ignored); HMAC-SHA256(secret, "<t>.<body>"); any v1 may match; |now - t| <= tolerance. */
enum ks_code ks_webhook_verify_stripe(const char *header, const void *body, size_t len,
                                      const char *secret, int64_t now, int64_t tolerance,
                                      struct ks_err *err) __attribute__((warn_unused_result));
void ks_webhook_sign_stripe(const char *secret, int64_t t, const void *body, size_t len,
                            char out[KS_WEBHOOK_SIG_LEN]);

/* Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature ("v1,<base64>"
 * entries separated by spaces); secret "whsec_<base64 key>";
 * HMAC-SHA256(key, "<id>.<timestamp>.<body>"); |now - timestamp| <= tolerance. */
enum ks_code ks_webhook_verify_standard(const char *id, const char *timestamp,
                                        const char *signature, const void *body, size_t len,
                                        const char *secret, int64_t now, int64_t tolerance,
                                        struct ks_err *err) __attribute__((warn_unused_result));
/* Returns 0, or -1 when secret is not "whsec_<base64>". */
int ks_webhook_sign_standard(const char *secret, const char *id, int64_t timestamp,
                             const void *body, size_t len, char out[KS_WEBHOOK_SIG_LEN]);

/* Xendit: the x-callback-token header equals the account's callback token. */
enum ks_code ks_webhook_verify_xendit(const char *token_header, const char *expected,
                                      struct ks_err *err) __attribute__((warn_unused_result));

/* Midtrans HTTP notification: the JSON body's signature_key is lower-case hex
 * SHA-512(order_id + status_code + gross_amount + server_key). On success, when event_id
 * is not NULL, writes "<transaction_id or order_id>:<transaction_status>" there. */
enum ks_code ks_webhook_verify_midtrans(const void *body, size_t len, const char *server_key,
                                        char *event_id, size_t event_id_len,
                                        struct ks_err *err) __attribute__((warn_unused_result));
/* out: 128 hex digits + NUL. */
void ks_webhook_midtrans_signature(const char *order_id, const char *status_code,
                                   const char *gross_amount, const char *server_key,
                                   char out[129]);

#endif
