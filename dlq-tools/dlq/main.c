/* kasir-dlq - the operator's tool for dead letters (SPEC 6): list, show, stats, replay,
 * resolve, audit, and the outbox rows the runtime parked (parked, parked retry).
 *
 * This file: the command line (one option table, each option allowed for some commands),
 * the help texts, the configuration (the daemons' table: -c file, KASIR_* environment,
 * kafka.* passthrough), and list/show/stats. dlq.h says where the rest lives. */
#include <errno.h>
#include <inttypes.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dlq.h"
#include "lib/log.h"
#include "lib/serde.h"
#include "lib/banned.h"

volatile sig_atomic_t dlq_stop;

enum cmd { C_LIST, C_SHOW, C_STATS, C_REPLAY, C_RESOLVE, C_AUDIT, C_PARKED, C_PARKED_RETRY,
           C_COUNT };
#define B(c) (1u << (c))
#define SCAN (B(C_LIST) | B(C_SHOW) | B(C_STATS) | B(C_REPLAY) | B(C_RESOLVE))
#define ACT (B(C_REPLAY) | B(C_RESOLVE) | B(C_PARKED_RETRY))
#define ALL_CMDS ((1u << C_COUNT) - 1)

static const char *const cmd_names[C_COUNT] = {"list",    "show",  "stats",  "replay",
                                               "resolve", "audit", "parked", "parked retry"};

/* the option table: name, takes a value, commands it is allowed for, help line */
struct opt {
    const char *name;
    int arg;
    unsigned cmds;
    const char *help;
};
static const struct opt opts[] = {
    {"--dlq", 1, SCAN, "DLQ topics to read, comma-separated (default: every topic named *.dlq)"},
    {"--error", 1, SCAN, "error classes: poison, invalid, failed, exhausted (comma-separated)"},
    {"--topic", 1, SCAN | B(C_PARKED) | B(C_PARKED_RETRY),
     "origin topics (parked: the row's topic), comma-separated"},
    {"--since", 1, SCAN, "dead-lettered at or after: RFC 3339, epoch ms, or 30m/2h/7d ago"},
    {"--until", 1, SCAN, "dead-lettered before (same forms as --since)"},
    {"--key", 1, SCAN, "message key equal to this"},
    {"--header", 1, SCAN, "name=value: a header equal to this (repeatable, all must match)"},
    {"--status", 1, B(C_LIST) | B(C_SHOW) | B(C_STATS),
     "open, replayed, resolved or all (comma-separated; default all)"},
    {"--limit", 1, SCAN | B(C_AUDIT) | B(C_PARKED), "at most this many messages (rows)"},
    {"--output", 1, ALL_CMDS, "table (default) or json: one JSON object per line"},
    {"--raw", 0, B(C_SHOW), "add the value's bytes (base64)"},
    {"--to", 1, B(C_REPLAY), "replay to this topic instead of each message's origin topic"},
    {"--rate", 1, B(C_REPLAY), "at most this many messages per second"},
    {"--dry-run", 0, ACT, "print what would be done; change nothing"},
    {"--again", 0, B(C_REPLAY), "also replay messages already replayed (workers dedup them)"},
    {"--batch", 1, B(C_REPLAY) | B(C_RESOLVE), "progress records per database round trip"},
    {"--quiet", 0, B(C_REPLAY), "no progress on stderr"},
    {"--all", 0, B(C_RESOLVE) | B(C_PARKED) | B(C_PARKED_RETRY),
     "resolve/retry: every selected message (no filter needed); parked: include retried rows"},
    {"--note", 1, ACT, "free text kept in the audit record"},
    {"--by", 1, ACT, "who to record (default: dlq.actor, else user@host)"},
    {"--worker", 1, B(C_PARKED) | B(C_PARKED_RETRY), "parked rows of this worker (name/group)"},
    {"--id", 1, B(C_PARKED) | B(C_PARKED_RETRY) | B(C_AUDIT),
     "parked: row id (repeatable); audit: one action id"},
    {"-c", 1, ALL_CMDS, "configuration file (same as the daemons')"},
    {"--help", 0, ALL_CMDS, "this help"},
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static const char *const cmd_usage[C_COUNT] = {
    "list [REF...] [filters]\n  One line per dead letter: ref, age, error class and code, origin, "
    "key, attempts, status, error message.",
    "show [REF...] [filters] [--raw]\n  Every detail of each selected dead letter: the decoded "
    "payload as JSON,\n  every header, the origin, the error, the attempts.",
    "stats [filters]\n  Counts by error class, origin topic, age and status.",
    "replay [REF...] [filters] [--to T] [--limit N] [--rate R] [--dry-run] [--again]\n"
    "  Copies open dead letters back to their origin topic (or --to) with the original key,\n"
    "  value and message id, and kasir.replay.{id,by,at} headers; records each copy once\n"
    "  Kafka confirmed it, so an interrupted replay is carried on by running it again.",
    "resolve [REF...] [filters] [--all] [--note TEXT] [--dry-run]\n  Marks dead letters handled "
    "(in PostgreSQL; the topic is never changed). Needs refs,\n  a filter or --all.",
    "audit [--id ID] [--limit N]\n  Every replay, resolve and parked retry: who, when, filters, "
    "counts, status.",
    "parked [--worker W] [--topic T] [--id N] [--all]\n  Outbox rows the runtime could not deliver "
    "(kasir_outbox_dead).",
    "parked retry [--worker W] [--topic T] [--id N | --all] [--dry-run]\n  Moves parked rows back "
    "into kasir_outbox (a fresh id; the parked row stays,\n  marked retried); the owning worker's "
    "relay sends them at its next sweep.",
};

static void usage_all(FILE *f)
{
    fprintf(f, "usage: kasir-dlq COMMAND [options]\n\ncommands:\n");
    for (int i = 0; i < C_COUNT; i++)
        fprintf(f, "  %s\n", cmd_names[i]);
    fprintf(f, "\nkasir-dlq COMMAND --help for its options. A REF is <dlq topic>:<partition>:"
               "<offset>.\nExit codes: 0 done, 1 failed (Kafka, PostgreSQL, undelivered copies), "
               "2 bad arguments,\n3 interrupted (rerun to carry on).\n");
}

static void usage_cmd(FILE *f, int cmd)
{
    fprintf(f, "usage: kasir-dlq %s\n\noptions:\n", cmd_usage[cmd]);
    for (size_t i = 0; i < NOPTS; i++)
        if (opts[i].cmds & B(cmd))
            fprintf(f, "  %-10s %-6s %s\n", opts[i].name, opts[i].arg ? "VALUE" : "",
                    opts[i].help);
}

static int bad(int cmd, const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "kasir-dlq: ");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\n(kasir-dlq %s --help for usage)\n", cmd >= 0 ? cmd_names[cmd] : "");
    return DLQ_EXIT_USAGE;
}

