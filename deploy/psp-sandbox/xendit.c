/* xendit.c - Xendit's fixed virtual accounts, QR codes (v1, external_id) and
 * disbursements, as the API reference describes them
 * (https://archive.developers.xendit.co/api-reference/ : "Virtual Accounts", "QR Codes V1",
 * "Disbursements"; errors https://docs.xendit.co/id/xendisburse/disbursement-errors):
 * Basic auth with the secret key as user name, JSON bodies (form bodies too for QR codes,
 * as the reference's curl example sends), amounts in whole rupiah, errors
 * {"error_code","message"}, callbacks with the x-callback-token header.
 *
 * Idempotency (X-IDEMPOTENCY-KEY): a disbursement's key may be used once; any reuse is 409
 * DUPLICATE_TRANSACTION_ERROR ("Idempotency key has been used before"), and the client
 * finds the first one with GET /disbursements?external_id=. For virtual accounts and QR
 * codes the same key with the same body answers the first answer again, another body is
 * the same 409. A QR code's external_id is unique (409 DUPLICATE_ERROR). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deploy/psp-sandbox/sandbox.h"
#include "lib/banned.h"

#define OWNER_ID "5f8a1e3b2c4d5e6f7a8b9c0d"

static const char *const va_banks[] = {"BCA", "BNI", "BRI", "MANDIRI", "PERMATA", "BSI", "BJB",
                                       "CIMB", "SAHABAT_SAMPOERNA", "BNC", "MUAMALAT", NULL};

static void err(struct sb_resp *r, int status, const char *code, const char *msg)
{
    sb_respond_json(r, status, json_pack("{s:s, s:s}", "error_code", code, "message", msg));
}

static void now_iso(char *out, size_t cap)
{
    sb_time_iso(sb_now_us(), 1, out, cap);
}

/* Whole rupiah as Xendit sends them: a JSON integer (or a numeric string from a form). */
static int get_amount(json_t *v, json_int_t *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
    } else if (json_is_string(v)) {
        char *end;
        long long n = strtoll(json_string_value(v), &end, 10);
        if (*end || end == json_string_value(v))
            return -1;
        *out = n;
    } else {
        return -1;
    }
    return *out > 0 && *out <= 50000000000LL ? 0 : -1;
}

static void va_number(const char *bank, char *merchant, size_t mcap, char *out, size_t cap)
{
    char id[40];
    size_t i, n = 0;
    char digits[16];

    /* merchant code prefix per bank, then digits derived from a fresh id */
    snprintf(merchant, mcap, "%s", strcmp(bank, "BCA") == 0 ? "10766" : strcmp(bank, "BNI") == 0
                                                                             ? "8808"
                                                                         : strcmp(bank, "BRI") == 0
                                                                             ? "26215"
                                                                             : "88608");
    sb_new_id("", id, sizeof(id));
    for (i = 0; id[i] && n < 10; i++)
        digits[n++] = (char)('0' + ((unsigned char)id[i] % 10));
    digits[n] = '\0';
    snprintf(out, cap, "%s%s", merchant, digits);
}

