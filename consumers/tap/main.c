/* kasir-tap - any Kasir topic, decoded, to JSON lines, CSV or an Avro object container
 * file (SPEC 6). For analysts: the ledger topic, recon results, any topic.
 *
 *   kasir-tap [options] TOPIC...     (kasir-tap --help)
 *
 * Reads every partition from the beginning, a time or the end (lib/scan.h), up to the end
 * it had at start, or on with --follow. Nothing is committed unless --group is given: a
 * tap is a reader on the side and must not move anybody's offsets. A message that does
 * not decode, or (CSV, Avro) has another writer schema than the file's, is reported on
 * stderr with its topic:partition:offset and counted; the exit status is then 3. With
 * --group its partition stops there (lib/scan.h ks_scan_hold): the group's offset never
 * passes a message the run did not write, so the next run reports it again, unless
 * --skip-unwritten says to commit past it.
 * Exit codes: 0 done, 1 failed (Kafka, output), 2 bad arguments or settings, 3 done but
 * some messages were not written (listed on stderr), or interrupted before the end. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "lib/config.h"
#include "lib/jsonw.h"
#include "lib/kafka.h"
#include "lib/scan.h"
#include "lib/serde.h"
#include "ocf.h"
#include "lib/banned.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_PARTIAL = 3 };
enum fmt { F_JSON, F_CSV, F_AVRO };

struct field_filter {
    char *path, *value;
};

struct tap {
    enum fmt fmt;
    FILE *out;
    const char *out_path, *key, *group;
    struct field_filter *ff;
    size_t nff;
    int meta, value_only, skip_unwritten;
    long limit;
    const struct ks_schema *schema; /* CSV/Avro: the file's schema, once known */
    const struct ks_schema *seen;   /* CSV/Avro: the first message's writer, written or not */
    char **cols;                    /* CSV: its field names */
    size_t ncols;
    struct tap_ocf ocf;
    int ocf_open;
    int64_t written, skipped;
    struct ks_jw w;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static const char USAGE[] =
    "usage: kasir-tap [options] TOPIC...\n"
    "  Decodes Kasir topics (Avro, compiled-in schemas) to JSON lines, CSV or an Avro file.\n"
    "  A TOPIC starting with ^ is a regular expression over the cluster's topics.\n\n"
    "options:\n"
    "  --from WHEN       beginning (default), end, or a time: RFC 3339, epoch ms, 30m/2h/7d ago\n"
    "  --follow          keep reading new messages (default: stop at the end seen at start)\n"
    "  --format F        json (default): one line per message {topic, partition, offset,\n"
    "                    timestamp, key, schema, value}; csv: a header line from the schema,\n"
    "                    one column per field, nested values as JSON; avro: an object\n"
    "                    container file with the writer schema embedded\n"
    "  --output FILE     write here (default: standard output)\n"
    "  --key K           only messages with this key\n"
    "  --field PATH=V    only messages whose decoded field PATH (a.b.0.c) equals V (a string's\n"
    "                    text, else the value's JSON: 150000, true, null); repeatable, all\n"
    "                    must hold\n"
    "  --schema NAME     csv/avro: the schema of the file (default: the first message's)\n"
    "  --meta            csv: also columns _topic,_partition,_offset,_timestamp,_key\n"
    "  --value-only      json: only the decoded value per line\n"
    "  --limit N         stop after N messages written\n"
    "  --group G         consume as group G: start at its committed offsets and commit what\n"
    "                    was written (without --group nothing is ever committed); a\n"
    "                    partition stops at a message not written, the next run starts there\n"
    "  --skip-unwritten  with --group: commit past messages not written (still reported)\n"
    "  -c FILE           configuration file (the daemons': kafka.brokers, kafka.* passthrough)\n"
    "exit codes: 0 done, 1 failed, 2 bad arguments, 3 some messages not written (see stderr)\n"
    "  or interrupted before the end (without --follow)\n";

static int bad(const char *fmt, const char *a)
{
    fprintf(stderr, "kasir-tap: ");
    fprintf(stderr, fmt, a);
    fprintf(stderr, "\n(kasir-tap --help for usage)\n");
    return EXIT_USAGE;
}

static void report(const rd_kafka_message_t *m, const char *why, const char *detail)
{
    fprintf(stderr, "kasir-tap: %s:%d:%" PRId64 ": not written: %s%s%s\n",
            rd_kafka_topic_name(m->rkt), (int)m->partition, m->offset, why,
            detail ? ": " : "", detail ? detail : "");
}

