/* rules.c - the rules file of kasir-risk: parsing, validation, and the checks.
 *
 * The file is one JSON object: {"rules": [ {...}, ... ]} (optionally "description").
 * Each rule has an "id" and a "type" (amount_limit, velocity, blocklist, new_buyer_cap),
 * an optional "action" (REJECT or REVIEW), "reason" (a reason code replacing the type's
 * own), "partner" (the rule applies to that partner only) and "description"; the other
 * members depend on the type (consumers/README.md has the table). Validation collects
 * every problem of every rule before it answers, so one start-up shows them all. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/money.h"
#include "consumers/risk/risk.h"
#include "lib/banned.h"

const char *const risk_action_names[3] = {"APPROVE", "REVIEW", "REJECT"};
const char *const risk_method_names[RM__COUNT] = {"CARD", "VIRTUAL_ACCOUNT", "QRIS", "EWALLET",
                                                  "BANK_TRANSFER"};

int risk_method_parse(const char *s)
{
    for (int i = 0; s && i < RM__COUNT; i++)
        if (strcmp(s, risk_method_names[i]) == 0)
            return i;
    return -1;
}

/* the longest window or age a rule may have: a year (the history read per batch grows
 * with it) */
#define MAX_WINDOW_US (366LL * 86400 * 1000000)

