/* midtrans.c - Midtrans Core API charges (bank_transfer VA, qris, gopay), status and
 * refunds, and Iris payouts, as https://docs.midtrans.com describes them ("Charge API"
 * /reference/charge-api, "Code statuses" /reference/code-statuses, "HTTP(S) Notification"
 * /docs/https-notification-webhooks, Iris "Payouts" /reference/apis and "HTTP
 * notification" /reference/partner-http-notification-1):
 * Basic auth with the server key (Iris: the creator key) as user name, JSON bodies, the
 * status_code/transaction_status answer (HTTP status mirrors status_code when it is an
 * error), notifications carrying signature_key = SHA-512(order_id + status_code +
 * gross_amount + server_key), Iris notifications with Iris-Signature = SHA-512(body +
 * merchant key).
 *
 * Idempotency as Midtrans has it: the order_id is unique (a second charge is status 406);
 * a refund_key answers its first refund again; Iris honours X-Idempotency-Key (same body:
 * the first answer; another body: 409). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deploy/psp-sandbox/sandbox.h"
#include "lib/crypto.h"
#include "lib/webhook.h"
#include "lib/jsonw.h"
#include "lib/banned.h"

#define MERCHANT_ID "G141532850"
#define TZ 7 /* Midtrans writes times in GMT+7 */