static void create_va(const struct sb_call *c, json_t *b, struct sb_resp *r)
{
    const char *ext = json_string_value(json_object_get(b, "external_id"));
    const char *bank = json_string_value(json_object_get(b, "bank_code"));
    const char *name = json_string_value(json_object_get(b, "name"));
    const char *want = json_string_value(json_object_get(b, "virtual_account_number"));
    json_t *exp_amt = json_object_get(b, "expected_amount"), *va;
    char id[40], merchant[8], number[40], ts[40];
    json_int_t expected = 0;
    int ok = 0;
    (void)c;

    if (!ext || !*ext || !bank || !name || !*name) {
        err(r, 400, "API_VALIDATION_ERROR",
            !ext || !*ext ? "\"external_id\" is required"
            : !bank       ? "\"bank_code\" is required"
                          : "\"name\" is required");
        return;
    }
    for (const char *const *p = va_banks; *p; p++)
        if (strcmp(*p, bank) == 0)
            ok = 1;
    if (!ok) {
        err(r, 400, "BANK_NOT_SUPPORTED_ERROR", "That bank code is not currently supported");
        return;
    }
    if (exp_amt && get_amount(exp_amt, &expected) != 0) {
        err(r, 400, "API_VALIDATION_ERROR", "\"expected_amount\" must be a positive number");
        return;
    }
    if (want && strlen(want) >= sizeof(number)) {
        err(r, 400, "API_VALIDATION_ERROR", "\"virtual_account_number\" is too long");
        return;
    }
    if (want && sb_ref_get("va_number", want)) {
        err(r, 400, "DUPLICATE_CALLBACK_VIRTUAL_ACCOUNT_ERROR",
            "The virtual account number already exists for this bank");
        return;
    }
    sb_new_id("", id, sizeof(id));
    va_number(bank, merchant, sizeof(merchant), number, sizeof(number));
    if (want)
        snprintf(number, sizeof(number), "%s", want);
    now_iso(ts, sizeof(ts));
    va = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:s, s:b, s:s, s:s, s:s, s:s}",
                   "owner_id", OWNER_ID, "external_id", ext, "bank_code", bank, "merchant_code",
                   merchant, "name", name, "account_number", number, "is_closed",
                   json_is_true(json_object_get(b, "is_closed")), "id", id, "is_single_use",
                   json_is_true(json_object_get(b, "is_single_use")), "status", "PENDING",
                   "currency", "IDR", "country", "ID", "expiration_date",
                   json_string_value(json_object_get(b, "expiration_date"))
                       ? json_string_value(json_object_get(b, "expiration_date"))
                       : "2056-12-31T17:00:00.000Z");
    if (expected)
        json_object_set_new(va, "expected_amount", json_integer(expected));
    if (json_object_get(b, "description"))
        json_object_set(va, "description", json_object_get(b, "description"));
    sb_respond_json(r, 200, json_deep_copy(va));
    /* the answer says PENDING; the account is usable at once, as GET then shows */
    json_object_set_new(va, "status", json_string("ACTIVE"));
    json_object_set_new(va, "created", json_string(ts));
    json_object_set_new(va, "updated", json_string(ts));
    sb_obj_put("xendit_va", id, va);
    sb_ref_put("xendit_va_ext", ext, id);
    sb_ref_put("va_number", number, id);
}

/* A payment into a fixed VA: ledger, and the "VA paid" callback
 * (https://archive.developers.xendit.co/api-reference/#fixed-virtual-account-callbacks). */
static int pay_va(json_t *va, json_int_t amount, const struct sb_hook_opts *o, json_t **out)
{
    char pid[40], pay_id[40], ts[40], txn[40];
    const char *id = json_string_value(json_object_get(va, "id"));
    json_t *cb, *upd;

    if (strcmp(json_string_value(json_object_get(va, "status")), "ACTIVE") != 0)
        return -1;
    if (json_object_get(va, "expected_amount") &&
        json_integer_value(json_object_get(va, "expected_amount")) != amount &&
        json_is_true(json_object_get(va, "is_closed")))
        return -2;
    sb_new_id("", pid, sizeof(pid));
    sb_new_id("", pay_id, sizeof(pay_id));
    now_iso(ts, sizeof(ts));
    sb_time_iso(sb_now_us(), 1, txn, sizeof(txn));
    cb = json_pack("{s:s, s:s, s:s, s:s, s:s, s:O, s:O, s:O, s:I, s:s, s:O, s:s, s:s, s:s}",
                   "updated", ts, "created", ts, "payment_id", pay_id,
                   "callback_virtual_account_id", id, "owner_id", OWNER_ID, "external_id",
                   json_object_get(va, "external_id"), "account_number",
                   json_object_get(va, "account_number"), "bank_code",
                   json_object_get(va, "bank_code"), "amount", amount, "transaction_timestamp",
                   txn, "merchant_code", json_object_get(va, "merchant_code"), "id", pid,
                   "currency", "IDR", "sender_name", "JOHN DOE");
    sb_obj_put("xendit_va_payment", pay_id, json_deep_copy(cb));
    sb_ledger_add("xendit", "charge", id, json_string_value(json_object_get(va, "external_id")),
                  NULL, amount * 100, "IDR", "virtual_account");
    if (json_is_true(json_object_get(va, "is_single_use")))
        json_object_set_new(va, "status", json_string("INACTIVE"));
    /* the pair a PSP can deliver out of order: the account's "updated" callback, then the
     * payment */
    if (json_is_true(json_object_get(va, "is_single_use")) || (o && o->out_of_order)) {
        upd = json_deep_copy(va);
        json_object_set_new(upd, "updated", json_string(ts));
        sb_hook_emit("xendit", "va.updated", id, SB.hook_xendit, upd, o, 0);
        json_decref(upd);
    }
    sb_hook_emit("xendit", "va.paid", id, SB.hook_xendit, cb, o, 1);
    if (out)
        *out = cb;
    else
        json_decref(cb);
    return 0;
}