int64_t risk_duration_us(const char *s)
{
    int64_t v = 0, unit;
    size_t i = 0;

    if (!s)
        return -1;
    for (; s[i] >= '0' && s[i] <= '9'; i++) {
        if (v > 1000000000000LL)
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (i == 0 || v == 0)
        return -1;
    if (strcmp(s + i, "ms") == 0)
        unit = 1000;
    else if (strcmp(s + i, "s") == 0)
        unit = 1000000;
    else if (strcmp(s + i, "m") == 0)
        unit = 60 * 1000000LL;
    else if (strcmp(s + i, "h") == 0)
        unit = 3600 * 1000000LL;
    else if (strcmp(s + i, "d") == 0)
        unit = 86400 * 1000000LL;
    else
        return -1;
    if (v > MAX_WINDOW_US / unit)
        return -1;
    return v * unit;
}

/* --- parsing ------------------------------------------------------------------------- */

struct parse {
    risk_report_fn report;
    void *ctx;
    int problems;
    const char *rule;  /* name of the rule being read, for reports */
    char rule_buf[32]; /* "rules[12]" */
    size_t idx;        /* its index */
};

static void problem(struct parse *ps, const char *member, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void problem(struct parse *ps, const char *member, const char *fmt, ...)
{
    char field[96], msg[256];
    va_list ap;

    if (member)
        snprintf(field, sizeof(field), "rules[%zu].%s", ps->idx, member);
    else
        snprintf(field, sizeof(field), "rules[%zu]", ps->idx);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ps->problems++;
    ps->report(ps->ctx, ps->rule, field, msg);
}

static int id_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-' || c == '.' || c == ':';
}

/* a string member, or NULL when absent; a present member that is not a string is reported */
static const char *str_member(struct parse *ps, json_t *o, const char *name)
{
    json_t *v = json_object_get(o, name);
    if (!v)
        return NULL;
    if (!json_is_string(v)) {
        problem(ps, name, "%s must be a string", name);
        return NULL;
    }
    return json_string_value(v);
}

static int need(struct parse *ps, json_t *o, const char *name, const char *why)
{
    if (json_object_get(o, name))
        return 1;
    problem(ps, name, "%s is required %s", name, why);
    return 0;
}

/* a decimal amount string in cur; -1 when absent or bad (reported) */
static int64_t amount_member(struct parse *ps, json_t *o, const char *name, const char *cur)
{
    const char *s;
    struct ks_money m;
    struct ks_err e = {0};

    if (!json_object_get(o, name))
        return -1;
    if (!(s = str_member(ps, o, name)))
        return -1;
    if (!cur || !*cur)
        return -1; /* the currency's own problem was reported */
    if (ks_money_parse(s, cur, name, &m, &e) != KS_OK) {
        problem(ps, name, "%s", e.msg);
        return -1;
    }
    if (m.minor <= 0) {
        problem(ps, name, "%s must be greater than zero", name);
        return -1;
    }
    return m.minor;
}

static int64_t duration_member(struct parse *ps, json_t *o, const char *name)
{
    const char *s = str_member(ps, o, name);
    int64_t us;

    if (!s)
        return -1;
    if ((us = risk_duration_us(s)) < 0)
        problem(ps, name, "%s must be a duration like 90s, 10m, 24h or 7d (at most 366d)", name);
    return us;
}

static void currency_member(struct parse *ps, json_t *o, struct risk_rule *r)
{
    const char *s = str_member(ps, o, "currency");

    if (!s)
        return;
    if (strlen(s) != 3 || ks_money_exponent(s) < 0) {
        problem(ps, "currency", "unknown currency %.8s", s);
        return;
    }
    memcpy(r->currency, s, 4);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int allowed(const char *name, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(name, *list) == 0)
            return 1;
    return 0;
}

static const char *const common_members[] = {"id", "type", "action", "reason", "partner",
                                             "description", NULL};
static const char *const type_names[] = {"amount_limit", "velocity", "blocklist",
                                         "new_buyer_cap", NULL};
static const char *const type_members[4][6] = {
    [RT_AMOUNT_LIMIT] = {"flow", "method", "currency", "min", "max", NULL},
    [RT_VELOCITY] = {"window", "max_count", "max_amount", "currency", NULL},
    [RT_BLOCKLIST] = {"list", "values", NULL},
    [RT_NEW_BUYER_CAP] = {"age", "currency", "max", NULL},
};
/* the action of a rule that does not say: a blocklist or a limit refuses, a pattern
 * (velocity, a new buyer spending a lot) asks a person */
static const enum risk_action default_action[4] = {RISK_REJECT, RISK_REVIEW, RISK_REJECT,
                                                    RISK_REVIEW};

static void parse_amount_limit(struct parse *ps, json_t *o, struct risk_rule *r)
{
    const char *flow = str_member(ps, o, "flow"), *method = str_member(ps, o, "method");

    r->flow = RF_PAYMENT;
    if (flow && strcmp(flow, "payout") == 0)
        r->flow = RF_PAYOUT;
    else if (flow && strcmp(flow, "payment") != 0)
        problem(ps, "flow", "flow must be payment or payout");
    r->method = -1;
    if (method && (r->method = risk_method_parse(method)) < 0)
        problem(ps, "method",
                "method must be CARD, VIRTUAL_ACCOUNT, QRIS, EWALLET or BANK_TRANSFER");
    else if (method && r->flow == RF_PAYOUT && r->method != RM_BANK_TRANSFER &&
             r->method != RM_EWALLET)
        problem(ps, "method", "a payout goes by BANK_TRANSFER or EWALLET");
    if (need(ps, o, "currency", "for an amount_limit"))
        currency_member(ps, o, r);
    r->min = amount_member(ps, o, "min", r->currency);
    r->max = amount_member(ps, o, "max", r->currency);
    if (!json_object_get(o, "min") && !json_object_get(o, "max"))
        problem(ps, "max", "an amount_limit needs min, max or both");
    if (r->min > 0 && r->max > 0 && r->min > r->max)
        problem(ps, "min", "min is greater than max");
}

static void parse_velocity(struct parse *ps, json_t *o, struct risk_rule *r)
{
    json_t *mc = json_object_get(o, "max_count");

    if (need(ps, o, "window", "for a velocity rule"))
        r->window_us = duration_member(ps, o, "window");
    currency_member(ps, o, r);
    r->max_count = -1;
    if (mc) {
        if (!json_is_integer(mc) || json_integer_value(mc) < 1 ||
            json_integer_value(mc) > 1000000000)
            problem(ps, "max_count", "max_count must be an integer from 1 to 1000000000");
        else
            r->max_count = json_integer_value(mc);
    }
    if (json_object_get(o, "max_amount") && !json_object_get(o, "currency"))
        problem(ps, "currency", "currency is required with max_amount");
    r->max_amount = amount_member(ps, o, "max_amount", r->currency);
    if (!mc && !json_object_get(o, "max_amount"))
        problem(ps, "max_count", "a velocity rule needs max_count, max_amount or both");
}

static void parse_blocklist(struct parse *ps, json_t *o, struct risk_rule *r)
{
    static const char *const lists[] = {"buyer", "seller", "card", "account", NULL};
    const char *list = str_member(ps, o, "list");
    json_t *vals = json_object_get(o, "values");
    size_t i, n;
    int ok = 1;

    if (need(ps, o, "list", "for a blocklist") && list) {
        for (i = 0; lists[i] && strcmp(lists[i], list) != 0; i++)
            ;
        if (!lists[i])
            problem(ps, "list", "list must be buyer, seller, card or account");
        r->list = (enum risk_list)i;
    }
    if (!need(ps, o, "values", "for a blocklist"))
        return;
    if (!json_is_array(vals) || (n = json_array_size(vals)) == 0) {
        problem(ps, "values", "values must be a non-empty array of strings");
        return;
    }
    for (i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(vals, i));
        if (!s || !*s || strlen(s) > 256) {
            char m[32];
            snprintf(m, sizeof(m), "values[%zu]", i);
            problem(ps, m, "%s must be a string of 1 to 256 characters", m);
            ok = 0;
        }
    }
    if (!ok)
        return;
    if (!(r->values = malloc(n * sizeof(*r->values)))) {
        problem(ps, "values", "out of memory");
        return;
    }
    for (i = 0; i < n; i++)
        r->values[i] = json_string_value(json_array_get(vals, i));
    qsort(r->values, n, sizeof(*r->values), cmp_str);
    r->nvalues = n;
}