static void uuid4(char out[37])
{
    uint8_t b[16];
    char hex[33];
    struct ks_err e = {0};

    if (ks_random_bytes(b, sizeof(b), &e) != KS_OK)
        memset(b, 0x5a, sizeof(b));
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    ks_hex_encode(b, sizeof(b), hex);
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

static void status_err(struct sb_resp *r, int code, const char *msg, json_t *validation)
{
    char sc[8], id[37];
    json_t *b;

    uuid4(id);
    snprintf(sc, sizeof(sc), "%d", code);
    b = json_pack("{s:s, s:s, s:s}", "status_code", sc, "status_message", msg, "id", id);
    if (validation)
        json_object_set_new(b, "validation_messages", validation);
    sb_respond_json(r, code, b);
}

/* The notification of a transaction in its current state
 * (https://docs.midtrans.com/docs/https-notification-webhooks). */
static json_t *notification(json_t *tx)
{
    json_t *n = json_deep_copy(tx);
    char sig[129];

    json_object_del(n, "_notify_url");
    json_object_del(n, "_refunded");
    json_object_set_new(n, "status_message", json_string("midtrans payment notification"));
    ks_webhook_midtrans_signature(json_string_value(json_object_get(n, "order_id")),
                                  json_string_value(json_object_get(n, "status_code")),
                                  json_string_value(json_object_get(n, "gross_amount")),
                                  SB.midtrans_key, sig);
    json_object_set_new(n, "signature_key", json_string(sig));
    return n;
}

static void notify(json_t *tx, const char *event, const struct sb_hook_opts *o, int order)
{
    json_t *n = notification(tx);
    const char *url = json_string_value(json_object_get(tx, "_notify_url"));

    sb_hook_emit("midtrans", event, json_string_value(json_object_get(tx, "transaction_id")),
                 url ? url : SB.hook_midtrans, n, o, order);
    json_decref(n);
}

static json_t *public_view(json_t *tx, const char *msg)
{
    json_t *v = json_deep_copy(tx);

    json_object_del(v, "_notify_url");
    json_object_del(v, "_refunded");
    json_object_set_new(v, "status_message", json_string(msg));
    return v;
}

static const char *const va_banks[] = {"bca", "bni", "bri", "permata", "cimb", NULL};

static void charge(const struct sb_call *c, json_t *b, struct sb_resp *r)
{
    const char *type = json_string_value(json_object_get(b, "payment_type"));
    json_t *td = json_object_get(b, "transaction_details"), *ga, *tx, *v, *acts;
    const char *oid = json_string_value(json_object_get(td, "order_id"));
    const char *bank = json_string_value(json_object_get(json_object_get(b, "bank_transfer"), "bank"));
    const char *override = sb_header(c, "X-Override-Notification");
    const char *host = sb_header(c, "Host");
    json_int_t gross = 0;
    char tid[37], gs[40], now[32], exp[32], va[24], url[400], msg[120];
    int ok = 0;
    int64_t t = sb_now_us();

    ga = json_object_get(td, "gross_amount");
    if (json_is_integer(ga) && json_integer_value(ga) <= 100000000000LL)
        gross = json_integer_value(ga);
    if (!type || !oid || !*oid || gross <= 0) {
        status_err(r, 400, "One or more parameters in the payload is invalid.",
                   json_pack("[s]", !type ? "payment_type is required"
                                    : !oid || !*oid ? "transaction_details.order_id is required"
                                                    : "transaction_details.gross_amount must be "
                                                      "a whole number of rupiah, at least 1"));
        return;
    }
    if (strlen(oid) > 50) {
        status_err(r, 400, "One or more parameters in the payload is invalid.",
                   json_pack("[s]", "transaction_details.order_id too long"));
        return;
    }
    if (strcmp(type, "bank_transfer") == 0) {
        for (const char *const *p = va_banks; bank && *p; p++)
            if (strcmp(*p, bank) == 0)
                ok = 1;
        if (!ok) {
            status_err(r, 400, "One or more parameters in the payload is invalid.",
                       json_pack("[s]", "bank_transfer.bank must be one of bca, bni, bri, "
                                        "permata, cimb"));
            return;
        }
    } else if (strcmp(type, "qris") != 0 && strcmp(type, "gopay") != 0) {
        status_err(r, 400, "Payment type is not supported or not activated for this merchant",
                   NULL);
        return;
    }
    if (sb_obj_get("midtrans_tx", oid)) {
        status_err(r, 406, "The request could not be completed due to a conflict with the current "
                           "state of the target resource, please try again", NULL);
        return;
    }
    uuid4(tid);
    sb_amount_str(gross * 100, "IDR", gs, sizeof(gs));
    sb_time_local(t, TZ, now, sizeof(now));
    sb_time_local(t + (int64_t)86400 * 1000000, TZ, exp, sizeof(exp));
    tx = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "status_code",
                   "201", "status_message", "", "transaction_id", tid, "order_id", oid,
                   "merchant_id", MERCHANT_ID, "gross_amount", gs, "currency", "IDR",
                   "payment_type", type, "transaction_time", now, "transaction_status", "pending",
                   "fraud_status", "accept");
    if (c->force_decline) {
        json_object_set_new(tx, "status_code", json_string("202"));
        json_object_set_new(tx, "transaction_status", json_string("deny"));
        json_object_set_new(tx, "fraud_status", json_string("deny"));
        snprintf(msg, sizeof(msg), "Deny by Bank [%s] with code [05] and message [Do not honour]",
                 bank ? bank : type);
    } else if (strcmp(type, "bank_transfer") == 0) {
        char merchant[8];
        (void)merchant;
        snprintf(va, sizeof(va), "%s%.11s", strcmp(bank, "bca") == 0 ? "12345" : "8",
                 tid + 24);
        for (char *p = va; *p; p++)
            if (*p >= 'a' && *p <= 'f')
                *p = (char)('0' + (*p - 'a'));
        if (strcmp(bank, "permata") == 0)
            json_object_set_new(tx, "permata_va_number", json_string(va));
        else
            json_object_set_new(tx, "va_numbers", json_pack("[{s:s, s:s}]", "bank", bank,
                                                           "va_number", va));
        json_object_set_new(tx, "expiry_time", json_string(exp));
        snprintf(msg, sizeof(msg), "Success, Bank Transfer transaction is created");
    } else {
        int gopay = strcmp(type, "gopay") == 0;
        acts = json_array();
        snprintf(url, sizeof(url), "http://%s/v2/%s/%s/qr-code", host ? host : "localhost",
                 gopay ? "gopay" : "qris", tid);
        json_array_append_new(acts, json_pack("{s:s, s:s, s:s}", "name", "generate-qr-code",
                                              "method", "GET", "url", url));
        if (gopay) {
            snprintf(url, sizeof(url),
                     "https://simulator.sandbox.midtrans.com/gopay/partner/app/payment-pin?id=%s",
                     tid);
            json_array_append_new(acts, json_pack("{s:s, s:s, s:s}", "name", "deeplink-redirect",
                                                  "method", "GET", "url", url));
            snprintf(url, sizeof(url), "http://%s/v2/%s/status", host ? host : "localhost", tid);
            json_array_append_new(acts, json_pack("{s:s, s:s, s:s}", "name", "get-status",
                                                  "method", "GET", "url", url));
        } else {
            json_object_set_new(tx, "acquirer", json_string("gopay"));
            snprintf(url, sizeof(url),
                     "00020101021126610014COM.GO-JEK.WWW01189360091431234567890210G%.9s"
                     "0303UMI51440014ID.CO.QRIS.WWW0215ID20232512345670303UMI5204549953033605802"
                     "ID5912KASIRSANDBOX6007JAKARTA6304ABCD", tid);
            json_object_set_new(tx, "qr_string", json_string(url));
        }
        json_object_set_new(tx, "actions", acts);
        json_object_set_new(tx, "expiry_time", json_string(exp));
        snprintf(msg, sizeof(msg), "%s transaction is created", gopay ? "GoPay" : "QRIS");
    }
    if (override && (strncmp(override, "http://", 7) == 0 || strncmp(override, "https://", 8) == 0))
        json_object_set_new(tx, "_notify_url", json_string(override));
    v = public_view(tx, msg);
    sb_respond_json(r, 200, v);
    json_object_set_new(tx, "status_message", json_string(msg));
    sb_obj_put("midtrans_tx", oid, tx);
    sb_ref_put("midtrans_tid", tid, oid);
    /* Midtrans notifies the pending state too; a declined charge is final at once */
    notify(tx, c->force_decline ? "deny" : "pending", NULL, 0);
}