static void create_qr(const struct sb_call *c, json_t *b, struct sb_resp *r)
{
    const char *ext = json_string_value(json_object_get(b, "external_id"));
    const char *type = json_string_value(json_object_get(b, "type"));
    const char *cb = json_string_value(json_object_get(b, "callback_url"));
    json_t *qr;
    json_int_t amount = 0;
    char id[48], ts[40], qs[320];
    (void)c;

    if (!ext || !*ext || !type || !cb || !*cb) {
        err(r, 400, "API_VALIDATION_ERROR",
            !ext || !*ext ? "\"external_id\" is required"
            : !type       ? "\"type\" is required"
                          : "\"callback_url\" is required");
        return;
    }
    if (strcmp(type, "DYNAMIC") != 0 && strcmp(type, "STATIC") != 0) {
        err(r, 400, "API_VALIDATION_ERROR", "\"type\" must be one of [DYNAMIC, STATIC]");
        return;
    }
    if (strcmp(type, "DYNAMIC") == 0 &&
        (!json_object_get(b, "amount") || get_amount(json_object_get(b, "amount"), &amount) != 0 ||
         amount < 1500)) {
        err(r, 400, "API_VALIDATION_ERROR",
            "\"amount\" is required for DYNAMIC QR codes and must be at least 1500");
        return;
    }
    if (sb_ref_get("xendit_qr_ext", ext)) {
        err(r, 409, "DUPLICATE_ERROR", "The external_id has already been used for a QR code");
        return;
    }
    sb_new_id("qr_", id, sizeof(id));
    now_iso(ts, sizeof(ts));
    /* an EMVCo-shaped QRIS payload: only its shape matters to a client */
    snprintf(qs, sizeof(qs),
             "00020101021226660014ID.LINKAJA.WWW011893600911002411480002152004230411480603UME"
             "51450015ID.OR.GPNQR.WWW0215ID10200000001%s5204599953033605802ID5912KASIRSANDBOX"
             "6007JAKARTA6304ABCD", id + 3);
    qr = json_pack("{s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:s, s:s}", "id", id, "external_id", ext,
                   "amount", amount, "qr_string", qs, "callback_url", cb, "type", type, "status",
                   "ACTIVE", "created", ts, "updated", ts);
    sb_obj_put("xendit_qr", id, qr);
    sb_ref_put("xendit_qr_ext", ext, id);
    sb_respond_json(r, 201, json_incref(qr));
}

/* A QRIS payment (https://archive.developers.xendit.co/api-reference/#qr-code-callback). */
static int pay_qr(json_t *qr, json_int_t amount, const struct sb_hook_opts *o, json_t **out)
{
    char pid[48], ts[40];
    json_t *pay;

    if (strcmp(json_string_value(json_object_get(qr, "status")), "ACTIVE") != 0)
        return -1;
    if (!amount)
        amount = json_integer_value(json_object_get(qr, "amount"));
    sb_new_id("qrpy_", pid, sizeof(pid));
    now_iso(ts, sizeof(ts));
    pay = json_pack("{s:s, s:s, s:I, s:s, s:{s:O, s:O, s:O, s:O}, s:s}", "event", "qr.payment",
                    "id", pid, "amount", amount, "created", ts, "qr_code", "id",
                    json_object_get(qr, "id"), "external_id", json_object_get(qr, "external_id"),
                    "qr_string", json_object_get(qr, "qr_string"), "type",
                    json_object_get(qr, "type"), "status", "COMPLETED");
    sb_ledger_add("xendit", "charge", json_string_value(json_object_get(qr, "id")),
                  json_string_value(json_object_get(qr, "external_id")), NULL, amount * 100, "IDR",
                  "qris");
    if (strcmp(json_string_value(json_object_get(qr, "type")), "DYNAMIC") == 0)
        json_object_set_new(qr, "status", json_string("INACTIVE"));
    json_object_set_new(qr, "updated", json_string(ts));
    sb_hook_emit("xendit", "qr.payment", pid, json_string_value(json_object_get(qr, "callback_url")),
                 pay, o, 1);
    if (out)
        *out = pay;
    else
        json_decref(pay);
    return 0;
}