static void parse_new_buyer(struct parse *ps, json_t *o, struct risk_rule *r)
{
    if (need(ps, o, "age", "for a new_buyer_cap"))
        r->window_us = duration_member(ps, o, "age");
    if (need(ps, o, "currency", "for a new_buyer_cap"))
        currency_member(ps, o, r);
    if (need(ps, o, "max", "for a new_buyer_cap"))
        r->max = amount_member(ps, o, "max", r->currency);
}

static void parse_rule(struct parse *ps, json_t *o, struct risk_rule *r)
{
    const char *id, *type, *action, *reason, *key;
    json_t *v;
    int t = -1;

    r->min = r->max = r->max_count = r->max_amount = r->window_us = -1;
    r->method = -1;
    r->velocity_idx = -1;
    snprintf(ps->rule_buf, sizeof(ps->rule_buf), "rules[%zu]", ps->idx);
    ps->rule = ps->rule_buf;
    if (!json_is_object(o)) {
        problem(ps, NULL, "a rule must be a JSON object");
        return;
    }
    id = str_member(ps, o, "id");
    if (!json_object_get(o, "id"))
        problem(ps, "id", "id is required");
    else if (id) {
        size_t n = strlen(id), i;
        for (i = 0; i < n && id_char(id[i]); i++)
            ;
        if (n == 0 || n > 64 || i < n)
            problem(ps, "id", "id must be 1 to 64 letters, digits and _ - . :");
        else
            ps->rule = r->id = id;
    }
    type = str_member(ps, o, "type");
    if (!json_object_get(o, "type"))
        problem(ps, "type", "type is required");
    else if (type) {
        for (t = 0; type_names[t] && strcmp(type_names[t], type) != 0; t++)
            ;
        if (!type_names[t]) {
            problem(ps, "type", "type must be amount_limit, velocity, blocklist or new_buyer_cap");
            t = -1;
        }
    }
    if (t < 0)
        return; /* the other members mean nothing without a type */
    json_object_foreach(o, key, v) {
        if (!allowed(key, common_members) && !allowed(key, type_members[t]))
            problem(ps, key, "unknown member %.40s for type %s", key, type_names[t]);
    }
    r->type = (enum risk_rule_type)t;
    r->action = default_action[t];
    if ((action = str_member(ps, o, "action"))) {
        if (strcmp(action, "REJECT") == 0)
            r->action = RISK_REJECT;
        else if (strcmp(action, "REVIEW") == 0)
            r->action = RISK_REVIEW;
        else
            problem(ps, "action", "action must be REJECT or REVIEW");
    }
    if ((reason = str_member(ps, o, "reason"))) {
        size_t n = strlen(reason), i;
        for (i = 0; i < n && ((reason[i] >= 'A' && reason[i] <= 'Z') ||
                              (reason[i] >= '0' && reason[i] <= '9') || reason[i] == '_');
             i++)
            ;
        if (n == 0 || n > 40 || i < n)
            problem(ps, "reason", "reason must be 1 to 40 of A-Z, 0-9 and _");
        else
            r->reason = reason;
    }
    r->partner = str_member(ps, o, "partner");
    if (r->partner && (!*r->partner || strlen(r->partner) > 64))
        problem(ps, "partner", "partner must be 1 to 64 characters");
    v = json_object_get(o, "description");
    if (v && !json_is_string(v))
        problem(ps, "description", "description must be a string");
    switch (r->type) {
    case RT_AMOUNT_LIMIT: parse_amount_limit(ps, o, r); break;
    case RT_VELOCITY: parse_velocity(ps, o, r); break;
    case RT_BLOCKLIST: parse_blocklist(ps, o, r); break;
    case RT_NEW_BUYER_CAP: parse_new_buyer(ps, o, r); break;
    }
}

