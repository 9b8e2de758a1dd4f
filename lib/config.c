/* config.c - see config.h.
 *
 * Loading goes in three passes so that every problem is found in one start-up:
 *   1. defaults from the table, 2. the file, 3. the environment;
 * then each setting's final text is checked against its type once. Each value remembers
 * where it came from ("default", "kasir.conf:12", "env KASIR_HTTP_PORT") so that a problem
 * says which line or variable to fix. An empty value in the file unsets the setting (its
 * default too); an empty environment variable is ignored, as shells make it easy to export
 * one by accident. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

#include "banned.h"

#define SOURCE_LEN 160
#define ENV_PREFIX "KASIR_"
#define KAFKA_PREFIX "kafka."

const struct ks_config_def ks_common_settings[] = {
    {"pg.dsn", KS_CFG_STRING, NULL, 1,
     "libpq connection string of the Kasir database (\"host=... dbname=kasir user=...\")"},
    {"kafka.brokers", KS_CFG_STRING, "127.0.0.1:9092", 1,
     "comma-separated host:port list of Kafka bootstrap brokers (librdkafka "
     "bootstrap.servers)"},
    {"log.level", KS_CFG_STRING, "info", 1,
     "least severe level written: debug, info, warn or error"},
    {"http.port", KS_CFG_INT, NULL, 1,
     "TCP port of the daemon's HTTP listener: /healthz, /readyz, /metrics (and the API for "
     "the ingress)"},
    {"instance.id", KS_CFG_STRING, NULL, 0,
     "stable name of this process in its consumer group (group.instance.id, DLQ headers); "
     "empty: the daemon uses its host name and process id"},
};
const size_t ks_common_settings_count =
    sizeof(ks_common_settings) / sizeof(ks_common_settings[0]);

struct setting {
    char *value; /* final text, or NULL when unset */
    char source[SOURCE_LEN];
    int64_t num; /* parsed int, bool (0/1) or milliseconds */
};

struct kv {
    char *name; /* librdkafka property, without "kafka." */
    char *value;
};

struct ks_config {
    const struct ks_config_def *defs;
    size_t n;
    struct setting *s; /* n entries, parallel to defs */
    struct kv *kafka;
    size_t nkafka, capkafka;
};

struct problem {
    char setting[64]; /* "" when the problem is not about one setting */
    char source[SOURCE_LEN];
    char msg[256];
};

struct problems {
    struct problem *p;
    size_t n, cap;
    int oom; /* a problem could not be recorded: memory ran out */
};

static void add_problem(struct problems *pr, const char *setting, const char *source,
                        const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void add_problem(struct problems *pr, const char *setting, const char *source,
                        const char *fmt, ...)
{
    struct problem *np;
    va_list ap;

    if (pr->n == pr->cap) {
        size_t ncap = pr->cap ? pr->cap * 2 : 8;
        np = realloc(pr->p, ncap * sizeof(*np));
        if (!np) {
            pr->oom = 1;
            return;
        }
        pr->p = np;
        pr->cap = ncap;
    }
    np = &pr->p[pr->n++];
    snprintf(np->setting, sizeof(np->setting), "%s", setting ? setting : "");
    snprintf(np->source, sizeof(np->source), "%s", source ? source : "");
    va_start(ap, fmt);
    vsnprintf(np->msg, sizeof(np->msg), fmt, ap);
    va_end(ap);
}

/* "pg.dsn" -> "KASIR_PG_DSN" */
static void env_name(const char *name, char *out, size_t cap)
{
    size_t o = snprintf(out, cap, "%s", ENV_PREFIX);

    for (; *name && o + 1 < cap; name++) {
        char c = *name;
        if (c == '.' || c == '-')
            c = '_';
        else if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        out[o++] = c;
    }
    out[o < cap ? o : cap - 1] = '\0';
}

static long find_def(const struct ks_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n; i++)
        if (strcmp(cfg->defs[i].name, name) == 0)
            return (long)i;
    return -1;
}

/* Replaces setting i's value; -1 when memory runs out. */
static int set_value(struct ks_config *cfg, size_t i, const char *value, const char *source)
{
    char *v = strdup(value);

    if (!v)
        return -1;
    free(cfg->s[i].value);
    cfg->s[i].value = v;
    snprintf(cfg->s[i].source, sizeof(cfg->s[i].source), "%s", source);
    return 0;
}