static void create_disbursement(const struct sb_call *c, json_t *b, const char *idem,
                                struct sb_resp *r)
{
    const char *ext = json_string_value(json_object_get(b, "external_id"));
    const char *bank = json_string_value(json_object_get(b, "bank_code"));
    const char *holder = json_string_value(json_object_get(b, "account_holder_name"));
    const char *acct = json_string_value(json_object_get(b, "account_number"));
    const char *desc = json_string_value(json_object_get(b, "description"));
    json_int_t amount;
    json_t *d, *cb;
    char id[40], ts[40];
    int fail = c->force_decline;

    if (!ext || !*ext || !bank || !holder || !acct || !desc) {
        err(r, 400, "API_VALIDATION_ERROR",
            !ext || !*ext ? "\"external_id\" is required"
            : !bank       ? "\"bank_code\" is required"
            : !holder     ? "\"account_holder_name\" is required"
            : !acct       ? "\"account_number\" is required"
                          : "\"description\" is required");
        return;
    }
    if (get_amount(json_object_get(b, "amount"), &amount) != 0) {
        err(r, 400, "API_VALIDATION_ERROR", "\"amount\" must be a positive number");
        return;
    }
    if (amount < 10000) {
        err(r, 400, "RECIPIENT_AMOUNT_ERROR", "The transfer amount is below the minimum of 10000");
        return;
    }
    sb_new_id("", id, sizeof(id));
    now_iso(ts, sizeof(ts));
    d = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:s}", "id", id, "user_id", OWNER_ID,
                  "external_id", ext, "amount", amount, "bank_code", bank, "account_holder_name",
                  holder, "disbursement_description", desc, "status", "PENDING");
    sb_respond_json(r, 200, json_deep_copy(d));
    json_object_set_new(d, "created", json_string(ts));
    json_object_set_new(d, "updated", json_string(ts));
    sb_obj_put("xendit_disbursement", id, json_deep_copy(d));
    /* the transfer's fate is decided now; GET shows it, and a callback tells it, after
     * payout.delay */
    json_object_set_new(d, "status", json_string(fail ? "FAILED" : "COMPLETED"));
    json_object_set_new(d, "is_instant", json_false());
    if (fail)
        json_object_set_new(d, "failure_code", json_string("INVALID_DESTINATION"));
    sb_obj_put("xendit_disbursement.final", id, d);
    {
        /* several disbursements may share an external_id: keep the list */
        json_t *lst = sb_obj_get("xendit_disb_ext", ext);
        if (!lst) {
            lst = json_array();
            sb_obj_put("xendit_disb_ext", ext, lst);
        }
        json_array_append_new(lst, json_string(id));
    }
    if (!fail)
        sb_ledger_add("xendit", "payout", id, ext, idem, amount * 100, "IDR", "bank_transfer");
    cb = json_deep_copy(d);
    json_object_set_new(cb, "account_number", json_string(acct));
    sb_hook_emit("xendit", fail ? "disbursement.failed" : "disbursement.completed", id,
                 SB.hook_xendit, cb,
                 &(struct sb_hook_opts){.delay_ms = SB.payout_delay_ms,
                                        .apply_kind = "xendit_disbursement"}, 1);
    json_decref(cb);
}