/* appends the comma-separated names of csv; -2 when one is empty ("", "a,", ",,"): a
 * filter given empty would select everything, which its author did not mean */
static int push(char ***list, size_t *n, const char *csv)
{
    const char *p = csv;

    for (;;) {
        size_t len = strcspn(p, ",");
        char **nl;

        if (len == 0)
            return -2;
        if (!(nl = realloc(*list, (*n + 1) * sizeof(**list))))
            return -1;
        *list = nl;
        if (!(nl[*n] = strndup(p, len)))
            return -1;
        (*n)++;
        if (!p[len])
            return 0;
        p += len + 1;
    }
}

static int parse_long(const char *s, long lo, long hi, long *v)
{
    char *end;
    errno = 0;
    *v = strtol(s, &end, 10);
    return errno || end == s || *end || *v < lo || *v > hi ? -1 : 0;
}

int dlq_ref_parse(const char *s, struct dlq_ref *r)
{
    const char *c2 = strrchr(s, ':'), *c1;
    char *end;
    long p;
    long long o;

    if (!c2 || c2 == s)
        return -1;
    for (c1 = c2 - 1; c1 > s && *c1 != ':'; c1--)
        ;
    if (c1 == s)
        return -1;
    errno = 0;
    p = strtol(c1 + 1, &end, 10);
    if (errno || end != c2 || p < 0 || p > 1000000)
        return -1;
    o = strtoll(c2 + 1, &end, 10);
    if (errno || *end || end == c2 + 1 || o < 0)
        return -1;
    if (!(r->topic = strndup(s, (size_t)(c1 - s))))
        return -1;
    r->partition = (int32_t)p;
    r->offset = o;
    return 0;
}