struct risk_rules *risk_rules_parse(const char *text, size_t len, risk_report_fn report,
                                    void *ctx, int *nproblems)
{
    struct parse ps = {.report = report, .ctx = ctx};
    struct risk_rules *rs = calloc(1, sizeof(*rs));
    json_error_t je;
    json_t *list, *v;
    const char *key;
    size_t i, j;

    if (!rs) {
        report(ctx, NULL, "(file)", "out of memory");
        *nproblems = 1;
        return NULL;
    }
    rs->doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!rs->doc) {
        char m[256];
        snprintf(m, sizeof(m), "not valid JSON at line %d column %d: %s", je.line, je.column,
                 je.text);
        report(ctx, NULL, "(file)", m);
        ps.problems++;
        goto out;
    }
    if (!json_is_object(rs->doc)) {
        report(ctx, NULL, "(file)", "the rules file must be a JSON object {\"rules\": [...]}");
        ps.problems++;
        goto out;
    }
    json_object_foreach(rs->doc, key, v) {
        if (strcmp(key, "rules") != 0 && strcmp(key, "description") != 0) {
            char m[128];
            snprintf(m, sizeof(m), "unknown member %.40s (the file has rules and description)",
                     key);
            report(ctx, NULL, key, m);
            ps.problems++;
        }
    }
    list = json_object_get(rs->doc, "rules");
    if (!json_is_array(list)) {
        report(ctx, NULL, "rules", "rules must be an array of rules");
        ps.problems++;
        goto out;
    }
    rs->n = json_array_size(list);
    if (rs->n && !(rs->rule = calloc(rs->n, sizeof(*rs->rule)))) {
        report(ctx, NULL, "(file)", "out of memory");
        ps.problems++;
        goto out;
    }
    for (i = 0; i < rs->n; i++) {
        struct risk_rule *r = &rs->rule[i];
        ps.idx = i;
        parse_rule(&ps, json_array_get(list, i), r);
        for (j = 0; r->id && j < i; j++) {
            if (rs->rule[j].id && strcmp(rs->rule[j].id, r->id) == 0) {
                problem(&ps, "id", "id %s is also the id of rules[%zu]", r->id, j);
                break;
            }
        }
        if (r->type == RT_VELOCITY) {
            r->velocity_idx = (int)rs->n_velocity++;
            if (r->window_us > rs->max_window_us)
                rs->max_window_us = r->window_us;
        }
        if (r->type == RT_NEW_BUYER_CAP)
            rs->new_buyer = 1;
    }