int sb_xendit_event(const char *what, const char *id, int64_t amount,
                    const struct sb_hook_opts *o, char *msg, size_t cap)
{
    json_t *obj;
    const char *vid;

    if (strcmp(what, "va_paid") == 0 || strcmp(what, "va_expired") == 0) {
        vid = sb_ref_get("xendit_va_ext", id);
        obj = sb_obj_get("xendit_va", vid ? vid : id);
        if (!obj) {
            snprintf(msg, cap, "no fixed virtual account with id or external_id %s", id);
            return -1;
        }
        if (strcmp(what, "va_expired") == 0) {
            char ts[40];
            json_t *upd;
            now_iso(ts, sizeof(ts));
            json_object_set_new(obj, "status", json_string("INACTIVE"));
            json_object_set_new(obj, "updated", json_string(ts));
            upd = json_deep_copy(obj);
            sb_hook_emit("xendit", "va.expired", json_string_value(json_object_get(obj, "id")),
                         SB.hook_xendit, upd, o, 1);
            json_decref(upd);
            return 0;
        }
        if (!amount)
            amount = json_integer_value(json_object_get(obj, "expected_amount"));
        if (amount <= 0 || pay_va(obj, amount, o, NULL) != 0) {
            snprintf(msg, cap, "the virtual account is not active, or the amount is missing");
            return -1;
        }
        return 0;
    }
    if (strcmp(what, "qr_paid") == 0) {
        vid = sb_ref_get("xendit_qr_ext", id);
        obj = sb_obj_get("xendit_qr", vid ? vid : id);
        if (!obj || pay_qr(obj, amount, o, NULL) != 0) {
            snprintf(msg, cap, "no active QR code with id or external_id %s", id);
            return -1;
        }
        return 0;
    }
    snprintf(msg, cap, "xendit events: va_paid, va_expired, qr_paid");
    return -1;
}

