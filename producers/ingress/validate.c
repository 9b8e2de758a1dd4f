/* validate.c - see validate.h */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/err.h"
#include "lib/money.h"
#include "producers/ingress/validate.h"
#include "lib/banned.h"

/* The catalogue of problem codes: append-only, each a stable name partners branch on. */
const struct ing_code_def ing_codes[] = {
    {"malformed_json", 400, "The body is not valid JSON"},
    {"duplicate_field", 400, "A JSON object has the same member twice"},
    {"body_not_object", 400, "The body is not a JSON object"},
    {"field_required", 400, "A required field is missing"},
    {"field_unknown", 400, "The body has a field this endpoint does not know"},
    {"field_type", 400, "A field has the wrong JSON type"},
    {"field_empty", 400, "A field is empty"},
    {"field_too_long", 400, "A field is longer than allowed"},
    {"field_format", 400, "A field does not have the required form"},
    {"field_not_allowed", 400, "A field is not allowed in this combination"},
    {"value_not_allowed", 400, "A field has a value outside its list"},
    {"array_empty", 400, "An array that needs items has none"},
    {"array_too_large", 400, "An array has more items than allowed"},
    {"amount_invalid", 400, "An amount is not a decimal string in the currency's form"},
    {"amount_out_of_range", 400, "An amount is outside the allowed bounds"},
    {"currency_unsupported", 400, "The currency is unknown"},
    {"currency_method_unsupported", 400, "The payment method's rail does not take this currency"},
    {"currency_mixed", 400, "The orders of one payment are in more than one currency"},
    {"card_data_forbidden", 400, "Card numbers must never be sent; use a PSP token"},
    {"idempotency_key_required", 400, "The Idempotency-Key header or idempotency_key is missing"},
    {"idempotency_key_invalid", 400, "The idempotency key is not 1-255 printable characters"},
    {"idempotency_key_mismatch", 400, "Header and body carry different idempotency keys"},
    {"query_invalid", 400, "A query parameter is missing or malformed"},
    {"settlement_format_unknown", 400, "No settlement file layout for this PSP or format"},
    {"unauthorized", 401, "Authentication is missing or not valid"},
    {"token_expired", 401, "The bearer token has expired"},
    {"auth_signature_invalid", 401, "The token request signature does not match"},
    {"auth_timestamp_skew", 401, "The token request timestamp is outside the allowed window"},
    {"auth_nonce_replayed", 401, "The token request nonce was already used"},
    {"webhook_signature_invalid", 401, "The webhook signature does not verify"},
    {"webhook_timestamp_stale", 401, "The webhook timestamp is outside the tolerance"},
    {"forbidden_scope", 403, "The credentials lack the scope this request needs"},
    {"not_found", 404, "No such object for this partner"},
    {"route_not_found", 404, "No such endpoint"},
    {"webhook_psp_unknown", 404, "No webhook endpoint for this PSP"},
    {"method_not_allowed", 405, "The endpoint does not accept this HTTP method"},
    {"request_in_progress", 409, "A request with this idempotency key is still in flight"},
    {"duplicate_checkout", 409, "A payment for this checkout_id exists already"},
    {"hold_decided", 409, "The hold was already decided the other way"},
    {"adjustment_decided", 409, "The adjustment was already decided the other way"},
    {"adjustment_expired", 409, "The adjustment request expired before its approval"},
    {"approver_is_requester", 403, "An adjustment must be approved by another API key"},
    {"insufficient_funds", 409, "The seller's available balance does not cover the debit"},
    {"payout_not_retriable", 409, "The payout did not fail, or failed for a reason a retry cannot mend"},
    {"refund_not_captured", 409, "The payment order has no captured money to refund"},
    {"body_too_large", 413, "The body is larger than this endpoint accepts"},
    {"uri_too_long", 414, "The request target is too long"},
    {"unsupported_media_type", 415, "The Content-Type is not accepted here"},
    {"idempotency_key_reused", 422, "The idempotency key was used with a different request"},
    {"refund_exceeds_amount", 422, "The refund is larger than what is left to refund"},
    {"refund_currency_mismatch", 422, "The refund currency is not the order's currency"},
    {"settlement_invalid", 422, "A settlement file row is malformed"},
    {"rate_limited", 429, "Too many requests for this partner or client address"},
    {"headers_too_large", 431, "The request headers are too large"},
    {"internal", 500, "Internal error"},
    {"outcome_unknown", 500, "The write may or may not have been done (the database connection "
                             "was lost, or it did not answer in time): look before asking "
                             "again"},
    {"unavailable", 503, "A dependency is unavailable; retry later"},
};
const size_t ing_codes_count = sizeof(ing_codes) / sizeof(ing_codes[0]);

const char *const ing_method_avro[] = {"CARD", "VIRTUAL_ACCOUNT", "QRIS", "EWALLET",
                                       "BANK_TRANSFER"};
const char *const ing_method_api[] = {"card", "virtual_account", "qris", "ewallet",
                                      "bank_transfer"};

void ing_problem(struct ing_problem *p, const char *code, const char *field, const char *fmt,
                 ...)
{
    va_list ap;
    size_t i;

    p->status = 500;
    p->code = "internal";
    for (i = 0; i < ing_codes_count; i++)
        if (strcmp(ing_codes[i].code, code) == 0) {
            p->status = ing_codes[i].status;
            p->code = ing_codes[i].code;
            break;
        }
    snprintf(p->field, sizeof(p->field), "%s", field ? field : "");
    va_start(ap, fmt);
    vsnprintf(p->detail, sizeof(p->detail), fmt, ap);
    va_end(ap);
}

/* --- field tables ------------------------------------------------------------------- */

enum ftype { F_STR, F_OBJ, F_ARR, F_INT };
enum fcs { CS_TEXT, CS_ID, CS_PRINT, CS_UPPER, CS_DIGITS, CS_HEX, CS_PHONE };