/* ---- filters -------------------------------------------------------------------------- */

static const json_t *at_path(const json_t *v, const char *path)
{
    char seg[128];

    while (v && *path) {
        size_t n = strcspn(path, ".");
        if (n >= sizeof(seg))
            return NULL;
        memcpy(seg, path, n);
        seg[n] = '\0';
        path += n + (path[n] == '.');
        if (json_is_object(v)) {
            v = json_object_get(v, seg);
        } else if (json_is_array(v)) {
            char *end;
            long i = strtol(seg, &end, 10);
            v = *end || i < 0 ? NULL : json_array_get(v, (size_t)i);
        } else {
            return NULL;
        }
    }
    return v;
}

static int fields_match(const struct tap *t, const json_t *v)
{
    for (size_t i = 0; i < t->nff; i++) {
        const json_t *x = at_path(v, t->ff[i].path);
        int ok;
        if (!x)
            return 0;
        if (json_is_string(x)) { /* an Avro string may hold NULs: the whole of it */
            ok = json_string_length(x) == strlen(t->ff[i].value) &&
                 memcmp(json_string_value(x), t->ff[i].value, json_string_length(x)) == 0;
        } else {
            char *s = json_dumps(x, JSON_COMPACT | JSON_ENCODE_ANY);
            ok = s && strcmp(s, t->ff[i].value) == 0;
            free(s);
        }
        if (!ok)
            return 0;
    }
    return 1;
}

/* ---- writers -------------------------------------------------------------------------- */

static int flush_w(struct tap *t)
{
    int rc = 0;
    if (t->w.full)
        return -1;
    if (t->w.len && fwrite(t->w.p, 1, t->w.len, t->out) != t->w.len)
        rc = -1;
    t->w.len = 0;
    t->w.comma = 0;
    return rc;
}

/* the decoded value straight into the line's writer: json_dumps would build a string of
 * its own (through a callback per piece and snprintf per number) that is then copied */