int sb_xendit_handle(const struct sb_call *c, struct sb_resp *r)
{
    char user[256], scope[400], fp[65], ext[1024], msg[200];
    const char *idem = sb_header(c, "X-IDEMPOTENCY-KEY");
    const char *ctype = sb_header(c, "Content-Type");
    int post = strcmp(c->method, "POST") == 0, disb;
    json_t *b = NULL, *obj;

    if (strcmp(sb_psp_of_path(c->path) ? sb_psp_of_path(c->path) : "", "xendit") != 0)
        return 0;
    sb_auth_user(sb_header(c, "Authorization"), user, sizeof(user));
    if (!*SB.xendit_key || strcmp(user, SB.xendit_key) != 0) {
        err(r, 401, "INVALID_API_KEY", "API key is not authorized for this API service");
        return 1;
    }
    if (post) {
        int form = ctype && strncasecmp(ctype, "application/x-www-form-urlencoded", 33) == 0;

        msg[0] = '\0';
        if (form)
            b = sb_form_parse(c->body, c->len, msg, sizeof(msg));
        else
            b = c->len ? json_loadb(c->body, c->len, JSON_REJECT_DUPLICATES, NULL) : json_object();
        if (!json_is_object(b)) {
            if (form) /* the form's own message names the parameter */
                err(r, 400, "API_VALIDATION_ERROR", msg);
            else
                err(r, 400, "INVALID_JSON_FORMAT", "The request body is not a valid JSON format");
            goto out;
        }
    }
    if (post && idem && !sb_idem_key_ok(idem)) {
        err(r, 400, "API_VALIDATION_ERROR", "X-IDEMPOTENCY-KEY must be at most 255 bytes of UTF-8");
        goto out;
    }
    disb = post && strcmp(c->path, "/disbursements") == 0;
    if (post && idem && *idem && strstr(c->path, "simulate") == NULL) {
        switch (sb_idem_check("xendit", user, idem, c, b, scope, fp, r)) {
        case SB_IDEM_HIT:
            if (!disb)
                goto out;
            free(r->body);
            r->body = NULL;
            r->replayed = 0;
            /* a disbursement key is spent once used */
            err(r, 409, "DUPLICATE_TRANSACTION_ERROR",
                "Idempotency key has been used before. Use a unique idempotency key and try again");
            goto out;
        case SB_IDEM_MISMATCH:
            err(r, 409, "DUPLICATE_TRANSACTION_ERROR",
                "Idempotency key has been used before. Use a unique idempotency key and try again");
            goto out;
        case SB_IDEM_NEW:
            break;
        }
    }
    if (post && strcmp(c->path, "/callback_virtual_accounts") == 0) {
        create_va(c, b, r);
    } else if (post && sb_path_id(c->path, "/callback_virtual_accounts/external_id=",
                                  "/simulate_payment", ext, sizeof(ext))) {
        /* the test-mode endpoint Xendit documents for simulating a payment */
        const char *vid = sb_ref_get("xendit_va_ext", ext);
        json_int_t amount = 0;
        obj = sb_obj_get("xendit_va", vid);
        if (!obj) {
            err(r, 404, "CALLBACK_VIRTUAL_ACCOUNT_NOT_FOUND_ERROR",
                "Could not find callback virtual account");
        } else if (get_amount(json_object_get(b, "amount"), &amount) != 0) {
            err(r, 400, "API_VALIDATION_ERROR", "\"amount\" is required");
        } else if (pay_va(obj, amount, NULL, NULL) != 0) {
            err(r, 400, "INACTIVE_VIRTUAL_ACCOUNT_ERROR", "The virtual account is not active");
        } else {
            char m[1400];
            snprintf(m, sizeof(m), "Payment for the Fixed VA with external id %s is currently "
                                   "being processed. Please ensure that you have set a callback "
                                   "URL for VA payments via Dashboard Settings and contact us if "
                                   "you do not receive a VA payment callback within the next 5 "
                                   "mins.", ext);
            sb_respond_json(r, 200, json_pack("{s:s, s:s}", "status", "COMPLETED", "message", m));
        }
    } else if (!post && strncmp(c->path, "/callback_virtual_accounts/", 27) == 0) {
        obj = sb_obj_get("xendit_va", c->path + 27);
        if (obj)
            sb_respond_json(r, 200, json_incref(obj));
        else
            err(r, 404, "CALLBACK_VIRTUAL_ACCOUNT_NOT_FOUND_ERROR",
                "Could not find callback virtual account");
    } else if (!post && strncmp(c->path, "/callback_virtual_account_payments/payment_id=", 46) == 0) {
        obj = sb_obj_get("xendit_va_payment", c->path + 46);
        if (obj)
            sb_respond_json(r, 200, json_incref(obj));
        else
            err(r, 404, "CALLBACK_VIRTUAL_ACCOUNT_PAYMENT_NOT_FOUND_ERROR",
                "Could not find callback virtual account payment");
    } else if (post && strcmp(c->path, "/qr_codes") == 0) {
        create_qr(c, b, r);
    } else if (post && sb_path_id(c->path, "/qr_codes/", "/payments/simulate", ext, sizeof(ext))) {
        const char *qid = sb_ref_get("xendit_qr_ext", ext);
        json_t *pay = NULL;
        obj = sb_obj_get("xendit_qr", qid);
        if (!obj)
            err(r, 404, "DATA_NOT_FOUND", "QR code not found");
        else if (pay_qr(obj, 0, NULL, &pay) != 0)
            err(r, 400, "INACTIVE_QR_CODE", "The QR code is no longer active");
        else {
            json_object_del(pay, "event");
            sb_respond_json(r, 200, pay);
        }
    } else if (!post && strncmp(c->path, "/qr_codes/", 10) == 0) {
        const char *qid = sb_ref_get("xendit_qr_ext", c->path + 10);
        obj = sb_obj_get("xendit_qr", qid);
        if (obj)
            sb_respond_json(r, 200, json_incref(obj));
        else
            err(r, 404, "DATA_NOT_FOUND", "QR code not found");
    } else if (disb) {
        create_disbursement(c, b, idem, r);
    } else if (!post && strcmp(c->path, "/disbursements") == 0 && sb_query(c, "external_id")) {
        json_t *lst = sb_obj_get("xendit_disb_ext", sb_query(c, "external_id")), *out, *v;
        size_t i;
        if (!lst) {
            err(r, 404, "DIRECT_DISBURSEMENT_NOT_FOUND_ERROR", "Could not find direct disbursement");
        } else {
            out = json_array();
            json_array_foreach(lst, i, v)
                json_array_append(out, sb_obj_get("xendit_disbursement", json_string_value(v)));
            sb_respond_json(r, 200, out);
        }
    } else if (!post && strncmp(c->path, "/disbursements/", 15) == 0) {
        obj = sb_obj_get("xendit_disbursement", c->path + 15);
        if (obj)
            sb_respond_json(r, 200, json_incref(obj));
        else
            err(r, 404, "DIRECT_DISBURSEMENT_NOT_FOUND_ERROR", "Could not find direct disbursement");
    } else {
        err(r, 404, "NOT_FOUND", "The requested resource was not found");
    }
    if (post && idem && *idem && strstr(c->path, "simulate") == NULL && r->status >= 200 &&
        r->status < 300)
        sb_idem_store(scope, fp, r);
out:
    json_decref(b);
    return 1;
}