struct fdef {
    const char *name;
    enum ftype type;
    int required;
    size_t maxlen; /* strings: longest length in bytes */
    enum fcs cs;
    int pan_ok; /* 1: not checked for card numbers (amounts, codes, keys, account numbers) */
};

static const char *ftype_name(enum ftype t)
{
    return t == F_STR ? "a string" : t == F_OBJ ? "an object" : t == F_ARR ? "an array"
                                                                          : "an integer";
}

static int cs_ok(const char *s, enum fcs cs)
{
    const unsigned char *u = (const unsigned char *)s;

    for (; *u; u++) {
        unsigned c = *u;
        switch (cs) {
        case CS_TEXT: /* jansson guarantees UTF-8; refuse control characters */
            if (c < 0x20 || c == 0x7f)
                return 0;
            break;
        case CS_ID:
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-' || c == '.' || c == ':'))
                return 0;
            break;
        case CS_PRINT:
            if (c < 0x20 || c > 0x7e)
                return 0;
            break;
        case CS_UPPER:
            if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
                return 0;
            break;
        case CS_DIGITS:
            if (c < '0' || c > '9')
                return 0;
            break;
        case CS_HEX:
            if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
                return 0;
            break;
        case CS_PHONE:
            if (!((c >= '0' && c <= '9') || (c == '+' && u == (const unsigned char *)s)))
                return 0;
            break;
        }
    }
    return 1;
}

static const char *cs_desc(enum fcs cs)
{
    switch (cs) {
    case CS_ID: return "letters, digits and _ - . : only";
    case CS_PRINT: return "printable ASCII only";
    case CS_UPPER: return "upper-case letters, digits and _ only";
    case CS_DIGITS: return "digits only";
    case CS_HEX: return "lower-case hex digits only";
    case CS_PHONE: return "digits with an optional leading + only";
    default: return "no control characters";
    }
}

static void path(char *out, size_t len, const char *prefix, const char *name)
{
    if (prefix && *prefix)
        snprintf(out, len, "%s.%s", prefix, name);
    else
        snprintf(out, len, "%s", name);
}

/* Checks every member of o against defs (unknown, type, length, charset), then the
 * required ones. Members are visited in document order so the first fault is reported. */
static int check_fields(json_t *o, const char *prefix, const struct fdef *d, size_t n,
                        struct ing_problem *p)
{
    const char *k;
    json_t *v;
    char f[96];
    size_t i;

    json_object_foreach(o, k, v) {
        const struct fdef *def = NULL;
        for (i = 0; i < n; i++)
            if (strcmp(d[i].name, k) == 0)
                def = &d[i];
        path(f, sizeof(f), prefix, k);
        if (!def) {
            ing_problem(p, "field_unknown", f, "%s is not a field of this request", f);
            return -1;
        }
        if ((def->type == F_STR && !json_is_string(v)) ||
            (def->type == F_OBJ && !json_is_object(v)) ||
            (def->type == F_ARR && !json_is_array(v)) ||
            (def->type == F_INT && !json_is_integer(v))) {
            ing_problem(p, "field_type", f, "%s must be %s", f, ftype_name(def->type));
            return -1;
        }
        if (def->type == F_STR) {
            const char *s = json_string_value(v);
            size_t sl = json_string_length(v);
            if (sl == 0) {
                ing_problem(p, "field_empty", f, "%s must not be empty", f);
                return -1;
            }
            if (sl > def->maxlen) {
                ing_problem(p, "field_too_long", f, "%s is longer than %zu bytes", f,
                            def->maxlen);
                return -1;
            }
            if (strlen(s) != sl || !cs_ok(s, def->cs)) {
                ing_problem(p, "field_format", f, "%s: %s", f, cs_desc(def->cs));
                return -1;
            }
            /* every id and free text: card data must never enter Kasir */
            if (!def->pan_ok && ing_has_card_number(s)) {
                ing_problem(p, "card_data_forbidden", f,
                            "%s looks like a card number; card data must never be sent", f);
                return -1;
            }
        }
    }
    for (i = 0; i < n; i++)
        if (d[i].required && !json_object_get(o, d[i].name)) {
            path(f, sizeof(f), prefix, d[i].name);
            ing_problem(p, "field_required", f, "%s is required", f);
            return -1;
        }
    return 0;
}

static const char *sget(json_t *o, const char *name)
{
    json_t *v = json_object_get(o, name);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static json_t *load_object(const char *body, size_t len, struct ing_problem *p)
{
    json_error_t je;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);

    if (!root) {
        if (strstr(je.text, "duplicate"))
            ing_problem(p, "duplicate_field", NULL, "duplicate member at byte %d",
                        je.position);
        else
            ing_problem(p, "malformed_json", NULL, "invalid json at line %d column %d",
                        je.line, je.column);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        ing_problem(p, "body_not_object", NULL, "the body must be a json object");
        return NULL;
    }
    return root;
}

static int in_list(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(s, *list) == 0)
            return 1;
    return 0;
}

static int luhn_ok(const int *d, size_t len)
{
    int sum = 0;
    size_t j;

    for (j = 0; j < len; j++) {
        int v = d[len - 1 - j];
        if (j % 2 == 1) {
            v *= 2;
            if (v > 9)
                v -= 9;
        }
        sum += v;
    }
    return sum % 10 == 0;
}

/* the issuer prefixes and lengths of the card networks (Visa, Mastercard, Amex, Discover,
 * JCB, UnionPay, Diners): a digit run is a card number only with one of them */