/* Sets a passthrough property (later calls win); -1 when memory runs out. */
static int set_kafka(struct ks_config *cfg, const char *prop, const char *value)
{
    char *v = strdup(value), *nm = NULL;
    int rc = -1;

    if (!v)
        goto out;
    for (size_t i = 0; i < cfg->nkafka; i++) {
        if (strcmp(cfg->kafka[i].name, prop) == 0) {
            free(cfg->kafka[i].value);
            cfg->kafka[i].value = v;
            v = NULL;
            rc = 0;
            goto out;
        }
    }
    if (cfg->nkafka == cfg->capkafka) {
        size_t ncap = cfg->capkafka ? cfg->capkafka * 2 : 8;
        struct kv *nk = realloc(cfg->kafka, ncap * sizeof(*nk));
        if (!nk)
            goto out;
        cfg->kafka = nk;
        cfg->capkafka = ncap;
    }
    if (!(nm = strdup(prop)))
        goto out;
    cfg->kafka[cfg->nkafka].name = nm;
    cfg->kafka[cfg->nkafka].value = v;
    cfg->nkafka++;
    nm = NULL;
    v = NULL;
    rc = 0;
out:
    free(v);
    free(nm);
    return rc;
}

static char *trim(char *s)
{
    char *e;

    while (*s == ' ' || *s == '\t')
        s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
        e--;
    *e = '\0';
    return s;
}

static void read_file(struct ks_config *cfg, const char *path, struct problems *pr)
{
    FILE *f = fopen(path, "r");
    char *buf = NULL, src[SOURCE_LEN];
    size_t cap = 0;
    long lineno = 0;

    if (!f) {
        add_problem(pr, NULL, path, "could not open config file: %s", strerror(errno));
        goto out;
    }
    while (getline(&buf, &cap, f) >= 0) {
        char *line = trim(buf), *eq, *name, *value;
        long i;

        lineno++;
        if (!*line || *line == '#')
            continue;
        snprintf(src, sizeof(src), "%s:%ld", path, lineno);
        eq = strchr(line, '=');
        if (!eq) {
            add_problem(pr, NULL, src, "expected \"name = value\"");
            continue;
        }
        *eq = '\0';
        name = trim(line);
        value = trim(eq + 1);
        if (!*name) {
            add_problem(pr, NULL, src, "expected \"name = value\"");
            continue;
        }
        i = find_def(cfg, name);
        if (i >= 0) {
            if (set_value(cfg, (size_t)i, value, src) != 0)
                pr->oom = 1;
        } else if (strncmp(name, KAFKA_PREFIX, strlen(KAFKA_PREFIX)) == 0 &&
                   name[strlen(KAFKA_PREFIX)]) {
            if (set_kafka(cfg, name + strlen(KAFKA_PREFIX), value) != 0)
                pr->oom = 1;
        } else {
            add_problem(pr, name, src, "unknown setting");
        }
    }
    if (ferror(f))
        add_problem(pr, NULL, path, "could not read config file: %s", strerror(errno));
out:
    free(buf);
    if (f)
        fclose(f);
}

static void read_env(struct ks_config *cfg, struct problems *pr)
{
    extern char **environ;
    const char *kafka_env = ENV_PREFIX "KAFKA_";
    char name[128], src[SOURCE_LEN];

    for (size_t i = 0; i < cfg->n; i++) {
        const char *v;
        env_name(cfg->defs[i].name, name, sizeof(name));
        v = getenv(name);
        if (!v || !*v)
            continue;
        snprintf(src, sizeof(src), "env %s", name);
        if (set_value(cfg, i, v, src) != 0)
            pr->oom = 1;
    }
    /* KASIR_KAFKA_SOCKET_TIMEOUT_MS=... -> socket.timeout.ms; a variable that belongs to
     * a table setting (KASIR_KAFKA_BROKERS) was taken above */
    for (char **e = environ; e && *e; e++) {
        const char *eq = strchr(*e, '='), *p;
        char prop[128];
        size_t o = 0;
        int in_table = 0;

        if (!eq || strncmp(*e, kafka_env, strlen(kafka_env)) != 0 || !eq[1])
            continue;
        p = *e + strlen(kafka_env);
        if (p == eq || (size_t)(eq - *e) >= sizeof(name))
            continue;
        for (size_t i = 0; i < cfg->n && !in_table; i++) {
            env_name(cfg->defs[i].name, name, sizeof(name));
            in_table = strlen(name) == (size_t)(eq - *e) && strncmp(name, *e, (size_t)(eq - *e)) == 0;
        }
        if (in_table)
            continue;
        for (; p < eq && o + 1 < sizeof(prop); p++) {
            char c = *p;
            if (c == '_')
                c = '.';
            else if (c >= 'A' && c <= 'Z')
                c = (char)(c - 'A' + 'a');
            prop[o++] = c;
        }
        prop[o] = '\0';
        if (set_kafka(cfg, prop, eq + 1) != 0)
            pr->oom = 1;
    }
}