static json_t *find_tx(const char *id)
{
    const char *oid = sb_ref_get("midtrans_tid", id);

    return sb_obj_get("midtrans_tx", oid ? oid : id);
}

static void set_state(json_t *tx, const char *sc, const char *st)
{
    char now[32];

    sb_time_local(sb_now_us(), TZ, now, sizeof(now));
    json_object_set_new(tx, "status_code", json_string(sc));
    json_object_set_new(tx, "transaction_status", json_string(st));
    if (strcmp(st, "settlement") == 0)
        json_object_set_new(tx, "settlement_time", json_string(now));
}

static json_int_t gross_minor(json_t *tx)
{
    struct ks_err e = {0};
    (void)e;
    const char *g = json_string_value(json_object_get(tx, "gross_amount"));
    long long whole = 0, frac = 0;

    if (g && sscanf(g, "%lld.%2lld", &whole, &frac) >= 1)
        return (json_int_t)(whole * 100 + frac);
    return 0;
}

int sb_midtrans_event(const char *what, const char *id, const struct sb_hook_opts *o,
                      char *msg, size_t cap)
{
    json_t *tx = find_tx(id);
    const char *st;

    if (!tx) {
        snprintf(msg, cap, "no Midtrans transaction with order_id or transaction_id %s", id);
        return -1;
    }
    st = json_string_value(json_object_get(tx, "transaction_status"));
    if (strcmp(st, "pending") != 0) {
        snprintf(msg, cap, "the transaction is %s, not pending", st);
        return -1;
    }
    if (strcmp(what, "paid") == 0 || strcmp(what, "settlement") == 0) {
        json_t *stale = json_deep_copy(tx);
        const char *type = json_string_value(json_object_get(tx, "payment_type"));
        set_state(tx, "200", "settlement");
        sb_ledger_add("midtrans", "charge", json_string_value(json_object_get(tx, "order_id")),
                      json_string_value(json_object_get(tx, "order_id")), NULL, gross_minor(tx),
                      "IDR", strcmp(type, "bank_transfer") == 0 ? "virtual_account"
                             : strcmp(type, "gopay") == 0       ? "ewallet"
                                                                : "qris");
        notify(tx, "settlement", o, 1);
        if (o && o->out_of_order) /* a stale "pending" arrives after the settlement */
            notify(stale, "pending", o, 0);
        json_decref(stale);
        return 0;
    }
    if (strcmp(what, "expire") == 0) {
        set_state(tx, "407", "expire");
        notify(tx, "expire", o, 1);
        return 0;
    }
    snprintf(msg, cap, "midtrans events: paid, expire");
    return -1;
}