static int issuer_ok(const int *d, size_t len)
{
    int p2 = d[0] * 10 + d[1], p3 = p2 * 10 + d[2], p4 = p3 * 10 + d[3];

    if (d[0] == 4)
        return len == 13 || len == 16 || len == 19;
    if ((p2 >= 51 && p2 <= 55) || (p4 >= 2221 && p4 <= 2720))
        return len == 16;
    if (p2 == 34 || p2 == 37)
        return len == 15;
    if (p4 == 6011 || p2 == 65 || (p3 >= 644 && p3 <= 649) || p2 == 62 ||
        (p4 >= 3528 && p4 <= 3589))
        return len >= 16 && len <= 19;
    if (p2 == 36 || (p3 >= 300 && p3 <= 305))
        return len == 14;
    return 0;
}

/* A card number in a run of contiguous digits: the run itself when it has a card's length
 * (13-19), or any stretch of a longer run (a number embedded in a longer id), with an
 * issuer's prefix and length and a valid Luhn digit. Stretches of 13-19 digit runs are not
 * looked at: random ids (hex UUIDs) have such runs often enough to be refused for nothing. */
static int run_has_card(const int *d, size_t n)
{
    size_t len, start;

    if (n >= 13 && n <= 19)
        return issuer_ok(d, n) && luhn_ok(d, n);
    for (len = 13; len <= 19 && len <= n; len++)
        for (start = 0; start + len <= n; start++)
            if (issuer_ok(d + start, len) && luhn_ok(d + start, len))
                return 1;
    return 0;
}

/* groups of a separated number, as cards are printed: 4-4-4-4(-1..3), 4-4-4-1..4, 4-6-5,
 * 4-6-4 */
static int card_grouping(const size_t *g, size_t k)
{
    size_t i;

    if (k == 3 && g[0] == 4 && g[1] == 6 && (g[2] == 5 || g[2] == 4))
        return 1;
    if (k < 4 || k > 5)
        return 0;
    for (i = 0; i + 1 < k; i++)
        if (g[i] != 4)
            return 0;
    return g[k - 1] >= 1 && g[k - 1] <= 4;
}

int ing_has_card_number(const char *s)
{
    int digits[96];
    size_t groups[24], ng = 0, n = 0, i, glen = 0;
    char sep = 0;

    for (i = 0;; i++) {
        char c = s[i];
        if (c >= '0' && c <= '9') {
            if (n < 96)
                digits[n++] = c - '0';
            glen++;
            continue;
        }
        /* one separator between digits, the same throughout: "4111 1111 1111 1111",
         * "4111-1111-...", "4111.1111...", "4111/1111..." */
        if ((c == ' ' || c == '-' || c == '.' || c == '/') && glen > 0 && s[i + 1] >= '0' &&
            s[i + 1] <= '9' && (!sep || sep == c) && ng + 1 < 24) {
            sep = c;
            groups[ng++] = glen;
            glen = 0;
            continue;
        }
        if (n > 0) {
            groups[ng++] = glen;
            if (ng == 1 || card_grouping(groups, ng)) {
                if (run_has_card(digits, n))
                    return 1;
            } else {
                /* not a card's grouping: each group is a run of its own */
                size_t off = 0, k;
                for (k = 0; k < ng; k++) {
                    if (off + groups[k] <= n && groups[k] >= 13 &&
                        run_has_card(digits + off, groups[k]))
                        return 1;
                    off += groups[k];
                }
            }
        }
        n = ng = glen = 0;
        sep = 0;
        if (c == '\0')
            break;
    }
    return 0;
}

int ing_idem_key_ok(const char *k)
{
    size_t n = strlen(k);
    return n >= 1 && n <= ING_IDEM_KEY_MAX && cs_ok(k, CS_PRINT) && k[0] != ' ' &&
           k[n - 1] != ' ';
}

int ing_idem_key_pick(const char *header, const char *body, const char **out,
                      struct ing_problem *p)
{
    if (header && !ing_idem_key_ok(header)) {
        ing_problem(p, "idempotency_key_invalid", "Idempotency-Key",
                    "Idempotency-Key must be 1-255 printable ASCII characters");
        return -1;
    }
    if (header && body && strcmp(header, body) != 0) {
        ing_problem(p, "idempotency_key_mismatch", "idempotency_key",
                    "idempotency_key differs from the Idempotency-Key header");
        return -1;
    }
    *out = header ? header : body;
    if (!*out) {
        ing_problem(p, "idempotency_key_required", "Idempotency-Key",
                    "send an Idempotency-Key header (or idempotency_key in the body)");
        return -1;
    }
    return 0;
}

/* amount + currency of obj -> m, bounded per order (SPEC 4). */
static int parse_amount(json_t *obj, const char *prefix, struct ks_money *m,
                        struct ing_problem *p)
{
    const char *cur = sget(obj, "currency"), *amt = sget(obj, "amount");
    struct ks_err e = {0};
    char f[96];

    path(f, sizeof(f), prefix, "currency");
    if (ks_money_exponent(cur) < 0) {
        ing_problem(p, "currency_unsupported", f, "%s: unknown currency", f);
        return -1;
    }
    path(f, sizeof(f), prefix, "amount");
    if (ks_money_parse(amt, cur, f, m, &e) != KS_OK) {
        ing_problem(p, "amount_invalid", f, "%s: %s", f, e.msg);
        return -1;
    }
    if (ks_money_check_bounds(m, f, &e) != KS_OK) {
        ing_problem(p, "amount_out_of_range", f, "%s: %s", f, e.msg);
        return -1;
    }
    return 0;
}

static const char *const psps[] = {"sandbox", "stripe", "xendit", "midtrans", NULL};
static const char *const ewallets[] = {"OVO", "DANA", "GOPAY", "SHOPEEPAY", "LINKAJA", NULL};

static int forbid(json_t *o, const char *prefix, const char *name, const char *why,
                  struct ing_problem *p)
{
    char f[96];