/* Strict integer: optional '-', 1..19 digits, within int64. */
static int parse_int(const char *s, int64_t *out)
{
    int neg = *s == '-';
    uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;

    if (neg)
        s++;
    if (!*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        if (v > (lim - (uint64_t)(*s - '0')) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    /* negate in unsigned arithmetic: -(2^63) has no positive int64 counterpart */
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

static int parse_bool(const char *s, int64_t *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

/* "250ms", "5s", "1m", "2h", "90d" or a plain number of milliseconds; not negative. */
static int parse_duration(const char *s, int64_t *out)
{
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"", 1}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    int64_t v = 0;
    const char *p = s;

    if (*p < '0' || *p > '9')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++)
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, *p - '0', &v))
            return -1;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (strcmp(p, units[i].unit) == 0)
            return __builtin_mul_overflow(v, units[i].ms, out) ? -1 : 0;
    return -1;
}

/* Checks every setting's final value against its type; records each problem. */
static void check_all(struct ks_config *cfg, struct problems *pr)
{
    char env[128];

    for (size_t i = 0; i < cfg->n; i++) {
        const struct ks_config_def *d = &cfg->defs[i];
        struct setting *s = &cfg->s[i];
        int bad = 0;

        /* an empty value unsets: "name =" in the file clears a default */
        if (!s->value || !*s->value) {
            if (d->required) {
                env_name(d->name, env, sizeof(env));
                add_problem(pr, d->name, NULL,
                            "missing required setting (set it in the file or %s)", env);
            }
            continue;
        }
        switch (d->type) {
        case KS_CFG_STRING:
            if (strcmp(d->name, "log.level") == 0 && ks_log_level_parse(s->value) < 0) {
                add_problem(pr, d->name, s->source,
                            "\"%.32s\" is not one of debug, info, warn, error", s->value);
            }
            break;
        case KS_CFG_INT:
            bad = parse_int(s->value, &s->num) != 0;
            if (bad)
                add_problem(pr, d->name, s->source, "\"%.32s\" is not an integer", s->value);
            break;
        case KS_CFG_BOOL:
            bad = parse_bool(s->value, &s->num) != 0;
            if (bad)
                add_problem(pr, d->name, s->source,
                            "\"%.32s\" is not a boolean (true/false, yes/no, on/off, 1/0)",
                            s->value);
            break;
        case KS_CFG_DURATION_MS:
            bad = parse_duration(s->value, &s->num) != 0;
            if (bad)
                add_problem(pr, d->name, s->source,
                            "\"%.32s\" is not a duration (250ms, 5s, 1m, 2h, 90d or milliseconds)",
                            s->value);
            break;
        }
    }
}

/* The shared body of ks_config_load and ks_config_load_main: the config, or NULL with the
 * problems in pr (pr->oom set and pr->n possibly 0 when memory ran out). */
static struct ks_config *load(const struct ks_config_def *defs, size_t n, const char *path,
                              struct problems *pr)
{
    struct ks_config *cfg = calloc(1, sizeof(*cfg));

    if (!cfg || !(cfg->s = calloc(n ? n : 1, sizeof(*cfg->s)))) {
        pr->oom = 1;
        goto out;
    }
    cfg->defs = defs;
    cfg->n = n;
    for (size_t i = 0; i < n; i++)
        if (defs[i].def && set_value(cfg, i, defs[i].def, "default") != 0)
            pr->oom = 1;
    if (path)
        read_file(cfg, path, pr);
    read_env(cfg, pr);
    check_all(cfg, pr);
out:
    if (cfg && (pr->n > 0 || pr->oom)) {
        ks_config_free(cfg);
        cfg = NULL;
    }
    return cfg;
}

/* "setting: msg (source)", "source: msg" or "msg", into buf */
static void problem_text(const struct problem *p, char *buf, size_t cap)
{
    if (*p->setting && *p->source)
        snprintf(buf, cap, "%s: %s (%s)", p->setting, p->msg, p->source);
    else if (*p->setting)
        snprintf(buf, cap, "%s: %s", p->setting, p->msg);
    else if (*p->source)
        snprintf(buf, cap, "%s: %s", p->source, p->msg);
    else
        snprintf(buf, cap, "%s", p->msg);
}

struct ks_config *ks_config_load(const struct ks_config_def *defs, size_t n,
                                 const char *path, char **problems, struct ks_err *err)
{
    struct problems pr = {0};
    struct ks_config *cfg = load(defs, n, path, &pr);
    char line[512];
    char *text = NULL;
    size_t len = 0;

    if (cfg)
        goto out;
    if (pr.oom)
        add_problem(&pr, NULL, NULL, "out of memory while loading the configuration");
    if (problems) {
        text = malloc(pr.n * sizeof(line) + 1);
        if (text) {
            for (size_t i = 0; i < pr.n; i++) {
                problem_text(&pr.p[i], line, sizeof(line));
                len += (size_t)snprintf(text + len, sizeof(line) + 1, "%s\n", line);
            }
            text[len] = '\0';
        }
        *problems = text;
    }
    ks_err_set(err, KS_ECONFIG, 0, pr.n == 1 ? pr.p[0].setting : NULL,
               "%zu configuration problem%s", pr.n ? pr.n : 1, pr.n == 1 ? "" : "s");
out:
    free(pr.p);
    return cfg;
}