static void refund(const char *id, json_t *b, struct sb_resp *r)
{
    json_t *tx = find_tx(id), *v, *entry, *prev;
    const char *key = json_string_value(json_object_get(b, "refund_key"));
    json_t *amt = json_object_get(b, "amount");
    json_int_t gross, done, amount;
    char rk[64], as[40], scope[200];

    if (!tx) {
        status_err(r, 404, "Transaction doesn't exist.", NULL);
        return;
    }
    if (key && strlen(key) > 100) { /* the whole key names the refund: none is cut */
        status_err(r, 400, "One or more parameters in the payload is invalid.",
                   json_pack("[s]", "refund_key must be at most 100 bytes"));
        return;
    }
    if (key) {
        snprintf(scope, sizeof(scope), "%s|%s", json_string_value(json_object_get(tx, "order_id")),
                 key);
        prev = sb_obj_get("midtrans_refund", scope);
        if (prev) { /* the same refund_key is the same refund */
            sb_respond_json(r, 200, json_incref(prev));
            return;
        }
    }
    if (strcmp(json_string_value(json_object_get(tx, "transaction_status")), "settlement") != 0 &&
        strcmp(json_string_value(json_object_get(tx, "transaction_status")), "partial_refund") != 0) {
        status_err(r, 412, "Merchant cannot modify the status of the transaction", NULL);
        return;
    }
    if (strcmp(json_string_value(json_object_get(tx, "payment_type")), "bank_transfer") == 0) {
        status_err(r, 412, "Payment type bank_transfer does not support refund", NULL);
        return;
    }
    gross = gross_minor(tx);
    done = sb_ledger_refunded("midtrans", json_string_value(json_object_get(tx, "order_id")));
    amount = gross - done;
    if (amt) {
        /* whole rupiah, as gross_amount: an integer, never a float for money */
        if (!json_is_integer(amt) || json_integer_value(amt) <= 0 ||
            json_integer_value(amt) > 100000000000LL) {
            status_err(r, 400, "One or more parameters in the payload is invalid.",
                       json_pack("[s]", "amount must be a whole number greater than 0"));
            return;
        }
        amount = json_integer_value(amt) * 100;
    }
    if (amount > gross - done) {
        status_err(r, 412, "Refund amount is greater than the refundable amount", NULL);
        return;
    }
    if (!key) {
        sb_new_id("rfnd-", rk, sizeof(rk));
        key = rk;
        snprintf(scope, sizeof(scope), "%s|%s", json_string_value(json_object_get(tx, "order_id")),
                 key);
    }
    set_state(tx, "200", done + amount >= gross ? "refund" : "partial_refund");
    sb_amount_str(amount, "IDR", as, sizeof(as));
    entry = sb_ledger_add_refund("midtrans", json_string_value(json_object_get(tx, "order_id")),
                                 key, key, key, amount, "IDR",
                                 json_string_value(json_object_get(tx, "payment_type")));
    v = public_view(tx, "Success, refund request is approved");
    json_object_set_new(v, "refund_chargeback_id", json_integer((json_int_t)json_integer_value(json_object_get(entry, "seq"))));
    json_object_set_new(v, "refund_amount", json_string(as));
    json_object_set_new(v, "refund_key", json_string(key));
    sb_obj_put("midtrans_refund", scope, json_incref(v));
    notify(tx, "refund", NULL, 0);
    sb_respond_json(r, 200, v);
}