    if (!json_object_get(o, name))
        return 0;
    path(f, sizeof(f), prefix, name);
    ing_problem(p, "field_not_allowed", f, "%s is not allowed %s", f, why);
    return -1;
}

static int need(json_t *o, const char *prefix, const char *name, const char *why,
                struct ing_problem *p)
{
    char f[96];

    if (json_object_get(o, name))
        return 0;
    path(f, sizeof(f), prefix, name);
    ing_problem(p, "field_required", f, "%s is required %s", f, why);
    return -1;
}

static int parse_order(json_t *o, size_t idx, struct ing_order *out, struct ing_problem *p)
{
    static const struct fdef defs[] = {
        {"seller_id", F_STR, 1, ING_ID_MAX, CS_ID},
        {"amount", F_STR, 1, 32, CS_PRINT, 1},
        {"currency", F_STR, 1, 3, CS_UPPER, 1},
        {"method", F_STR, 1, 32, CS_PRINT, 1},
        {"psp_preference", F_STR, 0, 16, CS_PRINT, 1},
        {"payment_token", F_STR, 0, 128, CS_ID},
        {"bank_code", F_STR, 0, 16, CS_UPPER, 1},
        {"ewallet_channel", F_STR, 0, 16, CS_UPPER, 1},
    };
    char prefix[48], f[96];
    const char *m;
    int i, found = -1;

    snprintf(prefix, sizeof(prefix), "payment_orders[%zu]", idx);
    if (!json_is_object(o)) {
        ing_problem(p, "field_type", prefix, "%s must be an object", prefix);
        return -1;
    }
    if (check_fields(o, prefix, defs, sizeof(defs) / sizeof(defs[0]), p) != 0)
        return -1;
    m = sget(o, "method");
    for (i = 0; i < 5; i++)
        if (strcmp(m, ing_method_api[i]) == 0)
            found = i;
    if (found < 0) {
        path(f, sizeof(f), prefix, "method");
        ing_problem(p, "value_not_allowed", f,
                    "%s must be card, virtual_account, qris, ewallet or bank_transfer", f);
        return -1;
    }
    out->method = (enum ing_method)found;
    if (parse_amount(o, prefix, &out->amount, p) != 0)
        return -1;
    /* QRIS, virtual accounts, bank transfers and the e-wallets (OVO, DANA, GoPay,
     * ShopeePay, LinkAja) are Indonesian rails: rupiah only. Cards take any currency. */
    if (out->method != ING_CARD && strcmp(out->amount.currency, "IDR") != 0) {
        path(f, sizeof(f), prefix, "currency");
        ing_problem(p, "currency_method_unsupported", f, "%s: method %s takes IDR only", f,
                    ing_method_api[out->method]);
        return -1;
    }
    out->seller_id = sget(o, "seller_id");
    out->psp = sget(o, "psp_preference");
    out->payment_token = sget(o, "payment_token");
    out->bank_code = sget(o, "bank_code");
    out->ewallet = sget(o, "ewallet_channel");
    if (out->psp && !in_list(out->psp, psps)) {
        path(f, sizeof(f), prefix, "psp_preference");
        ing_problem(p, "value_not_allowed", f, "%s must be sandbox, stripe, xendit or midtrans", f);
        return -1;
    }
    if (out->payment_token && ing_has_card_number(out->payment_token)) {
        path(f, sizeof(f), prefix, "payment_token");
        ing_problem(p, "card_data_forbidden", f, "%s looks like a card number; send the PSP's token", f);
        return -1;
    }
    /* each method needs at most one of the method fields and forbids the others */
    static const char *const method_fields[] = {"payment_token", "bank_code", "ewallet_channel"};
    static const struct { const char *needs, *why; } rules[] = {
        [ING_CARD] = {"payment_token", "for method card"},
        [ING_VA] = {"bank_code", "for this method"},
        [ING_BANK] = {"bank_code", "for this method"},
        [ING_QRIS] = {NULL, "for method qris"},
        [ING_EWALLET] = {"ewallet_channel", "for method ewallet"},
    };
    const char *needs = rules[out->method].needs, *why = rules[out->method].why;
    if (needs && need(o, prefix, needs, why, p))
        return -1;
    for (size_t k = 0; k < sizeof(method_fields) / sizeof(method_fields[0]); k++)
        if ((!needs || strcmp(method_fields[k], needs) != 0) &&
            forbid(o, prefix, method_fields[k], why, p))
            return -1;
    if (out->method == ING_EWALLET && !in_list(out->ewallet, ewallets)) {
        path(f, sizeof(f), prefix, "ewallet_channel");
        ing_problem(p, "value_not_allowed", f,
                    "%s must be OVO, DANA, GOPAY, SHOPEEPAY or LINKAJA", f);
        return -1;
    }
    return 0;
}

static int check_metadata(json_t *md, struct ing_problem *p)
{
    const char *k;
    json_t *v;
    char f[96];

    if (json_object_size(md) > ING_MAX_METADATA) {
        ing_problem(p, "array_too_large", "metadata", "metadata has more than %d entries",
                    ING_MAX_METADATA);
        return -1;
    }
    json_object_foreach(md, k, v) {
        snprintf(f, sizeof(f), "metadata.%.60s", k);
        if (strlen(k) == 0 || strlen(k) > 40 || !cs_ok(k, CS_ID)) {
            ing_problem(p, "field_format", f, "metadata names are 1-40 letters, digits and _ - . :");
            return -1;
        }
        if (ing_has_card_number(k)) {
            ing_problem(p, "card_data_forbidden", "metadata", "a metadata name looks like a card number");
            return -1;
        }
        if (!json_is_string(v)) {
            ing_problem(p, "field_type", f, "%s must be a string", f);
            return -1;
        }
        if (json_string_length(v) > 500) {
            ing_problem(p, "field_too_long", f, "%s is longer than 500 bytes", f);
            return -1;
        }
        if (strlen(json_string_value(v)) != json_string_length(v) ||
            !cs_ok(json_string_value(v), CS_TEXT)) {
            ing_problem(p, "field_format", f, "%s: no control characters", f);
            return -1;
        }
        if (ing_has_card_number(json_string_value(v))) {
            ing_problem(p, "card_data_forbidden", f, "%s looks like a card number", f);
            return -1;
        }
    }
    return 0;
}