static int parse_status(const char *s, int *bits)
{
    char *copy = strdup(s), *save = NULL, *tok;
    int rc = 0;

    *bits = 0;
    for (tok = copy ? strtok_r(copy, ",", &save) : NULL; tok; tok = strtok_r(NULL, ",", &save)) {
        if (strcmp(tok, "open") == 0)
            *bits |= DLQ_OPEN;
        else if (strcmp(tok, "replayed") == 0)
            *bits |= DLQ_REPLAYED;
        else if (strcmp(tok, "resolved") == 0)
            *bits |= DLQ_RESOLVED;
        else if (strcmp(tok, "all") == 0)
            *bits |= DLQ_ANY;
        else
            rc = -1;
    }
    free(copy);
    return copy && *bits ? rc : -1;
}

static const char *const classes[] = {"poison", "invalid", "failed", "exhausted", "retry"};

/* parses argv into c->o and *cmd; DLQ_EXIT_OK, or the exit code to leave with (help: -1) */
static int parse_args(int argc, char **argv, struct dlq_ctx *c, int *cmd, const char **cfgfile)
{
    struct dlq_opts *o = &c->o;
    int64_t now = dlq_now_ms();

    *cmd = -1;
    o->since = o->until = -1;
    o->limit = -1;
    o->batch = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        const struct opt *op = NULL;

        if (a[0] != '-') {
            if (*cmd < 0) {
                for (int k = 0; k < C_PARKED_RETRY; k++)
                    if (strcmp(a, cmd_names[k]) == 0)
                        *cmd = k;
                if (*cmd < 0)
                    return bad(-1, "unknown command %s%s", a, "");
                if (*cmd == C_PARKED && i + 1 < argc && strcmp(argv[i + 1], "retry") == 0) {
                    *cmd = C_PARKED_RETRY;
                    i++;
                }
                continue;
            }
            if (!(SCAN & B(*cmd)))
                return bad(*cmd, "unexpected argument %s%s", a, "");
            {
                struct dlq_ref r, *nr;
                if (dlq_ref_parse(a, &r) != 0)
                    return bad(*cmd, "bad message ref %s: want <dlq topic>:<partition>:<offset>%s",
                               a, "");
                if (!(nr = realloc(o->refs, (o->nrefs + 1) * sizeof(*nr))))
                    return DLQ_EXIT_FAIL;
                o->refs = nr;
                o->refs[o->nrefs++] = r;
            }
            continue;
        }
        for (size_t k = 0; k < NOPTS && !op; k++)
            if (strcmp(a, opts[k].name) == 0 || (strcmp(a, "-h") == 0 && k == NOPTS - 1))
                op = &opts[k];
        if (!op)
            return bad(*cmd, "unknown option %s%s", a, "");
        if (strcmp(op->name, "--help") == 0) {
            if (*cmd < 0)
                usage_all(stdout);
            else
                usage_cmd(stdout, *cmd);
            return -1;
        }
        if (op->arg) {
            if (i + 1 >= argc)
                return bad(*cmd, "%s needs a value%s", a, "");
            v = argv[++i];
        }
        if (strcmp(a, "-c") == 0) {
            *cfgfile = v;
            continue;
        }
        if (*cmd < 0)
            return bad(-1, "%s before the command: write kasir-dlq COMMAND %s ...", a, a);
        if (!(op->cmds & B(*cmd)))
            return bad(*cmd, "%s does not apply to %s", a, cmd_names[*cmd]);
        if (strcmp(a, "--dlq") == 0 || strcmp(a, "--error") == 0 || strcmp(a, "--topic") == 0) {
            char ***l = a[2] == 'd' ? &o->dlqs : a[2] == 'e' ? &o->errors : &o->origins;
            size_t *n = a[2] == 'd' ? &o->ndlqs : a[2] == 'e' ? &o->nerrors : &o->norigins;
            int pr = push(l, n, v);
            if (pr == -2)
                return bad(*cmd, "%s \"%s\": an empty name (it would select everything)", a,
                           v);
            if (pr != 0)
                return DLQ_EXIT_FAIL;
        } else if (strcmp(a, "--since") == 0 || strcmp(a, "--until") == 0) {
            if (ks_scan_parse_time(v, now, a[2] == 's' ? &o->since : &o->until) != 0)
                return bad(*cmd, "%s: bad time %s (RFC 3339, epoch ms, or 30m/2h/7d)", a, v);
        } else if (strcmp(a, "--key") == 0) {
            o->key = v;
        } else if (strcmp(a, "--header") == 0) {
            const char *eq = strchr(v, '=');
            struct dlq_hdr *nh;
            if (!eq || eq == v)
                return bad(*cmd, "--header %s: want name=value%s", v, "");
            if (!(nh = realloc(o->hdrs, (o->nhdrs + 1) * sizeof(*nh))))
                return DLQ_EXIT_FAIL;
            o->hdrs = nh;
            nh[o->nhdrs].name = strndup(v, (size_t)(eq - v));
            nh[o->nhdrs].value = strdup(eq + 1);
            o->nhdrs++;
        } else if (strcmp(a, "--status") == 0) {
            if (parse_status(v, &o->status) != 0)
                return bad(*cmd, "--status %s: want open, replayed, resolved or all%s", v, "");
        } else if (strcmp(a, "--limit") == 0 || strcmp(a, "--batch") == 0) {
            long n;
            if (parse_long(v, a[2] == 'l' ? 0 : 1, a[2] == 'l' ? 1000000000L : 100000, &n) != 0)
                return bad(*cmd, a[2] == 'l' ? "%s %s: want a whole number, 0..1000000000"
                                             : "%s %s: want a whole number, 1..100000",
                           a, v);
            if (a[2] == 'l')
                o->limit = n;
            else
                o->batch = n;
        } else if (strcmp(a, "--output") == 0) {
            if (strcmp(v, "json") != 0 && strcmp(v, "table") != 0)
                return bad(*cmd, "--output %s: want table or json%s", v, "");
            o->json = strcmp(v, "json") == 0;
        } else if (strcmp(a, "--rate") == 0) {
            long n;
            if (parse_long(v, 1, 10000000, &n) != 0)
                return bad(*cmd, "--rate %s: want messages per second, 1..10000000%s", v, "");
            o->rate = (double)n;
        } else if (strcmp(a, "--id") == 0) {
            if (*cmd == C_AUDIT) {
                o->audit_id = v;
            } else {
                long n;
                int64_t *ni;
                if (parse_long(v, 0, 0x7fffffffffffffffL, &n) != 0)
                    return bad(*cmd, "--id %s: want a parked row id%s", v, "");
                if (!(ni = realloc(o->ids, (o->nids + 1) * sizeof(*ni))))
                    return DLQ_EXIT_FAIL;
                o->ids = ni;
                o->ids[o->nids++] = n;
            }
        } else if (strcmp(a, "--to") == 0) {
            o->to = v;
        } else if (strcmp(a, "--note") == 0) {
            o->note = v;
        } else if (strcmp(a, "--by") == 0) {
            o->by = v;
        } else if (strcmp(a, "--worker") == 0) {
            o->worker = v;
        } else if (strcmp(a, "--raw") == 0) {
            o->raw = 1;
        } else if (strcmp(a, "--dry-run") == 0) {
            o->dry_run = 1;
        } else if (strcmp(a, "--again") == 0) {
            o->again = 1;
        } else if (strcmp(a, "--quiet") == 0) {
            o->quiet = 1;
        } else if (strcmp(a, "--all") == 0) {
            o->all = 1;
        }
    }
    if (*cmd < 0) {
        usage_all(stderr);
        return DLQ_EXIT_USAGE;
    }
    for (size_t i = 0; i < o->nerrors; i++) {
        int ok = 0;
        for (size_t k = 0; k < sizeof(classes) / sizeof(classes[0]); k++)
            ok |= strcmp(o->errors[i], classes[k]) == 0;
        if (!ok)
            return bad(*cmd, "--error %s: want poison, invalid, failed, exhausted or retry%s",
                       o->errors[i], "");
    }
    /* kept as text in the audit record: PostgreSQL would refuse them later, mid-command */
    if (o->note && !dlq_utf8(o->note))
        return bad(*cmd, "--note: not UTF-8 text (it goes into the audit record)%s%s", "", "");
    if (o->by && !dlq_utf8(o->by))
        return bad(*cmd, "--by: not UTF-8 text (it goes into the audit record)%s%s", "", "");
    if (o->by && !dlq_printable(o->by)) /* audit shows it on other operators' terminals */
        return bad(*cmd, "--by: control characters (it is shown by kasir-dlq audit)%s%s", "", "");
    if (o->by && strlen(o->by) >= sizeof(c->actor)) /* cut, the audit would name another */
        return bad(*cmd, "--by: at most 255 bytes (it goes into the audit record)%s%s", "", "");
    if (o->since >= 0 && o->until >= 0 && o->until <= o->since)
        return bad(*cmd, "--until must be later than --since%s%s", "", "");
    /* the runtime dead-letters a message of T to T.dlq, always: a main or retry topic read as
     * a DLQ would be replayed into its origin again (a retry copy names its main topic) */
    for (size_t i = 0; i < o->ndlqs + o->nrefs; i++) {
        const char *t = i < o->ndlqs ? o->dlqs[i] : o->refs[i - o->ndlqs].topic;
        size_t olen;
        if (!dlq_topic_origin(t, strlen(t), &olen) || olen == 0)
            return bad(*cmd, "%s: not a dead-letter topic (they are named <topic>.dlq)%s", t, "");
    }
    if (o->to && !o->to[0])
        return bad(*cmd, "--to needs a topic name%s%s", "", "");
    if (o->to && !dlq_target_ok(o->to, strlen(o->to)))
        return bad(*cmd, "--to %s: not a topic a replay may write (a legal Kafka topic name, "
                   "not a dead-letter topic *.dlq, not an internal topic __*)%s", o->to, "");
    if ((*cmd == C_RESOLVE || *cmd == C_PARKED_RETRY) && !o->all && !o->nrefs && !o->nerrors &&
        !o->norigins && !o->ndlqs && o->since < 0 && o->until < 0 && !o->key && !o->nhdrs &&
        !o->worker && !o->nids)
        return bad(*cmd, "%s needs refs, a filter or --all (it would select every message)%s",
                   cmd_names[*cmd], "");
    if (*cmd == C_PARKED_RETRY && o->all && (o->worker || o->nids || o->norigins))
        return bad(*cmd, "--all selects every parked row: drop it or the filters%s%s", "", "");
    return DLQ_EXIT_OK;
}