struct ks_config *ks_config_load_main(const char *svc, const struct ks_config_def *defs,
                                      size_t n, const char *path)
{
    struct problems pr = {0};
    struct ks_config *cfg = load(defs, n, path, &pr);
    int lvl = KS_LOG_INFO;

    if (cfg && find_def(cfg, "log.level") >= 0)
        lvl = ks_log_level_parse(ks_config_str(cfg, "log.level"));
    ks_log_init(svc, (enum ks_log_level)lvl);
    if (cfg)
        goto out;
    if (pr.oom)
        add_problem(&pr, NULL, NULL, "out of memory while loading the configuration");
    for (size_t i = 0; i < pr.n; i++)
        ks_log(KS_LOG_ERROR, "config.invalid", pr.p[i].msg, "setting",
               *pr.p[i].setting ? pr.p[i].setting : NULL, "source",
               *pr.p[i].source ? pr.p[i].source : NULL, NULL);
out:
    free(pr.p);
    return cfg;
}

void ks_config_free(struct ks_config *cfg)
{
    if (!cfg)
        return;
    if (cfg->s)
        for (size_t i = 0; i < cfg->n; i++)
            free(cfg->s[i].value);
    for (size_t i = 0; i < cfg->nkafka; i++) {
        free(cfg->kafka[i].name);
        free(cfg->kafka[i].value);
    }
    free(cfg->s);
    free(cfg->kafka);
    free(cfg);
}

static const struct setting *lookup(const struct ks_config *cfg, const char *name,
                                    enum ks_config_type type)
{
    long i = cfg && name ? find_def(cfg, name) : -1;

    if (i < 0 || cfg->defs[i].type != type || !cfg->s[i].value)
        return NULL;
    return &cfg->s[i];
}

const char *ks_config_str(const struct ks_config *cfg, const char *name)
{
    long i = cfg && name ? find_def(cfg, name) : -1;

    /* any type: the text as given, for messages and for passing on */
    return i >= 0 && cfg->s[i].value ? cfg->s[i].value : "";
}

int64_t ks_config_int(const struct ks_config *cfg, const char *name)
{
    const struct setting *s = lookup(cfg, name, KS_CFG_INT);
    return s ? s->num : 0;
}

int ks_config_bool(const struct ks_config *cfg, const char *name)
{
    const struct setting *s = lookup(cfg, name, KS_CFG_BOOL);
    return s ? (int)s->num : 0;
}

int64_t ks_config_ms(const struct ks_config *cfg, const char *name)
{
    const struct setting *s = lookup(cfg, name, KS_CFG_DURATION_MS);
    return s ? s->num : 0;
}

void ks_config_kafka_props(const struct ks_config *cfg,
                           void (*fn)(const char *prop, const char *value, void *opaque),
                           void *opaque)
{
    if (!cfg || !fn)
        return;
    for (size_t i = 0; i < cfg->nkafka; i++)
        fn(cfg->kafka[i].name, cfg->kafka[i].value, opaque);
}

/* Writes s for a Markdown table cell: '|' would end the cell, a newline the row. */
static void md_cell(FILE *out, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '|')
            fputs("\\|", out);
        else if (*s == '\n')
            fputc(' ', out);
        else
            fputc(*s, out);
    }
}

void ks_config_markdown(FILE *out, const char *title, const struct ks_config_def *defs,
                        size_t n)
{
    static const char *const type_names[] = {
        [KS_CFG_STRING] = "string", [KS_CFG_INT] = "integer", [KS_CFG_BOOL] = "boolean",
        [KS_CFG_DURATION_MS] = "duration"};
    char env[128];

    fprintf(out, "## %s\n\n", title);
    fputs("| Name | Type | Default | Required | Environment | Description |\n", out);
    fputs("|---|---|---|---|---|---|\n", out);
    for (size_t i = 0; i < n; i++) {
        const struct ks_config_def *d = &defs[i];
        env_name(d->name, env, sizeof(env));
        fprintf(out, "| `%s` | %s | ", d->name,
                (unsigned)d->type < sizeof(type_names) / sizeof(type_names[0])
                    ? type_names[d->type]
                    : "?");
        if (d->def) {
            fputc('`', out);
            md_cell(out, d->def);
            fputc('`', out);
        }
        fprintf(out, " | %s | `%s` | ", d->required ? "yes" : "no", env);
        md_cell(out, d->description);
        fputs(" |\n", out);
    }
    fputc('\n', out);
}