out:
    *nproblems = ps.problems;
    if (ps.problems) {
        risk_rules_free(rs);
        return NULL;
    }
    return rs;
}

struct risk_rules *risk_rules_load(const char *path, risk_report_fn report, void *ctx,
                                   int *nproblems)
{
    FILE *f = path && *path ? fopen(path, "rb") : NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    struct risk_rules *rs = NULL;

    if (!f) {
        char m[300];
        if (path && *path)
            snprintf(m, sizeof(m), "could not open the rules file %.200s: %s", path,
                     strerror(errno));
        else
            snprintf(m, sizeof(m), "risk.rules is not set: the worker needs a rules file");
        report(ctx, NULL, "risk.rules", m);
        *nproblems = 1;
        return NULL;
    }
    for (;;) {
        size_t got;
        if (len == cap) {
            char *nb = cap < (64u << 20) ? realloc(buf, cap ? cap * 2 : 65536) : NULL;
            if (!nb) {
                report(ctx, NULL, "risk.rules", "the rules file is too large (64 MB at most)");
                *nproblems = 1;
                goto out;
            }
            buf = nb;
            cap = cap ? cap * 2 : 65536;
        }
        got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        report(ctx, NULL, "risk.rules", "could not read the rules file");
        *nproblems = 1;
        goto out;
    }
    rs = risk_rules_parse(buf, len, report, ctx, nproblems);
out:
    fclose(f);
    free(buf);
    return rs;
}

void risk_rules_free(struct risk_rules *rs)
{
    if (!rs)
        return;
    for (size_t i = 0; i < rs->n; i++)
        free(rs->rule[i].values);
    free(rs->rule);
    json_decref(rs->doc);
    free(rs);
}

/* --- the checks ------------------------------------------------------------------------- */

static void fire(struct risk_verdict *v, const struct risk_rule *r, const char *code)
{
    if (r->action > v->action)
        v->action = r->action;
    for (size_t i = 0; i < v->n; i++)
        if (v->rule[i] == r->id && strcmp(v->code[i], r->reason ? r->reason : code) == 0)
            return; /* a rule fires once per reason, however many orders it matched */
    if (v->n < RISK_MAX_HITS) {
        v->code[v->n] = r->reason ? r->reason : code;
        v->rule[v->n] = r->id;
        v->n++;
    }
}

static int applies(const struct risk_rule *r, const char *partner)
{
    return !r->partner || strcmp(r->partner, partner) == 0;
}

static int listed(const struct risk_rule *r, const char *s)
{
    return s && bsearch(&s, r->values, r->nvalues, sizeof(*r->values), cmp_str) != NULL;
}

static void limit(const struct risk_rule *r, int method, const char *cur, int64_t amount,
                  struct risk_verdict *v)
{
    if ((r->method >= 0 && r->method != method) || strcmp(r->currency, cur) != 0)
        return;
    if (r->min > 0 && amount < r->min)
        fire(v, r, "AMOUNT_BELOW_MIN");
    if (r->max > 0 && amount > r->max)
        fire(v, r, "AMOUNT_ABOVE_MAX");
}