/* ---- list, show, stats ---------------------------------------------------------------- */

/* k comes from a header: bytes that are not UTF-8 are counted under their U+FFFD text
 * (an object's names must be UTF-8), never left out */
static void count(json_t *obj, const char *k)
{
    json_t *t = k && *k ? dlq_text(k, strlen(k), NULL) : NULL, *v;
    const char *name = t ? json_string_value(t) : "(none)";

    if ((v = json_object_get(obj, name)))
        json_integer_set(v, json_integer_value(v) + 1);
    else if (json_object_set_new(obj, name, json_integer(1)) != 0)
        dlq_output_failed = 1;
    json_decref(t);
}

static void print_counts(const char *title, json_t *obj)
{
    const char *k;
    json_t *v;

    printf("\n%-48s %10s\n", title, "COUNT");
    json_object_foreach(obj, k, v) {
        int n = (int)strlen(k);
        dlq_tty_put(k, strlen(k)); /* names come from headers */
        printf("%*s %10" JSON_INTEGER_FORMAT "\n", n < 48 ? 48 - n : 0, "",
               json_integer_value(v));
    }
}

static int cmd_scan(struct dlq_ctx *c, int cmd)
{
    struct ks_err err = {0};
    struct ks_scan *s = dlq_scan_open(c, &err);
    struct dlq_msg d;
    json_t *st = NULL;
    int64_t now = dlq_now_ms(), n = 0;
    int r, rc = DLQ_EXIT_OK;

    if (!s) {
        fprintf(stderr, "kasir-dlq: %s\n", err.msg);
        return err.code == KS_ENOTFOUND || err.code == KS_ECONFIG ? DLQ_EXIT_USAGE
                                                               : DLQ_EXIT_FAIL;
    }
    if (cmd == C_STATS)
        st = json_pack("{s:I, s:{}, s:{}, s:{s:I, s:I, s:I, s:I}, s:{}, s:{}}", "total",
                       (json_int_t)0, "by_class", "by_origin", "by_age", "<1h", (json_int_t)0,
                       "1h-24h", (json_int_t)0, "1d-7d", (json_int_t)0, ">7d", (json_int_t)0,
                       "by_status", "by_dlq");
    else if (cmd == C_LIST && !c->o.json)
        dlq_print_row_header();
    while (!dlq_stop && (c->o.limit < 0 || n < c->o.limit)) {
        if ((r = dlq_next(c, s, 200, &d, &err)) == -1)
            break;
        if (r == -2) {
            fprintf(stderr, "kasir-dlq: %s\n", err.msg);
            rc = DLQ_EXIT_FAIL;
            break;
        }
        if (r == 0)
            continue;
        n++;
        if (cmd == C_LIST) {
            if (c->o.json)
                dlq_json_line(dlq_msg_json(&d, 0, 0));
            else
                dlq_print_row(&d, now);
        } else if (cmd == C_SHOW) {
            if (c->o.json)
                dlq_json_line(dlq_msg_json(&d, 1, c->o.raw));
            else
                dlq_print_full(&d, c->o.raw);
        } else if (st) {
            int64_t age = now - d.ts;
            count(json_object_get(st, "by_class"), d.cls);
            count(json_object_get(st, "by_origin"), d.origin);
            count(json_object_get(st, "by_age"), age < 3600000 ? "<1h"
                                                 : age < 86400000 ? "1h-24h"
                                                 : age < 7 * 86400000LL ? "1d-7d" : ">7d");
            count(json_object_get(st, "by_status"), dlq_state_name(d.state));
            count(json_object_get(st, "by_dlq"), d.dlq);
        }
        rd_kafka_message_destroy(d.rkm);
    }
    if (st) {
        json_object_set_new(st, "total", json_integer(n));
        if (c->o.json) {
            dlq_json_line(st);
            st = NULL;
        } else {
            printf("dead letters: %" PRId64 "\n", n);
            print_counts("ERROR CLASS", json_object_get(st, "by_class"));
            print_counts("ORIGIN TOPIC", json_object_get(st, "by_origin"));
            print_counts("AGE (since dead-lettered)", json_object_get(st, "by_age"));
            print_counts("STATUS", json_object_get(st, "by_status"));
            print_counts("DLQ TOPIC", json_object_get(st, "by_dlq"));
        }
    }
    if (dlq_stop && rc == DLQ_EXIT_OK)
        rc = DLQ_EXIT_INTERRUPTED;
    json_decref(st);
    ks_scan_free(s);
    return rc;
}