/* The optional idempotency_key member of a body; 0, or -1 + p when it is malformed. */
static int body_idem_key(json_t *root, const char **out, struct ing_problem *p)
{
    *out = sget(root, "idempotency_key");
    if (*out && !ing_idem_key_ok(*out)) {
        ing_problem(p, "idempotency_key_invalid", "idempotency_key",
                    "idempotency_key must be 1-255 printable ASCII characters");
        return -1;
    }
    return 0;
}

int ing_parse_payment(const char *body, size_t len, struct ing_payment *out,
                      struct ing_problem *p)
{
    static const struct fdef defs[] = {
        {"buyer", F_OBJ, 1, 0, CS_TEXT},
        {"checkout_id", F_STR, 1, ING_ID_MAX, CS_ID},
        {"payment_orders", F_ARR, 1, 0, CS_TEXT},
        {"idempotency_key", F_STR, 0, ING_IDEM_KEY_MAX, CS_PRINT, 1},
        {"metadata", F_OBJ, 0, 0, CS_TEXT},
    };
    static const struct fdef buyer_defs[] = {
        {"id", F_STR, 1, ING_ID_MAX, CS_ID},
    };
    json_t *root = load_object(body, len, p), *orders;
    size_t i;

    memset(out, 0, sizeof(*out));
    if (!root)
        return -1;
    if (check_fields(root, "", defs, sizeof(defs) / sizeof(defs[0]), p) != 0 ||
        check_fields(json_object_get(root, "buyer"), "buyer", buyer_defs, 1, p) != 0)
        goto fail;
    orders = json_object_get(root, "payment_orders");
    if (json_array_size(orders) == 0) {
        ing_problem(p, "array_empty", "payment_orders", "payment_orders needs at least one order");
        goto fail;
    }
    if (json_array_size(orders) > ING_MAX_ORDERS) {
        ing_problem(p, "array_too_large", "payment_orders",
                    "payment_orders has more than %d orders", ING_MAX_ORDERS);
        goto fail;
    }
    for (i = 0; i < json_array_size(orders); i++) {
        if (parse_order(json_array_get(orders, i), i, &out->orders[i], p) != 0)
            goto fail;
        /* one payment, one currency: what the buyer is charged is one sum */
        if (i > 0 && strcmp(out->orders[i].amount.currency, out->orders[0].amount.currency) != 0) {
            char f[64];
            snprintf(f, sizeof(f), "payment_orders[%zu].currency", i);
            ing_problem(p, "currency_mixed", f, "%s: the payment is in %s", f,
                        out->orders[0].amount.currency);
            goto fail;
        }
    }
    out->n_orders = json_array_size(orders);
    out->metadata = json_object_get(root, "metadata");
    if (out->metadata && check_metadata(out->metadata, p) != 0)
        goto fail;
    if (body_idem_key(root, &out->idempotency_key, p) != 0)
        goto fail;
    out->buyer_id = sget(json_object_get(root, "buyer"), "id");
    out->checkout_id = sget(root, "checkout_id");
    out->root = root;
    return 0;
fail:
    json_decref(root);
    memset(out, 0, sizeof(*out));
    return -1;
}

int ing_parse_refund(const char *body, size_t len, struct ing_refund *out,
                     struct ing_problem *p)
{
    static const struct fdef defs[] = {
        {"payment_order_id", F_STR, 1, ING_ID_MAX + 8, CS_ID},
        {"amount", F_STR, 0, 32, CS_PRINT, 1},
        {"currency", F_STR, 0, 3, CS_UPPER, 1},
        {"reason", F_STR, 0, 200, CS_TEXT},
        {"idempotency_key", F_STR, 0, ING_IDEM_KEY_MAX, CS_PRINT, 1},
    };
    json_t *root = load_object(body, len, p);

    memset(out, 0, sizeof(*out));
    if (!root)
        return -1;
    if (check_fields(root, "", defs, sizeof(defs) / sizeof(defs[0]), p) != 0)
        goto fail;
    if (json_object_get(root, "amount") || json_object_get(root, "currency")) {
        if (need(root, "", "amount", "with currency", p))
            goto fail;
        out->amount_text = sget(root, "amount");
        if (json_object_get(root, "currency")) {
            if (parse_amount(root, "", &out->amount, p) != 0)
                goto fail;
        } else {
            /* in the order's currency (the seed contract): only its form is checked here,
             * with the most decimals any currency has; the server parses it again once it
             * knows the order's currency */
            struct ks_money m;
            struct ks_err e = {0};
            if (ks_money_parse(out->amount_text, "KWD", "amount", &m, &e) != KS_OK) {
                ing_problem(p, "amount_invalid", "amount", "amount: %s", e.msg);
                goto fail;
            }
            memset(&out->amount, 0, sizeof(out->amount));
        }
        out->has_amount = 1;
    }
    out->reason = sget(root, "reason");
    if (out->reason && ing_has_card_number(out->reason)) {
        ing_problem(p, "card_data_forbidden", "reason", "reason looks like a card number");
        goto fail;
    }
    if (body_idem_key(root, &out->idempotency_key, p) != 0)
        goto fail;
    out->order_id = sget(root, "payment_order_id");
    out->root = root;
    return 0;
fail:
    json_decref(root);
    memset(out, 0, sizeof(*out));
    return -1;
}