static void jw_value(struct ks_jw *w, const char *name, const json_t *v)
{
    const char *k;
    const json_t *x;
    size_t i;

    switch (json_typeof(v)) {
    case JSON_OBJECT:
        ks_jw_open(w, name);
        json_object_foreach((json_t *)v, k, x)
            jw_value(w, k, x);
        ks_jw_close(w, '}');
        break;
    case JSON_ARRAY:
        ks_jw_open_array(w, name);
        json_array_foreach(v, i, x)
            jw_value(w, NULL, x);
        ks_jw_close(w, ']');
        break;
    case JSON_STRING: /* whole: an Avro string may hold NULs (\u0000 in JSON) */
        ks_jw_strn(w, name, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        ks_jw_int(w, name, json_integer_value(v));
        break;
    case JSON_TRUE:
        ks_jw_json(w, name, "true");
        break;
    case JSON_FALSE:
        ks_jw_json(w, name, "false");
        break;
    default: /* null; serde never makes reals */
        ks_jw_json(w, name, "null");
        break;
    }
}

static int write_json(struct tap *t, const rd_kafka_message_t *m, const struct ks_schema *s,
                      const json_t *v)
{
    if (t->value_only) {
        jw_value(&t->w, NULL, v);
    } else {
        ks_jw_open(&t->w, NULL);
        ks_jw_str(&t->w, "topic", rd_kafka_topic_name(m->rkt));
        ks_jw_int(&t->w, "partition", m->partition);
        ks_jw_int(&t->w, "offset", m->offset);
        ks_jw_int(&t->w, "timestamp", rd_kafka_message_timestamp(m, NULL));
        /* keys are text in Kasir; ks_jw escapes (NUL too), invalid UTF-8 -> U+FFFD */
        ks_jw_strn(&t->w, "key", m->key, m->key_len);
        ks_jw_str(&t->w, "schema", ks_schema_name(s));
        jw_value(&t->w, "value", v);
        ks_jw_close(&t->w, '}');
    }
    ks_jw_put(&t->w, "\n", 1);
    t->w.comma = 0;
    return t->w.len >= 65536 ? flush_w(t) : 0;
}

static void csv_cell(struct tap *t, const char *s, size_t n, int first)
{
    if (!first)
        ks_jw_put(&t->w, ",", 1);
    if (strcspn(s, ",\"\r\n") >= n) {
        ks_jw_put(&t->w, s, n);
        return;
    }
    ks_jw_put(&t->w, "\"", 1);
    for (size_t i = 0; i < n; i++)
        ks_jw_put(&t->w, s[i] == '"' ? "\"\"" : &s[i], s[i] == '"' ? 2 : 1);
    ks_jw_put(&t->w, "\"", 1);
}

static int csv_header(struct tap *t)
{
    json_t *sj = json_loads(ks_schema_json(t->schema), 0, NULL), *f;
    size_t i;
    int first = 1;

    if (!sj)
        return -1;
    t->ncols = json_array_size(json_object_get(sj, "fields"));
    if (!(t->cols = calloc(t->ncols + 1, sizeof(*t->cols)))) {
        json_decref(sj);
        return -1;
    }
    json_array_foreach(json_object_get(sj, "fields"), i, f)
        t->cols[i] = strdup(json_string_value(json_object_get(f, "name")));
    json_decref(sj);
    if (t->meta) {
        static const char *meta[] = {"_topic", "_partition", "_offset", "_timestamp", "_key"};
        for (int k = 0; k < 5; k++, first = 0)
            csv_cell(t, meta[k], strlen(meta[k]), first);
    }
    for (i = 0; i < t->ncols; i++, first = 0)
        csv_cell(t, t->cols[i] ? t->cols[i] : "", t->cols[i] ? strlen(t->cols[i]) : 0, first);
    ks_jw_put(&t->w, "\r\n", 2);
    return flush_w(t);
}

static int write_csv(struct tap *t, const rd_kafka_message_t *m, const json_t *v)
{
    char num[32];
    int first = 1;

    if (t->meta) {
        const char *tn = rd_kafka_topic_name(m->rkt);
        csv_cell(t, tn, strlen(tn), 1);
        snprintf(num, sizeof(num), "%d", (int)m->partition);
        csv_cell(t, num, strlen(num), 0);
        snprintf(num, sizeof(num), "%" PRId64, m->offset);
        csv_cell(t, num, strlen(num), 0);
        snprintf(num, sizeof(num), "%" PRId64, rd_kafka_message_timestamp(m, NULL));
        csv_cell(t, num, strlen(num), 0);
        csv_cell(t, m->key ? m->key : "", m->key ? m->key_len : 0, 0);
        first = 0;
    }
    for (size_t i = 0; i < t->ncols; i++, first = 0) {
        const json_t *x = t->cols[i] ? json_object_get(v, t->cols[i]) : NULL;
        if (!x || json_is_null(x)) {
            csv_cell(t, "", 0, first);
        } else if (json_is_string(x)) {
            csv_cell(t, json_string_value(x), json_string_length(x), first);
        } else if (json_is_integer(x)) {
            snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(x));
            csv_cell(t, num, strlen(num), first);
        } else if (json_is_boolean(x)) {
            csv_cell(t, json_is_true(x) ? "true" : "false", json_is_true(x) ? 4 : 5, first);
        } else { /* records, arrays, maps: their JSON text in one cell */
            char *s = json_dumps(x, JSON_COMPACT | JSON_ENCODE_ANY);
            if (!s)
                return -1;
            csv_cell(t, s, strlen(s), first);
            free(s);
        }
    }
    ks_jw_put(&t->w, "\r\n", 2);
    return t->w.len >= 65536 ? flush_w(t) : 0;
}

/* CSV and Avro files hold one schema: the first message's, or --schema */
static int schema_ok(struct tap *t, const rd_kafka_message_t *m, const struct ks_schema *s)
{
    struct ks_err err = {0};

    if (!t->schema) {
        t->schema = s;
        if (t->fmt == F_CSV && csv_header(t) != 0)
            return -1;
    }
    if (t->fmt == F_AVRO && !t->ocf_open) {
        if (tap_ocf_open(&t->ocf, t->out, ks_schema_json(t->schema), &err) != KS_OK) {
            fprintf(stderr, "kasir-tap: %s\n", err.msg);
            return -1;
        }
        t->ocf_open = 1;
    }
    if (s != t->schema) {
        char why[300];
        snprintf(why, sizeof(why), "writer schema %s is not the file's %s", ks_schema_name(s),
                 ks_schema_name(t->schema));
        report(m, why, NULL);
        t->skipped++;
        return 2;
    }
    return 0;
}