/* ---- main ------------------------------------------------------------------------------ */

static void opts_release(struct dlq_opts *o)
{
    for (size_t i = 0; i < o->ndlqs; i++)
        free(o->dlqs[i]);
    for (size_t i = 0; i < o->nerrors; i++)
        free(o->errors[i]);
    for (size_t i = 0; i < o->norigins; i++)
        free(o->origins[i]);
    for (size_t i = 0; i < o->nhdrs; i++) {
        free(o->hdrs[i].name);
        free(o->hdrs[i].value);
    }
    for (size_t i = 0; i < o->nrefs; i++)
        free(o->refs[i].topic);
    free(o->dlqs);
    free(o->errors);
    free(o->origins);
    free(o->hdrs);
    free(o->refs);
    free(o->ids);
}

/* The first signal stops at the next step, with everything confirmed recorded. A second
 * stops at once: a wait that ignores signals (a PostgreSQL that does not answer) must not
 * hold the operator, and a replay ended so is as safe as one killed (the next replay
 * records its confirmed copies). */
static void on_signal(int sig)
{
    static const char msg[] = "kasir-dlq: stopped at once (second signal)\n";

    (void)sig;
    if (dlq_stop) {
        ssize_t w = write(2, msg, sizeof(msg) - 1);
        (void)w;
        _exit(DLQ_EXIT_INTERRUPTED);
    }
    dlq_stop = 1;
}