int ing_parse_payout(const char *body, size_t len, struct ing_payout *out,
                     struct ing_problem *p)
{
    static const struct fdef defs[] = {
        {"seller_id", F_STR, 1, ING_ID_MAX, CS_ID},
        {"amount", F_STR, 1, 32, CS_PRINT, 1},
        {"currency", F_STR, 1, 3, CS_UPPER, 1},
        {"channel", F_STR, 1, 16, CS_PRINT, 1},
        {"bank_code", F_STR, 0, 16, CS_UPPER, 1},
        {"ewallet_channel", F_STR, 0, 16, CS_UPPER, 1},
        {"destination_account", F_STR, 1, 34, CS_PHONE, 1},
        {"account_holder", F_STR, 0, 100, CS_TEXT},
        {"description", F_STR, 0, 140, CS_TEXT},
        {"idempotency_key", F_STR, 0, ING_IDEM_KEY_MAX, CS_PRINT, 1},
    };
    json_t *root = load_object(body, len, p);
    const char *ch;

    memset(out, 0, sizeof(*out));
    if (!root)
        return -1;
    if (check_fields(root, "", defs, sizeof(defs) / sizeof(defs[0]), p) != 0)
        goto fail;
    ch = sget(root, "channel");
    if (strcmp(ch, "bank_account") == 0) {
        out->channel = "BANK_ACCOUNT";
        if (need(root, "", "bank_code", "for channel bank_account", p) ||
            forbid(root, "", "ewallet_channel", "for channel bank_account", p))
            goto fail;
    } else if (strcmp(ch, "ewallet") == 0) {
        out->channel = "EWALLET";
        if (need(root, "", "ewallet_channel", "for channel ewallet", p) ||
            forbid(root, "", "bank_code", "for channel ewallet", p))
            goto fail;
        if (!in_list(sget(root, "ewallet_channel"), ewallets)) {
            ing_problem(p, "value_not_allowed", "ewallet_channel",
                        "ewallet_channel must be OVO, DANA, GOPAY, SHOPEEPAY or LINKAJA");
            goto fail;
        }
    } else {
        ing_problem(p, "value_not_allowed", "channel", "channel must be bank_account or ewallet");
        goto fail;
    }
    out->destination = sget(root, "destination_account");
    if (strlen(out->destination) < 5) {
        ing_problem(p, "field_format", "destination_account",
                    "destination_account must have 5 to 34 digits");
        goto fail;
    }
    if (parse_amount(root, "", &out->amount, p) != 0)
        goto fail;
    if (strcmp(out->channel, "EWALLET") == 0 && strcmp(out->amount.currency, "IDR") != 0) {
        ing_problem(p, "currency_method_unsupported", "currency",
                    "currency: e-wallet payouts take IDR only");
        goto fail;
    }
    out->seller_id = sget(root, "seller_id");
    out->bank_code = sget(root, "bank_code");
    out->ewallet = sget(root, "ewallet_channel");
    out->holder = sget(root, "account_holder");
    out->description = sget(root, "description");
    if ((out->holder && ing_has_card_number(out->holder)) ||
        (out->description && ing_has_card_number(out->description))) {
        ing_problem(p, "card_data_forbidden", out->holder && ing_has_card_number(out->holder)
                                                  ? "account_holder" : "description",
                    "the text looks like a card number");
        goto fail;
    }
    if (body_idem_key(root, &out->idempotency_key, p) != 0)
        goto fail;
    out->root = root;
    return 0;
fail:
    json_decref(root);
    memset(out, 0, sizeof(*out));
    return -1;
}

int ing_parse_token_req(const char *body, size_t len, struct ing_token_req *out,
                        struct ing_problem *p)
{
    static const struct fdef defs[] = {
        {"key_id", F_STR, 1, ING_ID_MAX, CS_ID, 1},
        {"timestamp", F_INT, 1, 0, CS_TEXT, 1},
        {"nonce", F_STR, 1, 64, CS_ID, 1},
        {"signature", F_STR, 1, 64, CS_HEX, 1},
        {"scope", F_STR, 0, 256, CS_PRINT, 1},
    };
    json_t *root = load_object(body, len, p);

    memset(out, 0, sizeof(*out));
    if (!root)
        return -1;
    if (check_fields(root, "", defs, sizeof(defs) / sizeof(defs[0]), p) != 0)
        goto fail;
    out->nonce = sget(root, "nonce");
    if (strlen(out->nonce) < 16) {
        ing_problem(p, "field_format", "nonce", "nonce must have 16 to 64 characters");
        goto fail;
    }
    out->signature = sget(root, "signature");
    if (strlen(out->signature) != 64) {
        ing_problem(p, "field_format", "signature", "signature must be 64 hex digits");
        goto fail;
    }
    out->key_id = sget(root, "key_id");
    out->timestamp = json_integer_value(json_object_get(root, "timestamp"));
    out->scope = sget(root, "scope");
    out->root = root;
    return 0;
fail:
    json_decref(root);
    memset(out, 0, sizeof(*out));
    return -1;
}

/* --- settlement files ------------------------------------------------------------------ */

#define CSV_MAX_COLS 64
#define CSV_MAX_FIELD 256
#define CSV_MAX_ROWS 2000000

struct csv {
    char *buf; /* private copy, unquoted in place */
    size_t len, pos;
    long line; /* line where the current record starts */
    long next_line;
};

/* Next record into f[] (NUL-terminated fields inside c->buf). 1: a record, 0: end,
 * -1: malformed (msg says why). Blank lines are skipped. */