void risk_check_payment(const struct risk_rules *rs, const struct risk_payment *p,
                        struct risk_verdict *v)
{
    for (size_t i = 0; i < rs->n; i++) {
        const struct risk_rule *r = &rs->rule[i];
        if (!applies(r, p->partner))
            continue;
        if (r->type == RT_AMOUNT_LIMIT && r->flow == RF_PAYMENT) {
            for (size_t k = 0; k < p->n_orders; k++)
                limit(r, p->orders[k].method, p->orders[k].currency, p->orders[k].amount, v);
        } else if (r->type == RT_BLOCKLIST) {
            if (r->list == RL_BUYER && listed(r, p->buyer))
                fire(v, r, "BLOCKED_BUYER");
            else if (r->list == RL_CARD && listed(r, p->card_fp))
                fire(v, r, "BLOCKED_CARD");
            for (size_t k = 0; k < p->n_orders; k++) {
                if (r->list == RL_SELLER && listed(r, p->orders[k].seller))
                    fire(v, r, "BLOCKED_SELLER");
                else if (r->list == RL_CARD && listed(r, p->orders[k].token))
                    fire(v, r, "BLOCKED_CARD");
            }
        }
    }
}

/* the payment's total in cur (orders in other currencies left out) */
static int64_t total_in(const struct risk_payment *p, const char *cur)
{
    int64_t t = 0;
    for (size_t k = 0; k < p->n_orders; k++)
        if (strcmp(p->orders[k].currency, cur) == 0)
            t += p->orders[k].amount; /* bounded per order by the ingress: no overflow */
    return t;
}

void risk_window_add(const struct risk_rule *r, int64_t t, int64_t at,
                     const struct risk_amount *a, size_t n, int64_t *count, int64_t *sum)
{
    int hit = !r->currency[0];

    if (at <= t - r->window_us || at > t)
        return;
    for (size_t i = 0; r->currency[0] && i < n; i++) {
        if (strcmp(a[i].currency, r->currency) == 0) {
            hit = 1;
            *sum += a[i].minor;
        }
    }
    *count += hit;
}

void risk_check_history(const struct risk_rules *rs, const struct risk_payment *p,
                        const struct risk_stats *st, struct risk_verdict *v)
{
    for (size_t i = 0; i < rs->n; i++) {
        const struct risk_rule *r = &rs->rule[i];
        if (!applies(r, p->partner))
            continue;
        if (r->type == RT_VELOCITY) {
            int k = r->velocity_idx;
            if (r->max_count > 0 && st->count[k] > r->max_count)
                fire(v, r, "VELOCITY_COUNT");
            if (r->max_amount > 0 && st->sum[k] > r->max_amount)
                fire(v, r, "VELOCITY_AMOUNT");
        } else if (r->type == RT_NEW_BUYER_CAP) {
            /* new: first seen less than age before this payment (this one included) */
            if (p->at_us - st->first_us < r->window_us && total_in(p, r->currency) > r->max)
                fire(v, r, "NEW_BUYER_CAP");
        }
    }
}

int risk_needs_first_seen(const struct risk_rules *rs, const struct risk_payment *p)
{
    for (size_t i = 0; i < rs->n; i++) {
        const struct risk_rule *r = &rs->rule[i];
        if (r->type == RT_NEW_BUYER_CAP && applies(r, p->partner) &&
            total_in(p, r->currency) > r->max)
            return 1;
    }
    return 0;
}

void risk_check_payout(const struct risk_rules *rs, const struct risk_payout *p,
                       struct risk_verdict *v)
{
    for (size_t i = 0; i < rs->n; i++) {
        const struct risk_rule *r = &rs->rule[i];
        if (!applies(r, p->partner))
            continue;
        if (r->type == RT_AMOUNT_LIMIT && r->flow == RF_PAYOUT) {
            limit(r, p->method, p->currency, p->amount, v);
        } else if (r->type == RT_BLOCKLIST) {
            if (r->list == RL_SELLER && listed(r, p->seller))
                fire(v, r, "BLOCKED_SELLER");
            if (r->list == RL_ACCOUNT) {
                /* an entry is the account number alone or "<bank or e-wallet>:<number>" */
                char both[300];
                snprintf(both, sizeof(both), "%s:%s",
                         p->bank_code ? p->bank_code : p->ewallet ? p->ewallet : "", p->account);
                if (listed(r, p->account) || listed(r, both))
                    fire(v, r, "BLOCKED_ACCOUNT");
            }
        }
    }
}