/* --- Iris payouts --------------------------------------------------------------------- */

static void iris_create(const struct sb_call *c, json_t *b, struct sb_resp *r)
{
    json_t *list = json_object_get(b, "payouts"), *p, *out = json_array(), *errs = json_array();
    size_t i;
    int fail = c->force_decline;

    if (!json_is_array(list) || json_array_size(list) == 0 || json_array_size(list) > 100) {
        json_decref(out);
        json_decref(errs);
        sb_respond_json(r, 400, json_pack("{s:s, s:[s]}", "error_message",
                                          "An error occurred when creating payouts", "errors",
                                          "payouts must be a list of 1 to 100 payouts"));
        return;
    }
    json_array_foreach(list, i, p) {
        const char *fields[] = {"beneficiary_name", "beneficiary_account", "beneficiary_bank",
                                "amount", "notes"};
        for (size_t k = 0; k < 5; k++)
            if (!json_is_string(json_object_get(p, fields[k]))) {
                char m[160];
                snprintf(m, sizeof(m), "payouts[%zu]: %s can't be blank", i, fields[k]);
                json_array_append_new(errs, json_string(m));
            }
    }
    if (json_array_size(errs)) {
        json_decref(out);
        sb_respond_json(r, 400, json_pack("{s:s, s:o}", "error_message",
                                          "An error occurred when creating payouts", "errors",
                                          errs));
        return;
    }
    json_decref(errs);
    json_array_foreach(list, i, p) {
        char ref[40], now[40];
        const char *amt = json_string_value(json_object_get(p, "amount"));
        long long whole = 0, frac = 0;
        json_t *po, *n;
        char body_ref[64];
        const char *notes;

        sb_new_id("", ref, sizeof(ref));
        ref[20] = '\0';
        sb_time_iso(sb_now_us(), 0, now, sizeof(now));
        sscanf(amt, "%lld.%2lld", &whole, &frac);
        po = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s?, s:s, s:s, s:s, s:s}", "amount",
                       amt, "beneficiary_name", json_string_value(json_object_get(p, "beneficiary_name")),
                       "beneficiary_account", json_string_value(json_object_get(p, "beneficiary_account")),
                       "bank", json_string_value(json_object_get(p, "beneficiary_bank")),
                       "reference_no", ref, "notes", json_string_value(json_object_get(p, "notes")),
                       "status", fail ? "failed" : "completed", "beneficiary_email",
                       json_string_value(json_object_get(p, "beneficiary_email")), "created_by",
                       "kasir-sandbox", "created_at", now, "updated_at", now, "currency", "IDR");
        sb_obj_put("iris_payout.final", ref, json_deep_copy(po));
        json_object_set_new(po, "status", json_string("queued"));
        sb_obj_put("iris_payout", ref, po);
        json_array_append_new(out, json_pack("{s:s, s:s}", "status", "queued", "reference_no", ref));
        notes = json_string_value(json_object_get(p, "notes"));
        snprintf(body_ref, sizeof(body_ref), "%.*s", (int)ks_utf8_prefix(notes, 60), notes);
        if (!fail)
            sb_ledger_add("midtrans", "payout", ref, body_ref,
                          sb_header(c, "X-Idempotency-Key"), whole * 100 + frac, "IDR",
                          "bank_transfer");
        n = json_pack("{s:s, s:s, s:s, s:s}", "reference_no", ref, "amount", amt, "status",
                      fail ? "failed" : "completed", "updated_at", now);
        if (fail) {
            json_object_set_new(n, "error_code", json_string("002"));
            json_object_set_new(n, "error_message", json_string("Invalid beneficiary account"));
        }
        sb_hook_emit("iris", fail ? "payout.failed" : "payout.completed", ref, SB.hook_iris, n,
                     &(struct sb_hook_opts){.delay_ms = SB.payout_delay_ms,
                                            .apply_kind = "iris_payout"}, 1);
        json_decref(n);
    }
    sb_respond_json(r, 201, json_pack("{s:o}", "payouts", out));
}