static int csv_next(struct csv *c, char **f, int *nf, const char **msg)
{
    size_t r, w;
    int n = 0, quoted, done = 0;

    while (c->pos < c->len && (c->buf[c->pos] == '\n' || c->buf[c->pos] == '\r')) {
        if (c->buf[c->pos] == '\n')
            c->next_line++;
        c->pos++;
    }
    if (c->pos >= c->len)
        return 0;
    c->line = c->next_line;
    r = w = c->pos;
    while (!done) {
        size_t start = w;
        quoted = 0;
        if (r < c->len && c->buf[r] == '"') {
            quoted = 1;
            r++;
            for (;;) {
                if (r >= c->len) {
                    *msg = "unterminated quoted field";
                    return -1;
                }
                if (c->buf[r] == '"') {
                    if (r + 1 < c->len && c->buf[r + 1] == '"') {
                        c->buf[w++] = '"';
                        r += 2;
                        continue;
                    }
                    r++;
                    break;
                }
                if (c->buf[r] == '\n')
                    c->next_line++;
                c->buf[w++] = c->buf[r++];
            }
        }
        while (r < c->len && c->buf[r] != ',' && c->buf[r] != '\n' && c->buf[r] != '\r') {
            if (quoted || c->buf[r] == '"') {
                *msg = "stray quote or text after a quoted field";
                return -1;
            }
            c->buf[w++] = c->buf[r++];
        }
        if (w - start > CSV_MAX_FIELD) {
            *msg = "field longer than 256 bytes";
            return -1;
        }
        if (n >= CSV_MAX_COLS) {
            *msg = "more than 64 columns";
            return -1;
        }
        f[n++] = c->buf + start;
        if (r < c->len && c->buf[r] == ',') {
            r++;
            c->buf[w++] = '\0';
            continue;
        }
        if (r < c->len && c->buf[r] == '\r')
            r++;
        if (r < c->len && c->buf[r] == '\n') {
            r++;
            c->next_line++;
        }
        /* the terminator overwrites at most the separator just consumed */
        c->buf[w] = '\0';
        done = 1;
    }
    c->pos = r;
    *nf = n;
    return 1;
}

struct layout {
    const char *format;
    const char *cols[6]; /* reference, amount, fee, currency, status, settled_at */
};

static const struct layout layouts[] = {
    {"sandbox", {"psp_reference", "amount", "fee", "currency", "status", "settled_at"}},
    {"generic", {"reference", "gross_amount", "fee_amount", "currency", "transaction_status",
                 "settlement_time"}},
};

static const char *norm_status(const char *s)
{
    static const char *const map[][2] = {
        {"settled", "settled"}, {"settlement", "settled"}, {"success", "settled"},
        {"succeeded", "settled"}, {"captured", "settled"}, {"paid", "settled"},
        {"refunded", "refunded"}, {"refund", "refunded"},
        {"paid_out", "paid_out"}, {"payout", "paid_out"}, {"disbursed", "paid_out"},
        {"failed", "failed"}, {"failure", "failed"}, {"denied", "failed"},
    };
    size_t i;

    for (i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strcasecmp(s, map[i][0]) == 0)
            return map[i][1];
    return NULL;
}

int64_t ing_parse_rfc3339(const char *s)
{
    struct tm tm;
    int y, mo, d, h, mi, sec, n = 0;
    int64_t us = 0, t;
    const char *p;

    memset(&tm, 0, sizeof(tm));
    if (sscanf(s, "%4d-%2d-%2d%*1[T ]%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 ||
        n != 19)
        return -1;
    for (int i = 0; i < 19; i++)
        if ((i == 4 || i == 7) ? s[i] != '-' : (i == 13 || i == 16) ? s[i] != ':'
                                : i == 10 ? (s[i] != 'T' && s[i] != ' ')
                                          : (s[i] < '0' || s[i] > '9'))
            return -1;
    if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
        sec > 60)
        return -1;
    p = s + 19;
    if (*p == '.') {
        int digits = 0;
        p++;
        while (*p >= '0' && *p <= '9') {
            if (digits < 6)
                us = us * 10 + (*p - '0');
            digits++;
            p++;
        }
        if (digits == 0 || digits > 9)
            return -1;
        for (; digits < 6; digits++)
            us *= 10;
    }
    if (!(strcmp(p, "Z") == 0 || strcmp(p, "+00:00") == 0 || (*p == '\0' && s[10] == ' ')))
        return -1;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    t = (int64_t)timegm(&tm);
    if (tm.tm_mday != d) /* 31 February and friends */
        return -1;
    return t * 1000000 + us;
}