/* -1 when dlq.actor cannot be recorded as given (reported) */
static int set_actor(struct dlq_ctx *c)
{
    const char *a = c->o.by ? c->o.by : ks_config_str(c->cfg, "dlq.actor");
    struct passwd *pw;
    char host[128] = "";

    if (a && *a) {
        if (strlen(a) >= sizeof(c->actor) || !dlq_printable(a)) {
            fprintf(stderr, "kasir-dlq: dlq.actor: at most 255 bytes of UTF-8 text without "
                            "control characters (it goes into the audit record)\n");
            return -1;
        }
        snprintf(c->actor, sizeof(c->actor), "%s", a);
        return 0;
    }
    pw = getpwuid(getuid());
    gethostname(host, sizeof(host) - 1);
    snprintf(c->actor, sizeof(c->actor), "%s@%s", pw ? pw->pw_name : "uid", host);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct ks_config_def own[] = {
        {"dlq.actor", KS_CFG_STRING, NULL, 0,
         "who kasir-dlq records as doing a replay, resolve or parked retry (default "
         "user@host; --by overrides)"},
        {"dlq.batch", KS_CFG_INT, "2000", 1,
         "replay and resolve marks written per database round trip (--batch overrides)"},
    };
    struct ks_config_def defs[16];
    size_t ndefs = 0;
    struct dlq_ctx c = {0};
    struct ks_err err = {0};
    const char *cfgfile = NULL;
    struct sigaction sa = {0};
    int cmd, rc;

    if (argc == 2 && strcmp(argv[1], "config-doc") == 0) {
        /* for docs/CONFIG.md, as kasir-ingress config-doc */
        ks_config_markdown(stdout, "kasir-dlq (besides the common settings; no http.port)", own,
                           sizeof(own) / sizeof(own[0]));
        return DLQ_EXIT_OK;
    }
    for (size_t i = 0; i < ks_common_settings_count; i++)
        if (strcmp(ks_common_settings[i].name, "http.port") != 0) /* a tool serves nothing */
            defs[ndefs++] = ks_common_settings[i];
    for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++)
        defs[ndefs++] = own[i];
    if ((rc = parse_args(argc, argv, &c, &cmd, &cfgfile)) != DLQ_EXIT_OK) {
        opts_release(&c.o);
        return rc < 0 ? DLQ_EXIT_OK : rc;
    }
    if (!(c.cfg = ks_config_load_main("dlq", defs, ndefs, cfgfile))) {
        opts_release(&c.o);
        return DLQ_EXIT_USAGE;
    }
    c.brokers = ks_config_str(c.cfg, "kafka.brokers");
    if (c.o.batch < 0)
        c.o.batch = ks_config_int(c.cfg, "dlq.batch") > 0 ? ks_config_int(c.cfg, "dlq.batch")
                                                         : 2000;
    if (set_actor(&c) != 0) {
        rc = DLQ_EXIT_USAGE;
        goto out;
    }
    if (ks_serde_init(&err) != KS_OK) {
        fprintf(stderr, "kasir-dlq: %s\n", err.msg);
        rc = DLQ_EXIT_FAIL;
        goto out;
    }
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* replay, resolve, audit and parked need PostgreSQL; list, show and stats only for the
     * status column, so without it they still show the topic ("?" status) */
    if (!(c.db = ks_db_connect(ks_config_str(c.cfg, "pg.dsn"), &err))) {
        if (!(B(cmd) & (B(C_LIST) | B(C_SHOW) | B(C_STATS)))) {
            fprintf(stderr, "kasir-dlq: %s\n", err.msg);
            rc = DLQ_EXIT_FAIL;
            goto out;
        }
        fprintf(stderr, "kasir-dlq: warning: %s (status shown as ?)\n", err.msg);
    }
    switch (cmd) {
    case C_LIST:
    case C_SHOW:
    case C_STATS:
        rc = cmd_scan(&c, cmd);
        break;
    case C_REPLAY:
        rc = dlq_cmd_replay(&c);
        break;
    case C_RESOLVE:
        rc = dlq_cmd_resolve(&c);
        break;
    case C_AUDIT:
        rc = dlq_cmd_audit(&c);
        break;
    case C_PARKED:
        rc = dlq_cmd_parked(&c);
        break;
    default:
        rc = dlq_cmd_parked_retry(&c);
        break;
    }
out:
    /* stdout is the answer (a list, a count, a summary): a full disk or a file that cannot
     * be written must not pass for a complete one */
    if ((fflush(stdout) != 0 || ferror(stdout)) && !dlq_output_failed++)
        fprintf(stderr, "kasir-dlq: could not write the output\n");
    if (dlq_output_failed && (rc == DLQ_EXIT_OK || rc == DLQ_EXIT_INTERRUPTED))
        rc = DLQ_EXIT_FAIL;
    dlq_marks_free(c.marks);
    ks_db_free(c.db);
    ks_config_free(c.cfg);
    ks_serde_shutdown();
    opts_release(&c.o);
    return rc;
}