int sb_midtrans_handle(const struct sb_call *c, struct sb_resp *r)
{
    char user[256], id[128], scope[400], fp[65];
    int post = strcmp(c->method, "POST") == 0;
    int iris = sb_iris_path(c->path);
    const char *idem = sb_header(c, "X-Idempotency-Key");
    json_t *b = NULL, *tx;
    const char *p = c->path;

    if (strcmp(sb_psp_of_path(c->path) ? sb_psp_of_path(c->path) : "", "midtrans") != 0)
        return 0;
    sb_auth_user(sb_header(c, "Authorization"), user, sizeof(user));
    if (iris) {
        if (!*SB.iris_key || strcmp(user, SB.iris_key) != 0) {
            sb_respond_json(r, 401, json_pack("{s:s}", "error_message", "Unauthorized"));
            return 1;
        }
    } else if (!*SB.midtrans_key || strcmp(user, SB.midtrans_key) != 0) {
        status_err(r, 401, "Unknown Merchant server_key/id", NULL);
        return 1;
    }
    if (post) {
        b = c->len ? json_loadb(c->body, c->len, JSON_REJECT_DUPLICATES, NULL) : json_object();
        if (!json_is_object(b)) {
            if (iris)
                sb_respond_json(r, 400, json_pack("{s:s}", "error_message", "Invalid JSON body"));
            else
                status_err(r, 400, "Invalid JSON body", NULL);
            goto out;
        }
    }
    if (iris && post && idem && !sb_idem_key_ok(idem)) {
        sb_respond_json(r, 400, json_pack("{s:s}", "error_message",
                                          "X-Idempotency-Key must be at most 255 bytes of UTF-8"));
        goto out;
    }
    if (iris && post && idem && *idem) {
        switch (sb_idem_check("iris", user, idem, c, b, scope, fp, r)) {
        case SB_IDEM_HIT:
            r->replayed = 0; /* Iris sends no replay header */
            goto out;
        case SB_IDEM_MISMATCH:
            sb_respond_json(r, 409, json_pack("{s:s}", "error_message",
                                              "X-Idempotency-Key has been used with another "
                                              "request"));
            goto out;
        case SB_IDEM_NEW:
            break;
        }
    }
    if (strncmp(p, "/iris", 5) == 0)
        p += 5;
    if (post && strcmp(p, "/v2/charge") == 0) {
        charge(c, b, r);
    } else if (post && sb_path_id(p, "/v2/", "/refund", id, sizeof(id))) {
        refund(id, b, r);
    } else if (!post && sb_path_id(p, "/v2/", "/status", id, sizeof(id))) {
        tx = find_tx(id);
        if (!tx) {
            status_err(r, 404, "Transaction doesn't exist.", NULL);
        } else {
            json_t *v = notification(tx);
            json_object_set_new(v, "status_message", json_string("Success, transaction is found"));
            sb_respond_json(r, 200, v);
        }
    } else if (post && strcmp(p, "/api/v1/payouts") == 0) {
        iris_create(c, b, r);
    } else if (!post && strncmp(p, "/api/v1/payouts/", 16) == 0) {
        tx = sb_obj_get("iris_payout", p + 16);
        if (tx)
            sb_respond_json(r, 200, json_incref(tx));
        else
            sb_respond_json(r, 404, json_pack("{s:s}", "error_message", "Payout not found"));
    } else {
        status_err(r, 404, "The requested resource is not found", NULL);
    }
    if (iris && post && idem && *idem && r->status >= 200 && r->status < 300)
        sb_idem_store(scope, fp, r);
out:
    json_decref(b);
    return 1;
}