/* 0 written, 1 filtered out, 2 reported (not written), -1 output failure */
static int handle(struct tap *t, const rd_kafka_message_t *m)
{
    const struct ks_schema *s = NULL;
    struct ks_err err = {0};
    json_t *v = NULL;
    int rc = 1;

    /* CSV/Avro: the schema of the first message read, written or not, for a file that no
     * message gets into (a header line, an empty container) */
    if (t->fmt != F_JSON && !t->seen && ks_serde_peek(m->payload, m->len, &s, &err) == KS_OK)
        t->seen = s;
    if (t->key && (!m->key || m->key_len != strlen(t->key) ||
                   memcmp(m->key, t->key, m->key_len) != 0))
        return 1;
    if (ks_serde_decode(m->payload, m->len, &s, &v, &err) != KS_OK) {
        report(m, "undecodable", err.msg);
        t->skipped++;
        return 2;
    }
    if (t->nff && !fields_match(t, v))
        goto out;
    if (t->fmt != F_JSON && (rc = schema_ok(t, m, s)) != 0)
        goto out;
    if (t->fmt == F_JSON)
        rc = write_json(t, m, s, v);
    else if (t->fmt == F_CSV)
        rc = write_csv(t, m, v);
    else /* the body after the 10-byte single-object header is the record's Avro binary */
        rc = tap_ocf_add(&t->ocf, (const char *)m->payload + 10, m->len - 10, &err) == KS_OK
                 ? 0 : -1;
    if (rc == 0)
        t->written++;
out:
    json_decref(v);
    return rc;
}