/* 1 when s is well-formed UTF-8 (no overlongs, no surrogates, at most U+10FFFF) */
static int utf8_ok(const char *s)
{
    const unsigned char *u = (const unsigned char *)s;

    while (*u) {
        unsigned c = *u;
        int n;
        unsigned cp;
        if (c < 0x80) {
            u++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        for (int k = 1; k <= n; k++) {
            if ((u[k] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (u[k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        u += n + 1;
    }
    return 1;
}

static int settle_pass(const char *data, size_t len, const struct layout *lo, ing_settle_cb cb,
                       void *opaque, long *rows, struct ing_problem *p)
{
    struct csv c = {0};
    char *f[CSV_MAX_COLS], *hdr[CSV_MAX_COLS];
    int nf, nh = 0, idx[6], i, rc = -1, r;
    const char *msg = NULL;
    struct ing_settle_row row;

    c.buf = malloc(len + 1);
    if (!c.buf) {
        ing_problem(p, "internal", NULL, "out of memory");
        goto out;
    }
    memcpy(c.buf, data, len);
    c.buf[len] = '\0';
    c.len = len;
    c.next_line = 1;
    if (len >= 3 && memcmp(data, "\xef\xbb\xbf", 3) == 0)
        c.pos = 3; /* a UTF-8 byte order mark from spreadsheet exports */
    r = csv_next(&c, hdr, &nh, &msg);
    if (r <= 0) {
        ing_problem(p, "settlement_invalid", "line 1", "line 1: %s",
                    r == 0 ? "the file is empty" : msg);
        goto out;
    }
    /* every column is kept (in raw): each needs a name of its own, in UTF-8 */
    for (i = 0; i < nh; i++) {
        char fld[48];
        const char *why = !*hdr[i] ? "a column needs a name"
                          : !utf8_ok(hdr[i]) ? "the name is not valid UTF-8" : NULL;
        for (int j = 0; !why && j < i; j++)
            if (strcmp(hdr[i], hdr[j]) == 0)
                why = "two columns have this name";
        if (why) {
            snprintf(fld, sizeof(fld), "line 1, column %d", i + 1);
            ing_problem(p, "settlement_invalid", fld, "line 1, column %d: %s", i + 1, why);
            goto out;
        }
    }
    for (i = 0; i < 6; i++) {
        int j;
        idx[i] = -1;
        for (j = 0; j < nh; j++)
            if (strcmp(hdr[j], lo->cols[i]) == 0)
                idx[i] = j;
        if (idx[i] < 0) {
            ing_problem(p, "settlement_invalid", lo->cols[i],
                        "line 1, column %s: the %s layout needs this column", lo->cols[i],
                        lo->format);
            goto out;
        }
    }
    *rows = 0;
    while ((r = csv_next(&c, f, &nf, &msg)) == 1) {
        const char *col = NULL, *why = NULL;
        struct ks_money m, fee;
        struct ks_err e = {0};
        char fld[96];

        if (++*rows > CSV_MAX_ROWS) {
            ing_problem(p, "settlement_invalid", NULL, "line %ld: more than %d rows", c.line,
                        CSV_MAX_ROWS);
            goto out;
        }
        memset(&row, 0, sizeof(row));
        row.line = c.line;
        if (nf != nh) {
            ing_problem(p, "settlement_invalid", NULL, "line %ld: %d columns, the header has %d",
                        c.line, nf, nh);
            goto out;
        }
        for (i = 0; i < nf; i++)
            if (!utf8_ok(f[i])) {
                snprintf(fld, sizeof(fld), "line %ld, column %.60s", c.line, hdr[i]);
                ing_problem(p, "settlement_invalid", fld, "line %ld, column %.60s: not valid UTF-8",
                            c.line, hdr[i]);
                goto out;
            }
        row.reference = f[idx[0]];
        if (!*row.reference || strlen(row.reference) > 128) {
            col = lo->cols[0];
            why = "reference must have 1 to 128 characters";
        } else if (strlen(f[idx[3]]) != 3 || ks_money_exponent(f[idx[3]]) < 0) {
            col = lo->cols[3];
            why = "unknown currency";
        } else if (ks_money_parse(f[idx[1]], f[idx[3]], lo->cols[1], &m, &e) != KS_OK) {
            col = lo->cols[1];
            why = e.msg;
        } else if (ks_money_parse(f[idx[2]], f[idx[3]], lo->cols[2], &fee, &e) != KS_OK) {
            col = lo->cols[2];
            why = e.msg;
        } else if (!(row.status = norm_status(f[idx[4]]))) {
            col = lo->cols[4];
            why = "status must be settled, refunded, paid_out or failed";
        } else if ((row.settled_at_us = ing_parse_rfc3339(f[idx[5]])) < 0) {
            col = lo->cols[5];
            why = "time must be RFC 3339 UTC, e.g. 2024-05-01T10:00:00Z";
        }
        if (col) {
            snprintf(fld, sizeof(fld), "line %ld, column %s", c.line, col);
            ing_problem(p, "settlement_invalid", fld, "line %ld, column %s: %s", c.line, col, why);
            goto out;
        }
        row.amount_minor = m.minor;
        row.fee_minor = fee.minor;
        memcpy(row.currency, m.currency, 4);
        if (cb) {
            int stop;
            row.raw = json_object();
            for (i = 0; i < nf; i++)
                if (json_object_set_new(row.raw, hdr[i], json_string(f[i])) != 0) {
                    /* validated above: a column that cannot be kept is a bug, not a drop */
                    json_decref(row.raw);
                    ing_problem(p, "internal", NULL, "line %ld: a column could not be kept", c.line);
                    goto out;
                }
            stop = cb(&row, opaque);
            json_decref(row.raw);
            if (stop) {
                ing_problem(p, "unavailable", NULL, "publishing stopped");
                goto out;
            }
        }
    }
    if (r < 0) {
        char fld[32];
        snprintf(fld, sizeof(fld), "line %ld", c.line);
        ing_problem(p, "settlement_invalid", fld, "line %ld: %s", c.line, msg);
        goto out;
    }
    if (*rows == 0) {
        ing_problem(p, "settlement_invalid", "line 2", "the file has no data rows");
        goto out;
    }
    rc = 0;
out:
    free(c.buf);
    return rc;
}

long ing_settle_parse(const char *data, size_t len, const char *format, ing_settle_cb cb,
                      void *opaque, struct ing_problem *p)
{
    const struct layout *lo = NULL;
    size_t i;
    long rows = 0;

    for (i = 0; i < sizeof(layouts) / sizeof(layouts[0]); i++)
        if (strcmp(layouts[i].format, format) == 0)
            lo = &layouts[i];
    if (!lo) {
        ing_problem(p, "settlement_format_unknown", "format", "no settlement layout named %.40s",
                    format);
        return -1;
    }
    if (memchr(data, '\0', len)) {
        ing_problem(p, "settlement_invalid", NULL, "the file contains NUL bytes");
        return -1;
    }
    /* validate everything first: an invalid file publishes nothing */
    if (settle_pass(data, len, lo, NULL, NULL, &rows, p) != 0)
        return -1;
    if (cb && settle_pass(data, len, lo, cb, opaque, &rows, p) != 0)
        return -1;
    return rows;
}