static int flush_all(struct tap *t)
{
    struct ks_err err = {0};

    if (flush_w(t) != 0)
        return -1;
    if (t->ocf_open && tap_ocf_flush(&t->ocf, &err) != KS_OK)
        return -1;
    return fflush(t->out) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    struct ks_config_def defs[16];
    size_t ndefs = 0;
    struct tap t = {.limit = -1};
    struct ks_scan_opts so = {.from = KS_SCAN_BEGINNING, .client = "kasir-tap"};
    struct ks_config *cfg = NULL;
    struct ks_scan *s = NULL;
    struct ks_err err = {0};
    struct sigaction sa = {0};
    const char **topics = NULL, *cfgfile = NULL, *schema_name = NULL;
    size_t ntopics = 0;
    rd_kafka_conf_t *conf;
    time_t last_commit = time(NULL);
    int rc = EXIT_OK, ended = 0;
    static char outbuf[1 << 20];

    for (size_t i = 0; i < ks_common_settings_count; i++) {
        if (strcmp(ks_common_settings[i].name, "http.port") == 0)
            continue; /* a tool serves nothing */
        defs[ndefs] = ks_common_settings[i];
        if (strcmp(defs[ndefs].name, "pg.dsn") == 0)
            defs[ndefs].required = 0; /* the daemons' file, but a tap needs no database */
        ndefs++;
    }
    if (!(topics = calloc((size_t)argc, sizeof(*topics))))
        return EXIT_FAIL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = strcmp(a, "--from") == 0 || strcmp(a, "--format") == 0 ||
                    strcmp(a, "--output") == 0 || strcmp(a, "--key") == 0 ||
                    strcmp(a, "--field") == 0 || strcmp(a, "--schema") == 0 ||
                    strcmp(a, "--limit") == 0 || strcmp(a, "--group") == 0 || strcmp(a, "-c") == 0;

        if (a[0] != '-') {
            topics[ntopics++] = a;
            continue;
        }
        if (takes && !v)
            return bad("%s needs a value", a);
        if (takes)
            i++;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(USAGE, stdout);
            return EXIT_OK;
        } else if (strcmp(a, "--follow") == 0) {
            so.follow = 1;
        } else if (strcmp(a, "--meta") == 0) {
            t.meta = 1;
        } else if (strcmp(a, "--value-only") == 0) {
            t.value_only = 1;
        } else if (strcmp(a, "--skip-unwritten") == 0) {
            t.skip_unwritten = 1;
        } else if (strcmp(a, "--from") == 0) {
            if (strcmp(v, "beginning") == 0)
                so.from = KS_SCAN_BEGINNING;
            else if (strcmp(v, "end") == 0)
                so.from = KS_SCAN_END;
            else if (ks_scan_parse_time(v, (int64_t)time(NULL) * 1000, &so.from_ms) == 0)
                so.from = KS_SCAN_TIME;
            else
                return bad("--from %s: want beginning, end, RFC 3339, epoch ms or 30m/2h/7d", v);
        } else if (strcmp(a, "--format") == 0) {
            if (strcmp(v, "json") == 0)
                t.fmt = F_JSON;
            else if (strcmp(v, "csv") == 0)
                t.fmt = F_CSV;
            else if (strcmp(v, "avro") == 0)
                t.fmt = F_AVRO;
            else
                return bad("--format %s: want json, csv or avro", v);
        } else if (strcmp(a, "--output") == 0) {
            t.out_path = v;
        } else if (strcmp(a, "--key") == 0) {
            t.key = v;
        } else if (strcmp(a, "--field") == 0) {
            const char *eq = strchr(v, '=');
            struct field_filter *nf;
            if (!eq || eq == v)
                return bad("--field %s: want path=value", v);
            if (!(nf = realloc(t.ff, (t.nff + 1) * sizeof(*nf))))
                return EXIT_FAIL;
            t.ff = nf;
            nf[t.nff].path = strndup(v, (size_t)(eq - v));
            nf[t.nff].value = strdup(eq + 1);
            t.nff++;
        } else if (strcmp(a, "--schema") == 0) {
            schema_name = v;
        } else if (strcmp(a, "--limit") == 0) {
            char *end;
            errno = 0;
            t.limit = strtol(v, &end, 10);
            if (errno || *end || end == v || t.limit < 0)
                return bad("--limit %s: want a whole number", v);
        } else if (strcmp(a, "--group") == 0) {
            if (!*v)
                return bad("--group needs a name%s", "");
            so.group = t.group = v;
        } else if (strcmp(a, "-c") == 0) {
            cfgfile = v;
        } else {
            return bad("unknown option %s", a);
        }
    }
    if (!ntopics)
        return bad("name at least one topic%s", "");
    if (so.group && so.from == KS_SCAN_TIME)
        return bad("--from <time> cannot be used with --group (the group's offsets are the "
                   "start)%s", "");
    if (t.skip_unwritten && !so.group)
        return bad("--skip-unwritten is for --group (without a group nothing is committed)%s",
                   "");
    if (t.value_only && t.fmt != F_JSON)
        return bad("--value-only is for --format json%s", "");
    if (t.meta && t.fmt != F_CSV)
        return bad("--meta is for --format csv%s", "");
    if (schema_name && t.fmt == F_JSON)
        return bad("--schema is for --format csv or avro%s", "");
    if (!(cfg = ks_config_load_main("tap", defs, ndefs, cfgfile)))
        return EXIT_USAGE;
    if (ks_serde_init(&err) != KS_OK) {
        fprintf(stderr, "kasir-tap: %s\n", err.msg);
        rc = EXIT_FAIL;
        goto out;
    }
    if (schema_name && !(t.schema = ks_schema_by_name(schema_name))) {
        rc = bad("--schema %s: not in the catalogue", schema_name);
        goto out;
    }
    t.out = stdout;
    if (t.out_path && strcmp(t.out_path, "-") != 0 && !(t.out = fopen(t.out_path, "wb"))) {
        fprintf(stderr, "kasir-tap: could not open %s: %s\n", t.out_path, strerror(errno));
        rc = EXIT_FAIL;
        goto out;
    }
    setvbuf(t.out, outbuf, _IOFBF, sizeof(outbuf));
    ks_jw_init(&t.w, NULL, 0);
    if (!(conf = ks_kafka_conf_new(ks_config_str(cfg, "kafka.brokers"), "consumer", cfg, &err)) ||
        !(s = ks_scan_new(conf, topics, ntopics, NULL, 0, &so, &err))) {
        fprintf(stderr, "kasir-tap: %s\n", err.msg);
        /* a missing topic, a bad pattern, a rejected kafka.* property or a --group that
         * belongs to others: the caller's input */
        rc = err.code == KS_ENOTFOUND || err.code == KS_EINVAL || err.code == KS_ECONFIG ||
                     err.code == KS_ECONFLICT
                 ? EXIT_USAGE
                 : EXIT_FAIL;
        goto out;
    }
    if (t.schema && (t.fmt == F_CSV ? csv_header(&t) != 0 : 0)) {
        rc = EXIT_FAIL;
        goto out;
    }
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    while (!stop && (t.limit < 0 || t.written < t.limit)) {
        rd_kafka_message_t *m = NULL;
        int r = ks_scan_next(s, 200, &m, &err);

        if (r == -1) {
            ended = 1;
            break;
        }
        if (r == -2) {
            fprintf(stderr, "kasir-tap: %s\n", err.msg);
            rc = EXIT_FAIL;
            break;
        }
        if (r == 1) {
            int h = handle(&t, m);
            if (h == 2 && t.group && !t.skip_unwritten) {
                ks_scan_hold(s, m);
                fprintf(stderr, "kasir-tap: %s:%d: stopped at offset %" PRId64 ": group %s "
                                "resumes there (fix the cause, or --skip-unwritten)\n",
                        rd_kafka_topic_name(m->rkt), (int)m->partition, m->offset, t.group);
            }
            rd_kafka_message_destroy(m);
            if (h < 0) {
                fprintf(stderr, "kasir-tap: could not write the output\n");
                rc = EXIT_FAIL;
                break;
            }
        }
        /* following: what was read reaches the file within a second, and a group's
         * offsets are committed only after what they cover was written */
        if ((so.follow || t.group) && (r == 0 || time(NULL) - last_commit >= 1)) {
            if (flush_all(&t) != 0) {
                rc = EXIT_FAIL;
                break;
            }
            if (t.group && ks_scan_commit(s, &err) != KS_OK)
                fprintf(stderr, "kasir-tap: %s\n", err.msg);
            last_commit = time(NULL);
        }
    }
    /* nothing written: the file still has its header line or is a valid, empty container,
     * with --schema's schema or the first message's */
    if (t.fmt != F_JSON && !t.schema)
        t.schema = t.seen;
    if (t.fmt == F_CSV && t.schema && !t.cols && csv_header(&t) != 0)
        rc = EXIT_FAIL;
    if (t.fmt == F_AVRO && !t.ocf_open && rc != EXIT_FAIL) {
        if (!t.schema) {
            fprintf(stderr, "kasir-tap: no message was read to take the Avro schema from: "
                            "name it with --schema (no file written)\n");
            rc = EXIT_FAIL;
            if (t.out != stdout) {
                struct stat st;
                /* a regular file only: --output may name /dev/null or a pipe */
                int reg = fstat(fileno(t.out), &st) == 0 && S_ISREG(st.st_mode);
                fclose(t.out);
                t.out = NULL;
                if (reg)
                    remove(t.out_path);
            }
            goto out;
        }
        if (tap_ocf_open(&t.ocf, t.out, ks_schema_json(t.schema), &err) != KS_OK) {
            fprintf(stderr, "kasir-tap: %s\n", err.msg);
            rc = EXIT_FAIL;
        } else {
            t.ocf_open = 1;
        }
    }
    if (flush_all(&t) != 0) {
        fprintf(stderr, "kasir-tap: could not write the output\n");
        rc = EXIT_FAIL;
    } else if (t.group && ks_scan_commit(s, &err) != KS_OK) {
        fprintf(stderr, "kasir-tap: %s\n", err.msg);
        rc = EXIT_FAIL;
    }
    if (rc == EXIT_OK && t.skipped)
        rc = EXIT_PARTIAL;
    /* without --follow a run is an export to the end: stopped before it, it is not done
     * (with --follow a signal is how a run ends) */
    if (rc == EXIT_OK && stop && !so.follow && !ended && (t.limit < 0 || t.written < t.limit)) {
        fprintf(stderr, "kasir-tap: interrupted before the end of the topics: the output is "
                        "incomplete\n");
        rc = EXIT_PARTIAL;
    }
    fprintf(stderr, "kasir-tap: %" PRId64 " written, %" PRId64 " not written\n", t.written,
            t.skipped);
out:
    ks_scan_free(s);
    if (t.out && t.out != stdout)
        fclose(t.out);
    else
        fflush(stdout);
    if (t.ocf_open)
        tap_ocf_release(&t.ocf);
    ks_jw_free(&t.w);
    for (size_t i = 0; i < t.ncols; i++)
        free(t.cols[i]);
    free(t.cols);
    for (size_t i = 0; i < t.nff; i++) {
        free(t.ff[i].path);
        free(t.ff[i].value);
    }
    free(t.ff);
    free(topics);
    ks_config_free(cfg);
    ks_serde_shutdown();
    return rc;
}
