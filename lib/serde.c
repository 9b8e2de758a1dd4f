/* serde.c - see serde.h.
 *
 * Reading order: CRC-64-AVRO; the schema model (JSON schema text -> a tree of nodes,
 * shared by the canonical form and the codec); Parsing Canonical Form; the encoder
 * (jansson -> Avro binary); the decoder (Avro binary -> jansson); the catalogue.
 *
 * Why a codec of our own rather than avro-c's generic values: the messages cross the API
 * as jansson objects, so avro-c would add a second tree per call (json -> avro_value ->
 * bytes) and a set of per-thread values; and its reader trusts lengths and counts in the
 * body (a garbage length becomes a giant allocation). The model here is immutable after
 * ks_serde_init, so any number of threads encode and decode with no lock and no
 * per-thread state, and every length, count, index and varint from the wire is checked
 * against the bytes left before use. avro-c still validates every catalogue schema at
 * init (tools write object container files with it), and the unit test checks our bytes
 * against avro-c's reader and writer. */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <avro.h>

#include "crypto.h"
#include "buf.h"
#include "serde.h"
#include "serde_catalog.h"

#include "banned.h"

#define MAX_DEPTH 64            /* nesting of types and values; our schemas use 3 */
#define MAX_ZERO_SIZE_ITEMS 65536 /* array/map items that take no bytes (null, empty record) */

/* ---- CRC-64-AVRO ------------------------------------------------------------------------ */

/* The Avro spec's Rabin fingerprint. The polynomial and the fingerprint of the empty
 * string are the same constant. */
#define CRC64_EMPTY 0xc15d213aa4d7a795ULL

static uint64_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_table_init(void)
{
    for (int i = 0; i < 256; i++) {
        uint64_t fp = (uint64_t)i;
        for (int j = 0; j < 8; j++)
            fp = (fp >> 1) ^ (CRC64_EMPTY & (0 - (fp & 1)));
        crc_table[i] = fp;
    }
}

uint64_t ks_avro_fingerprint64(const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t fp = CRC64_EMPTY;

    pthread_once(&crc_once, crc_table_init);
    for (size_t i = 0; i < len; i++)
        fp = (fp >> 8) ^ crc_table[(fp ^ p[i]) & 0xff];
    return fp;
}

/* ---- writing into a ks_buf (lib/buf.h) ----------------------------------------------- */

/* Zig-zag varint, as Avro writes int and long. */
static void buf_put_long(struct ks_buf *b, int64_t v)
{
    uint64_t u = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    if (!ks_buf_room(b, 10))
        return;
    uint8_t *p = b->p + b->len;
    while (u > 0x7f) {
        *p++ = (uint8_t)((u & 0x7f) | 0x80);
        u >>= 7;
    }
    *p++ = (uint8_t)u;
    b->len = (size_t)(p - b->p);
}

/* ---- base64: bytes and fixed travel as base64 strings in JSON (lib/crypto.h) ------------ */

/* Decodes base64 text and appends the bytes to b; false when the text is not base64. */
static bool b64_decode(const char *s, size_t n, struct ks_buf *b)
{
    long got;

    if (!ks_buf_room(b, n / 4 * 3 + 3))
        return false;
    got = ks_b64_decode(s, n, b->p + b->len, b->cap - b->len);
    if (got < 0)
        return false;
    b->len += (size_t)got;
    return true;
}

/* ---- the schema model ------------------------------------------------------------------ */

enum kind {
    K_NULL, K_BOOLEAN, K_INT, K_LONG, K_FLOAT, K_DOUBLE, K_BYTES, K_STRING, /* primitives */
    K_RECORD, K_ENUM, K_ARRAY, K_MAP, K_UNION, K_FIXED
};

static const char *const primitive_names[] = {"null",   "boolean", "int",   "long",
                                              "float",  "double",  "bytes", "string"};
#define N_PRIMITIVES (sizeof(primitive_names) / sizeof(primitive_names[0]))
static const char *const kind_names[] = {"null",   "boolean", "int",  "long",  "float",
                                         "double", "bytes",   "string", "record", "enum",
                                         "array",  "map",     "union",  "fixed"};

struct field {
    char *name;
    struct node *type;
    const json_t *def; /* the "default" (borrowed from the model's JSON), or NULL */
};

struct node {
    enum kind kind;
    char *fullname;         /* records, enums, fixed */
    char *ns;               /* their namespace ("" for none): what nested names inherit */
    size_t n;               /* number of fields, symbols or branches */
    struct field *fields;   /* records */
    char **symbols;         /* enums */
    struct node **branches; /* unions */
    struct node *child;     /* array items, map values */
    size_t size;            /* fixed */
    int null_branch;        /* unions: index of the null branch, or -1 */
    size_t min_size;        /* fewest bytes a value takes on the wire */
    int min_state;          /* 0 not computed, 1 in progress (recursive type), 2 done */
    struct node *next;      /* every node of a model, for freeing */
};

struct model {
    struct node *root;
    struct node *all;
    struct node **named; /* named types by definition order */
    size_t nnamed, capnamed;
    json_t *json; /* keeps the defaults alive */
};

struct builder {
    struct model *m;
    char err[200];
};

static void model_release(struct model *m)
{
    struct node *n = m->all, *next;
    for (; n; n = next) {
        next = n->next;
        for (size_t i = 0; n->fields && i < n->n; i++)
            free(n->fields[i].name);
        for (size_t i = 0; n->symbols && i < n->n; i++)
            free(n->symbols[i]);
        free(n->fields);
        free(n->symbols);
        free(n->branches);
        free(n->fullname);
        free(n->ns);
        free(n);
    }
    free(m->named);
    json_decref(m->json);
    memset(m, 0, sizeof(*m));
}

static void berr(struct builder *b, const char *fmt, const char *arg)
{
    if (!b->err[0])
        snprintf(b->err, sizeof(b->err), fmt, arg ? arg : "");
}

static struct node *node_new(struct builder *b, enum kind k)
{
    struct node *n = calloc(1, sizeof(*n));
    if (!n) {
        berr(b, "out of memory%s", NULL);
        return NULL;
    }
    n->kind = k;
    n->null_branch = -1;
    n->next = b->m->all;
    b->m->all = n;
    return n;
}

static int primitive_kind(const char *s)
{
    for (size_t i = 0; i < N_PRIMITIVES; i++)
        if (strcmp(s, primitive_names[i]) == 0)
            return (int)i;
    return -1;
}

/* [A-Za-z_][A-Za-z0-9_]*, or dot-separated such parts when dotted. */
static bool valid_name(const char *s, bool dotted)
{
    bool start = true;
    if (!*s)
        return false;
    for (; *s; s++) {
        char c = *s;
        bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
        if (c == '.' && dotted && !start) {
            start = true;
            continue;
        }
        if (!(alpha || (!start && c >= '0' && c <= '9')))
            return false;
        start = false;
    }
    return !start;
}

static struct node *find_named(struct model *m, const char *fullname)
{
    for (size_t i = 0; i < m->nnamed; i++)
        if (strcmp(m->named[i]->fullname, fullname) == 0)
            return m->named[i];
    return NULL;
}

static char *join_name(const char *ns, const char *name)
{
    size_t a = strlen(ns), c = strlen(name);
    char *s = malloc(a + c + 2);
    if (!s)
        return NULL;
    if (a) {
        memcpy(s, ns, a);
        s[a++] = '.';
    }
    memcpy(s + a, name, c + 1);
    return s;
}

/* A type given by name: a primitive, or a named type defined earlier (or being defined,
 * for recursive records). A short name is first tried in the enclosing namespace. */
static struct node *resolve_name(struct builder *b, const char *name, const char *ns)
{
    int pk = primitive_kind(name);
    if (pk >= 0)
        return node_new(b, (enum kind)pk);
    struct node *n = NULL;
    if (!strchr(name, '.') && *ns) {
        char *full = join_name(ns, name);
        if (!full) {
            berr(b, "out of memory%s", NULL);
            return NULL;
        }
        n = find_named(b->m, full);
        free(full);
    }
    if (!n)
        n = find_named(b->m, name);
    if (!n)
        berr(b, "unknown type \"%s\"", name);
    return n;
}

/* Name and namespace of a record, enum or fixed; registers it (before its fields are
 * parsed, so a record may refer to itself). */
static bool define_named(struct builder *b, struct node *n, const json_t *obj, const char *ns)
{
    const char *name = json_string_value(json_object_get(obj, "name"));
    const json_t *jns = json_object_get(obj, "namespace");
    if (!name || !valid_name(name, true)) {
        berr(b, "named type has a missing or invalid name \"%s\"", name);
        return false;
    }
    const char *dot = strrchr(name, '.');
    if (dot) {
        n->fullname = strdup(name);
        n->ns = strndup(name, (size_t)(dot - name));
    } else {
        if (jns && !json_is_null(jns)) {
            const char *s = json_string_value(jns);
            if (!s || (*s && !valid_name(s, true))) {
                berr(b, "invalid namespace in \"%s\"", name);
                return false;
            }
            ns = s;
        }
        n->fullname = join_name(ns, name);
        n->ns = strdup(ns);
    }
    if (!n->fullname || !n->ns) {
        berr(b, "out of memory%s", NULL);
        return false;
    }
    if (primitive_kind(dot ? dot + 1 : name) >= 0) {
        berr(b, "a named type cannot be called \"%s\"", name);
        return false;
    }
    if (find_named(b->m, n->fullname)) {
        berr(b, "\"%s\" is defined twice", n->fullname);
        return false;
    }
    if (b->m->nnamed == b->m->capnamed) {
        size_t cap = b->m->capnamed ? b->m->capnamed * 2 : 8;
        struct node **v = realloc(b->m->named, cap * sizeof(*v));
        if (!v) {
            berr(b, "out of memory%s", NULL);
            return false;
        }
        b->m->named = v;
        b->m->capnamed = cap;
    }
    b->m->named[b->m->nnamed++] = n;
    return true;
}

static struct node *parse_type(struct builder *b, const json_t *t, const char *ns, int depth);

static bool parse_record(struct builder *b, struct node *n, const json_t *obj)
{
    const json_t *fields = json_object_get(obj, "fields");
    if (!json_is_array(fields)) {
        berr(b, "record \"%s\" has no fields array", n->fullname);
        return false;
    }
    n->n = json_array_size(fields);
    n->fields = calloc(n->n ? n->n : 1, sizeof(*n->fields));
    if (!n->fields) {
        berr(b, "out of memory%s", NULL);
        return false;
    }
    for (size_t i = 0; i < n->n; i++) {
        const json_t *f = json_array_get(fields, i);
        const char *fname = json_string_value(json_object_get(f, "name"));
        if (!fname || !valid_name(fname, false)) {
            berr(b, "a field of \"%s\" has a missing or invalid name", n->fullname);
            return false;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(n->fields[j].name, fname) == 0) {
                berr(b, "field \"%s\" appears twice", fname);
                return false;
            }
        if (!(n->fields[i].name = strdup(fname))) {
            berr(b, "out of memory%s", NULL);
            return false;
        }
        const json_t *ft = json_object_get(f, "type");
        if (!ft) {
            berr(b, "field \"%s\" has no type", fname);
            return false;
        }
        if (!(n->fields[i].type = parse_type(b, ft, n->ns, 0)))
            return false;
        n->fields[i].def = json_object_get(f, "default");
    }
    return true;
}

static bool parse_enum(struct builder *b, struct node *n, const json_t *obj)
{
    const json_t *syms = json_object_get(obj, "symbols");
    if (!json_is_array(syms)) {
        berr(b, "enum \"%s\" has no symbols array", n->fullname);
        return false;
    }
    n->n = json_array_size(syms);
    n->symbols = calloc(n->n ? n->n : 1, sizeof(*n->symbols));
    if (!n->symbols) {
        berr(b, "out of memory%s", NULL);
        return false;
    }
    for (size_t i = 0; i < n->n; i++) {
        const char *s = json_string_value(json_array_get(syms, i));
        if (!s || !valid_name(s, false)) {
            berr(b, "enum \"%s\" has an invalid symbol", n->fullname);
            return false;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(n->symbols[j], s) == 0) {
                berr(b, "enum symbol \"%s\" appears twice", s);
                return false;
            }
        if (!(n->symbols[i] = strdup(s))) {
            berr(b, "out of memory%s", NULL);
            return false;
        }
    }
    return true;
}

static struct node *parse_union(struct builder *b, const json_t *arr, const char *ns, int depth)
{
    struct node *n = node_new(b, K_UNION);
    if (!n)
        return NULL;
    n->n = json_array_size(arr);
    if (n->n == 0) {
        berr(b, "empty union%s", NULL);
        return NULL;
    }
    if (!(n->branches = calloc(n->n, sizeof(*n->branches)))) {
        berr(b, "out of memory%s", NULL);
        return NULL;
    }
    for (size_t i = 0; i < n->n; i++) {
        struct node *br = parse_type(b, json_array_get(arr, i), ns, depth + 1);
        if (!br)
            return NULL;
        if (br->kind == K_UNION) {
            berr(b, "a union cannot contain a union%s", NULL);
            return NULL;
        }
        for (size_t j = 0; j < i; j++) {
            struct node *o = n->branches[j];
            bool named = br->kind == K_RECORD || br->kind == K_ENUM || br->kind == K_FIXED;
            if (o->kind == br->kind && (!named || strcmp(o->fullname, br->fullname) == 0)) {
                berr(b, "a union has two branches of type %s",
                     named ? br->fullname : kind_names[br->kind]);
                return NULL;
            }
        }
        if (br->kind == K_NULL)
            n->null_branch = (int)i;
        n->branches[i] = br;
    }
    return n;
}

static struct node *parse_type(struct builder *b, const json_t *t, const char *ns, int depth)
{
    if (depth > MAX_DEPTH) {
        berr(b, "schema nested too deeply%s", NULL);
        return NULL;
    }
    if (json_is_string(t))
        return resolve_name(b, json_string_value(t), ns);
    if (json_is_array(t))
        return parse_union(b, t, ns, depth);
    if (!json_is_object(t)) {
        berr(b, "a schema must be a string, an array or an object%s", NULL);
        return NULL;
    }
    const json_t *jt = json_object_get(t, "type");
    if (json_is_object(jt) || json_is_array(jt)) /* {"type": {...}} wraps a schema */
        return parse_type(b, jt, ns, depth + 1);
    const char *type = json_string_value(jt);
    if (!type) {
        berr(b, "a schema object has no type%s", NULL);
        return NULL;
    }
    struct node *n = NULL;
    if (strcmp(type, "record") == 0 || strcmp(type, "error") == 0) {
        if ((n = node_new(b, K_RECORD)) && define_named(b, n, t, ns) && parse_record(b, n, t))
            return n;
        return NULL;
    }
    if (strcmp(type, "enum") == 0) {
        if ((n = node_new(b, K_ENUM)) && define_named(b, n, t, ns) && parse_enum(b, n, t))
            return n;
        return NULL;
    }
    if (strcmp(type, "fixed") == 0) {
        const json_t *size = json_object_get(t, "size");
        long long v = json_is_integer(size) ? json_integer_value(size) : -1;
        const char *digits = json_string_value(size);
        if (!(n = node_new(b, K_FIXED)) || !define_named(b, n, t, ns))
            return NULL;
        /* [INTEGERS] speaks of quotes around sizes: "16" is read as 16 */
        for (size_t i = 0; digits && digits[i] && i < 10; i++) {
            if (digits[i] < '0' || digits[i] > '9') {
                v = -1;
                break;
            }
            v = (i ? v : 0) * 10 + (digits[i] - '0');
        }
        if (digits && (!digits[0] || strlen(digits) > 10))
            v = -1;
        if (v < 0 || v > INT32_MAX) {
            berr(b, "fixed \"%s\" has no valid size", n->fullname);
            return NULL;
        }
        n->size = (size_t)v;
        return n;
    }
    if (strcmp(type, "array") == 0 || strcmp(type, "map") == 0) {
        bool array = type[0] == 'a';
        const json_t *c = json_object_get(t, array ? "items" : "values");
        if (!c) {
            berr(b, "%s has no element type", type);
            return NULL;
        }
        if (!(n = node_new(b, array ? K_ARRAY : K_MAP)))
            return NULL;
        n->child = parse_type(b, c, ns, depth + 1);
        return n->child ? n : NULL;
    }
    /* a primitive with attributes (logicalType...), or a named type by reference */
    return resolve_name(b, type, ns);
}

static size_t min_size(struct node *n)
{
    if (n->min_state == 2)
        return n->min_size;
    if (n->min_state == 1)
        return 0; /* a recursive record: count nothing for the inner occurrence */
    n->min_state = 1;
    size_t m = 0;
    switch (n->kind) {
    case K_NULL: m = 0; break;
    case K_FLOAT: m = 4; break;
    case K_DOUBLE: m = 8; break;
    case K_FIXED: m = n->size; break;
    case K_RECORD:
        for (size_t i = 0; i < n->n; i++)
            m += min_size(n->fields[i].type);
        break;
    case K_UNION:
        m = SIZE_MAX;
        for (size_t i = 0; i < n->n; i++) {
            size_t x = min_size(n->branches[i]);
            m = x < m ? x : m;
        }
        m += 1;
        break;
    default: m = 1; break; /* boolean, int, long, bytes, string, enum, array, map */
    }
    n->min_size = m;
    n->min_state = 2;
    return m;
}

static int encode_value(struct ks_buf *out, const struct node *n, const json_t *v, bool dflt,
                        struct ks_err *err, char *path, size_t plen, int depth);

/* Parses schema JSON into m. Checks defaults against their types by encoding them. */
static bool model_build(struct model *m, json_t *root, char *err, size_t errlen)
{
    struct builder b = {.m = m};
    memset(m, 0, sizeof(*m));
    m->json = json_incref(root);
    m->root = parse_type(&b, root, "", 0);
    for (struct node *n = m->all; m->root && n; n = n->next) {
        min_size(n);
        for (size_t i = 0; n->kind == K_RECORD && i < n->n; i++) {
            struct ks_buf scratch = {0};
            struct ks_err e;
            char path[256] = "";
            if (n->fields[i].def &&
                encode_value(&scratch, n->fields[i].type, n->fields[i].def, true, &e, path, 0,
                             0) != 0) {
                snprintf(b.err, sizeof(b.err), "default of %s.%s does not match its type",
                         n->fullname, n->fields[i].name);
                m->root = NULL;
            }
            free(scratch.p);
        }
    }
    if (!m->root) {
        snprintf(err, errlen, "%s", b.err[0] ? b.err : "malformed schema");
        model_release(m);
        return false;
    }
    return true;
}

/* ---- Parsing Canonical Form ------------------------------------------------------------ */

struct pcf {
    struct ks_buf out;
    const struct node **done; /* named types already written in full */
    size_t ndone, capdone;
};

/* [STRINGS]: UTF-8 as is; only what JSON requires is escaped. */
static void pcf_string(struct ks_buf *o, const char *s)
{
    ks_buf_addc(o, '"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            ks_buf_addc(o, '\\');
            ks_buf_addc(o, (char)c);
        } else if (c < 0x20) {
            char esc[8];
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            ks_buf_adds(o, esc);
        } else {
            ks_buf_addc(o, (char)c);
        }
    }
    ks_buf_addc(o, '"');
}

static void pcf_node(struct pcf *p, const struct node *n)
{
    struct ks_buf *o = &p->out;
    if (n->kind < K_RECORD) { /* [PRIMITIVES], logical types stripped */
        pcf_string(o, primitive_names[n->kind]);
        return;
    }
    if (n->kind == K_UNION) {
        ks_buf_addc(o, '[');
        for (size_t i = 0; i < n->n; i++) {
            if (i)
                ks_buf_addc(o, ',');
            pcf_node(p, n->branches[i]);
        }
        ks_buf_addc(o, ']');
        return;
    }
    if (n->kind == K_ARRAY || n->kind == K_MAP) {
        ks_buf_adds(o, n->kind == K_ARRAY ? "{\"type\":\"array\",\"items\":"
                                       : "{\"type\":\"map\",\"values\":");
        pcf_node(p, n->child);
        ks_buf_addc(o, '}');
        return;
    }
    /* named: in full the first time, by [FULLNAMES] afterwards */
    for (size_t i = 0; i < p->ndone; i++)
        if (p->done[i] == n) {
            pcf_string(o, n->fullname);
            return;
        }
    if (p->ndone == p->capdone) {
        size_t cap = p->capdone ? p->capdone * 2 : 8;
        const struct node **v = realloc(p->done, cap * sizeof(*v));
        if (!v) {
            o->oom = true;
            return;
        }
        p->done = v;
        p->capdone = cap;
    }
    p->done[p->ndone++] = n;
    /* [ORDER] name, type, fields, symbols, items, values, size */
    ks_buf_adds(o, "{\"name\":");
    pcf_string(o, n->fullname);
    if (n->kind == K_RECORD) {
        ks_buf_adds(o, ",\"type\":\"record\",\"fields\":[");
        for (size_t i = 0; i < n->n; i++) {
            ks_buf_adds(o, i ? ",{\"name\":" : "{\"name\":");
            pcf_string(o, n->fields[i].name);
            ks_buf_adds(o, ",\"type\":");
            pcf_node(p, n->fields[i].type);
            ks_buf_addc(o, '}');
        }
        ks_buf_adds(o, "]}");
    } else if (n->kind == K_ENUM) {
        ks_buf_adds(o, ",\"type\":\"enum\",\"symbols\":[");
        for (size_t i = 0; i < n->n; i++) {
            if (i)
                ks_buf_addc(o, ',');
            pcf_string(o, n->symbols[i]);
        }
        ks_buf_adds(o, "]}");
    } else {
        char size[32];
        snprintf(size, sizeof(size), ",\"type\":\"fixed\",\"size\":%zu}", n->size);
        ks_buf_adds(o, size);
    }
}

static char *model_pcf(const struct model *m)
{
    struct pcf p = {0};
    pcf_node(&p, m->root);
    ks_buf_addc(&p.out, '\0');
    free(p.done);
    if (p.out.oom) {
        free(p.out.p);
        return NULL;
    }
    return (char *)p.out.p;
}

static json_t *parse_schema_text(const char *text, size_t len, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
    if (!root)
        snprintf(err, errlen, "schema is not JSON: %s at line %d", je.text, je.line);
    return root;
}

char *ks_avro_canonical_form(const char *schema_json, size_t len, struct ks_err *err)
{
    char msg[200];
    struct model m;
    json_t *root = parse_schema_text(schema_json, len, msg, sizeof(msg));
    if (!root || !model_build(&m, root, msg, sizeof(msg))) {
        json_decref(root);
        ks_err_set(err, KS_ESCHEMA, 0, NULL, "%s", msg);
        return NULL;
    }
    json_decref(root);
    char *pcf = model_pcf(&m);
    model_release(&m);
    if (!pcf)
        ks_err_set(err, KS_ENOMEM, 0, NULL, "out of memory");
    return pcf;
}

/* ---- encoder: jansson -> Avro binary --------------------------------------------------- */

/* path is the JSON path of the value being encoded ("orders[2].amount_minor"); it lives
 * in one 256-byte buffer that each level extends and the caller truncates back. */
static size_t path_add(char *path, size_t plen, const char *seg, size_t seglen, bool index)
{
    size_t room = 255 - plen;
    size_t need = seglen + (!index && plen ? 1 : 0);
    if (need > room)
        return plen; /* deep or long: keep the prefix */
    if (!index && plen)
        path[plen++] = '.';
    memcpy(path + plen, seg, seglen);
    plen += seglen;
    path[plen] = '\0';
    return plen;
}

static int enc_fail(struct ks_err *err, const char *path, const char *fmt, const char *arg)
{
    ks_err_set(err, KS_EINVAL, 0, path, fmt, arg ? arg : "");
    return -1;
}

static const char *json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

static int wrong_type(struct ks_err *err, const char *path, const json_t *v, const char *want)
{
    char msg[96];
    snprintf(msg, sizeof(msg), "expected %s, got %s", want, json_type_name(v));
    return enc_fail(err, path, "%s", msg);
}

static int encode_record(struct ks_buf *out, const struct node *n, const json_t *v, bool dflt,
                         struct ks_err *err, char *path, size_t plen, int depth)
{
    if (!json_is_object(v))
        return wrong_type(err, path, v, "an object");
    size_t found = 0;
    for (size_t i = 0; i < n->n; i++) {
        const struct field *f = &n->fields[i];
        const json_t *fv = json_object_get(v, f->name);
        size_t pl = path_add(path, plen, f->name, strlen(f->name), false);
        int rc;
        if (fv) {
            found++;
            rc = encode_value(out, f->type, fv, dflt, err, path, pl, depth + 1);
        } else if (f->def) {
            rc = encode_value(out, f->type, f->def, true, err, path, pl, depth + 1);
        } else {
            rc = enc_fail(err, path, "missing field%s", NULL);
        }
        path[plen] = '\0';
        if (rc)
            return rc;
    }
    if (found < json_object_size(v)) { /* a typo must not vanish silently */
        const char *key;
        const json_t *x;
        json_object_foreach((json_t *)v, key, x) {
            size_t i = 0;
            while (i < n->n && strcmp(n->fields[i].name, key) != 0)
                i++;
            if (i == n->n) {
                path_add(path, plen, key, strlen(key), false);
                return enc_fail(err, path, "unknown field%s", NULL);
            }
        }
    }
    return 0;
}

static int encode_union(struct ks_buf *out, const struct node *n, const json_t *v, bool dflt,
                        struct ks_err *err, char *path, size_t plen, int depth)
{
    if (dflt) { /* a union's default is a value of its first branch */
        buf_put_long(out, 0);
        return encode_value(out, n->branches[0], v, true, err, path, plen, depth + 1);
    }
    if (json_is_null(v) && n->null_branch >= 0) {
        buf_put_long(out, n->null_branch);
        return 0;
    }
    /* the first non-null branch that takes the value; with [null, T] that is T, and T's
     * own error is the one reported */
    size_t mark = out->len, tried = 0;
    int rc = -1;
    for (size_t i = 0; i < n->n; i++) {
        if ((int)i == n->null_branch)
            continue;
        out->len = mark;
        buf_put_long(out, (int64_t)i);
        tried++;
        if ((rc = encode_value(out, n->branches[i], v, false, err, path, plen, depth + 1)) == 0)
            return 0;
        path[plen] = '\0';
    }
    out->len = mark;
    if (tried != 1)
        return enc_fail(err, path, "value matches no branch of the union%s", NULL);
    return rc;
}

static int encode_value(struct ks_buf *out, const struct node *n, const json_t *v, bool dflt,
                        struct ks_err *err, char *path, size_t plen, int depth)
{
    if (depth > MAX_DEPTH)
        return enc_fail(err, path, "value nested too deeply%s", NULL);
    switch (n->kind) {
    case K_NULL:
        return json_is_null(v) ? 0 : wrong_type(err, path, v, "null");
    case K_BOOLEAN:
        if (!json_is_boolean(v))
            return wrong_type(err, path, v, "a boolean");
        ks_buf_addc(out, json_is_true(v) ? 1 : 0);
        return 0;
    case K_INT:
        if (!json_is_integer(v))
            return wrong_type(err, path, v, "an integer");
        if (json_integer_value(v) < INT32_MIN || json_integer_value(v) > INT32_MAX)
            return enc_fail(err, path, "integer out of the int range%s", NULL);
        buf_put_long(out, json_integer_value(v));
        return 0;
    case K_LONG:
        if (!json_is_integer(v))
            return wrong_type(err, path, v, "an integer");
        buf_put_long(out, json_integer_value(v));
        return 0;
    case K_FLOAT:
    case K_DOUBLE: {
        if (!json_is_number(v))
            return wrong_type(err, path, v, "a number");
        uint8_t le[8];
        uint64_t bits;
        size_t w = n->kind == K_FLOAT ? 4 : 8;
        if (w == 4) {
            float f = (float)json_number_value(v);
            uint32_t b32;
            memcpy(&b32, &f, 4);
            bits = b32;
        } else {
            double d = json_number_value(v);
            memcpy(&bits, &d, 8);
        }
        for (size_t i = 0; i < w; i++)
            le[i] = (uint8_t)(bits >> (8 * i));
        ks_buf_add(out, le, w);
        return 0;
    }
    case K_STRING:
        if (!json_is_string(v))
            return wrong_type(err, path, v, "a string");
        buf_put_long(out, (int64_t)json_string_length(v));
        ks_buf_add(out, json_string_value(v), json_string_length(v));
        return 0;
    case K_BYTES:
    case K_FIXED: {
        if (!json_is_string(v))
            return wrong_type(err, path, v, "a base64 string");
        struct ks_buf raw = {0};
        const char *s = json_string_value(v);
        size_t slen = json_string_length(v);
        bool ok = true;
        if (dflt) { /* the spec's defaults for bytes: code points 0-255, one per byte */
            for (size_t i = 0; ok && i < slen; i++) {
                unsigned char c = (unsigned char)s[i];
                if (c < 0x80) {
                    ks_buf_addc(&raw, (char)c);
                } else if ((c == 0xc2 || c == 0xc3) && i + 1 < slen) {
                    ks_buf_addc(&raw, (char)(((c & 3) << 6) | (s[++i] & 0x3f)));
                } else {
                    ok = false;
                }
            }
        } else {
            ok = b64_decode(s, slen, &raw);
        }
        if (ok && n->kind == K_FIXED && raw.len != n->size)
            ok = false;
        if (ok) {
            if (n->kind == K_BYTES)
                buf_put_long(out, (int64_t)raw.len);
            ks_buf_add(out, raw.p, raw.len);
        }
        free(raw.p);
        if (!ok)
            return enc_fail(err, path,
                            n->kind == K_FIXED ? "not base64 of the fixed size%s"
                                               : "not valid base64%s",
                            NULL);
        return 0;
    }
    case K_ENUM: {
        const char *s = json_string_value(v);
        if (!s)
            return wrong_type(err, path, v, "an enum symbol string");
        for (size_t i = 0; i < n->n; i++)
            if (strcmp(n->symbols[i], s) == 0) {
                buf_put_long(out, (int64_t)i);
                return 0;
            }
        char msg[128];
        snprintf(msg, sizeof(msg), "unknown symbol \"%.40s\" of %.40s", s, n->fullname);
        return enc_fail(err, path, "%s", msg);
    }
    case K_ARRAY: {
        if (!json_is_array(v))
            return wrong_type(err, path, v, "an array");
        size_t cnt = json_array_size(v);
        if (cnt)
            buf_put_long(out, (int64_t)cnt);
        for (size_t i = 0; i < cnt; i++) {
            char idx[24];
            int l = snprintf(idx, sizeof(idx), "[%zu]", i);
            size_t pl = path_add(path, plen, idx, (size_t)l, true);
            int rc = encode_value(out, n->child, json_array_get(v, i), dflt, err, path, pl,
                                  depth + 1);
            path[plen] = '\0';
            if (rc)
                return rc;
        }
        ks_buf_addc(out, 0);
        return 0;
    }
    case K_MAP: {
        if (!json_is_object(v))
            return wrong_type(err, path, v, "an object");
        size_t cnt = json_object_size(v);
        const char *key;
        size_t klen;
        json_t *x;
        if (cnt)
            buf_put_long(out, (int64_t)cnt);
        json_object_keylen_foreach((json_t *)v, key, klen, x) {
            buf_put_long(out, (int64_t)klen);
            ks_buf_add(out, key, klen);
            size_t pl = path_add(path, plen, key, strnlen(key, klen), false);
            int rc = encode_value(out, n->child, x, dflt, err, path, pl, depth + 1);
            path[plen] = '\0';
            if (rc)
                return rc;
        }
        ks_buf_addc(out, 0);
        return 0;
    }
    case K_RECORD:
        return encode_record(out, n, v, dflt, err, path, plen, depth);
    case K_UNION:
        return encode_union(out, n, v, dflt, err, path, plen, depth);
    }
    return enc_fail(err, path, "unsupported type%s", NULL);
}

/* ---- decoder: Avro binary -> jansson --------------------------------------------------- */

struct dec {
    const uint8_t *p, *end;
    const char *msg;   /* why it failed */
    const char *field; /* innermost record field at the failure */
};

static bool dec_fail(struct dec *d, const char *msg)
{
    if (!d->msg)
        d->msg = msg;
    return false;
}

static bool dec_long(struct dec *d, int64_t *v)
{
    uint64_t u = 0;
    for (int i = 0;; i++) {
        if (d->p >= d->end)
            return dec_fail(d, "truncated varint");
        uint8_t b = *d->p++;
        if (i == 9 && (b & 0xfe))
            return dec_fail(d, "varint longer than 64 bits");
        u |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80))
            break;
    }
    *v = (int64_t)((u >> 1) ^ (0 - (u & 1)));
    return true;
}

/* A length or count: not negative and not more than the bytes left allow. */
static bool dec_len(struct dec *d, size_t unit, int64_t *n)
{
    if (!dec_long(d, n))
        return false;
    if (*n < 0)
        return dec_fail(d, "negative length");
    if (unit && (uint64_t)*n > (uint64_t)(d->end - d->p) / unit)
        return dec_fail(d, "length exceeds the message");
    return true;
}

static json_t *decode_value(struct dec *d, const struct node *n, int depth);

static json_t *dec_bytes(struct dec *d, size_t len)
{
    size_t b64len = ks_b64_enclen(len);
    char *s = malloc(b64len + 1);
    if (!s)
        return NULL;
    ks_b64_encode(d->p, len, s);
    d->p += len;
    json_t *j = json_stringn_nocheck(s, b64len);
    free(s);
    return j;
}

/* Arrays and maps come in blocks: a count, then items; a negative count is followed by
 * the block's byte size; a zero count ends the value. */
static json_t *decode_blocks(struct dec *d, const struct node *n, int depth)
{
    bool map = n->kind == K_MAP;
    json_t *out = map ? json_object() : json_array();
    size_t item_min = n->child->min_size + (map ? 1 : 0), total = 0;
    if (!out)
        return NULL;
    for (;;) {
        int64_t cnt, bytes;
        if (!dec_long(d, &cnt))
            goto fail;
        if (cnt == 0)
            return out;
        if (cnt < 0) {
            if (cnt == INT64_MIN) {
                dec_fail(d, "bad block count");
                goto fail;
            }
            cnt = -cnt;
            if (!dec_len(d, 1, &bytes))
                goto fail;
        }
        if (item_min ? (uint64_t)cnt > (uint64_t)(d->end - d->p) / item_min
                     : (uint64_t)cnt > MAX_ZERO_SIZE_ITEMS - total) {
            dec_fail(d, "block count exceeds the message");
            goto fail;
        }
        total += (size_t)cnt;
        for (int64_t i = 0; i < cnt; i++) {
            int64_t klen = 0;
            const uint8_t *key = NULL;
            if (map) {
                if (!dec_len(d, 1, &klen))
                    goto fail;
                key = d->p;
                d->p += klen;
                /* a key is a C string to every reader of the value: "a\0b" would be
                 * read as "a", a second key smuggled in beside the real one (test 143) */
                if (memchr(key, 0, (size_t)klen)) {
                    dec_fail(d, "map key holds a NUL character");
                    goto fail;
                }
            }
            json_t *x = decode_value(d, n->child, depth + 1);
            if (!x)
                goto fail;
            if (map ? json_object_setn_new(out, (const char *)key, (size_t)klen, x)
                    : json_array_append_new(out, x)) {
                dec_fail(d, map ? "map key is not UTF-8" : "out of memory");
                goto fail;
            }
        }
    }
fail:
    json_decref(out);
    return NULL;
}

static json_t *decode_record(struct dec *d, const struct node *n, json_t *obj, int depth)
{
    if (!obj && !(obj = json_object()))
        return NULL;
    for (size_t i = 0; i < n->n; i++) {
        json_t *x = decode_value(d, n->fields[i].type, depth + 1);
        if (!x || json_object_set_new_nocheck(obj, n->fields[i].name, x)) {
            if (!d->field)
                d->field = n->fields[i].name;
            json_decref(obj);
            return NULL;
        }
    }
    return obj;
}

static json_t *decode_value(struct dec *d, const struct node *n, int depth)
{
    int64_t v;
    if (depth > MAX_DEPTH) {
        dec_fail(d, "value nested too deeply");
        return NULL;
    }
    switch (n->kind) {
    case K_NULL:
        return json_null();
    case K_BOOLEAN:
        if (d->p >= d->end || *d->p > 1) {
            dec_fail(d, d->p >= d->end ? "truncated boolean" : "boolean is not 0 or 1");
            return NULL;
        }
        return json_boolean(*d->p++);
    case K_INT:
    case K_LONG:
        if (!dec_long(d, &v))
            return NULL;
        if (n->kind == K_INT && (v < INT32_MIN || v > INT32_MAX)) {
            dec_fail(d, "int out of range");
            return NULL;
        }
        return json_integer(v);
    case K_FLOAT:
    case K_DOUBLE: {
        size_t w = n->kind == K_FLOAT ? 4 : 8;
        uint64_t bits = 0;
        double x;
        if ((size_t)(d->end - d->p) < w) {
            dec_fail(d, "truncated number");
            return NULL;
        }
        for (size_t i = 0; i < w; i++)
            bits |= (uint64_t)d->p[i] << (8 * i);
        d->p += w;
        if (w == 4) {
            uint32_t b32 = (uint32_t)bits;
            float f;
            memcpy(&f, &b32, 4);
            x = f;
        } else {
            memcpy(&x, &bits, 8);
        }
        json_t *j = json_real(x);
        if (!j)
            dec_fail(d, "number is not finite");
        return j;
    }
    case K_STRING: {
        if (!dec_len(d, 1, &v))
            return NULL;
        json_t *j = json_stringn((const char *)d->p, (size_t)v);
        d->p += v;
        if (!j)
            dec_fail(d, "string is not UTF-8");
        return j;
    }
    case K_BYTES:
        if (!dec_len(d, 1, &v))
            return NULL;
        return dec_bytes(d, (size_t)v);
    case K_FIXED:
        if ((size_t)(d->end - d->p) < n->size) {
            dec_fail(d, "truncated fixed");
            return NULL;
        }
        return dec_bytes(d, n->size);
    case K_ENUM:
        if (!dec_long(d, &v))
            return NULL;
        if (v < 0 || (uint64_t)v >= n->n) {
            dec_fail(d, "enum index out of range");
            return NULL;
        }
        return json_string_nocheck(n->symbols[v]);
    case K_UNION:
        if (!dec_long(d, &v))
            return NULL;
        if (v < 0 || (uint64_t)v >= n->n) {
            dec_fail(d, "union branch out of range");
            return NULL;
        }
        return decode_value(d, n->branches[v], depth + 1);
    case K_ARRAY:
    case K_MAP:
        return decode_blocks(d, n, depth);
    case K_RECORD:
        return decode_record(d, n, NULL, depth);
    }
    return NULL;
}

/* ---- the catalogue --------------------------------------------------------------------- */

struct ks_schema {
    const char *name;
    int version;
    const char *json;
    size_t json_len;
    char *pcf;
    uint64_t fp;
    struct model model;
};

struct catalog {
    struct ks_schema *v;
    size_t n;
};

static pthread_mutex_t cat_lock = PTHREAD_MUTEX_INITIALIZER;
static struct catalog *cat; /* published with release, read with acquire */

static struct catalog *catalog_get(void)
{
    return __atomic_load_n(&cat, __ATOMIC_ACQUIRE);
}

static void catalog_free(struct catalog *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++) {
        free(c->v[i].pcf);
        if (c->v[i].model.all || c->v[i].model.json)
            model_release(&c->v[i].model);
    }
    free(c->v);
    free(c);
}

static enum ks_code load_entry(struct ks_schema *s, const struct ks_catalog_entry *e,
                               struct ks_err *err)
{
    char msg[200];
    avro_schema_t as = NULL;
    json_t *root = NULL;
    enum ks_code rc = KS_ESCHEMA;

    s->name = e->fullname;
    s->version = e->version;
    s->json = e->json;
    s->json_len = e->json_len;
    if (!(root = parse_schema_text(e->json, e->json_len, msg, sizeof(msg))) ||
        !model_build(&s->model, root, msg, sizeof(msg))) {
        ks_err_set(err, KS_ESCHEMA, 0, e->fullname, "%s: %s", e->path, msg);
        goto out;
    }
    if (s->model.root->kind != K_RECORD || strcmp(s->model.root->fullname, e->fullname) != 0) {
        ks_err_set(err, KS_ESCHEMA, 0, e->fullname, "%s: top-level record is not %s", e->path,
                   e->fullname);
        goto out;
    }
    /* the other Avro implementation in the process must agree that the schema is valid */
    if (avro_schema_from_json_length(e->json, e->json_len, &as) != 0) {
        ks_err_set(err, KS_ESCHEMA, 0, e->fullname, "%s: avro-c rejects it: %s", e->path,
                   avro_strerror());
        goto out;
    }
    if (!(s->pcf = model_pcf(&s->model))) {
        rc = ks_err_set(err, KS_ENOMEM, 0, NULL, "out of memory");
        goto out;
    }
    s->fp = ks_avro_fingerprint64(s->pcf, strlen(s->pcf));
    rc = KS_OK;
out:
    if (as)
        avro_schema_decref(as);
    json_decref(root);
    return rc;
}

enum ks_code ks_serde_init(struct ks_err *err)
{
    enum ks_code rc = KS_OK;
    struct catalog *c = NULL;

    pthread_mutex_lock(&cat_lock);
    if (catalog_get())
        goto out;
    if (!(c = calloc(1, sizeof(*c))) ||
        !(c->v = calloc(ks_catalog_count ? ks_catalog_count : 1, sizeof(*c->v)))) {
        rc = ks_err_set(err, KS_ENOMEM, 0, NULL, "out of memory");
        goto out;
    }
    for (; c->n < ks_catalog_count; c->n++) {
        if ((rc = load_entry(&c->v[c->n], &ks_catalog[c->n], err)) != KS_OK) {
            c->n++;
            goto out;
        }
        for (size_t j = 0; j < c->n; j++) {
            const struct ks_schema *a = &c->v[j], *b = &c->v[c->n];
            if (a->fp == b->fp && strcmp(a->pcf, b->pcf) != 0) {
                rc = ks_err_set(err, KS_ESCHEMA, 0, b->name,
                                "fingerprint of %s v%d collides with %s v%d", b->name,
                                b->version, a->name, a->version);
                c->n++;
                goto out;
            }
        }
    }
    __atomic_store_n(&cat, c, __ATOMIC_RELEASE);
    c = NULL;
out:
    pthread_mutex_unlock(&cat_lock);
    catalog_free(c);
    return rc;
}

void ks_serde_shutdown(void)
{
    pthread_mutex_lock(&cat_lock);
    struct catalog *c = catalog_get();
    __atomic_store_n(&cat, NULL, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&cat_lock);
    catalog_free(c);
}

const struct ks_schema *ks_schema_by_name(const char *fullname)
{
    const struct catalog *c = catalog_get();
    const struct ks_schema *best = NULL;
    for (size_t i = 0; c && fullname && i < c->n; i++)
        if (strcmp(c->v[i].name, fullname) == 0 && (!best || c->v[i].version > best->version))
            best = &c->v[i];
    return best;
}

const struct ks_schema *ks_schema_by_fingerprint(uint64_t fp)
{
    const struct catalog *c = catalog_get();
    for (size_t i = 0; c && i < c->n; i++)
        if (c->v[i].fp == fp)
            return &c->v[i];
    return NULL;
}

const char *ks_schema_name(const struct ks_schema *s)
{
    return s->name;
}

uint64_t ks_schema_fingerprint(const struct ks_schema *s)
{
    return s->fp;
}

int ks_schema_version(const struct ks_schema *s)
{
    return s->version;
}

const char *ks_schema_json(const struct ks_schema *s)
{
    return s->json;
}

const char *ks_schema_canonical_form(const struct ks_schema *s)
{
    return s->pcf;
}

size_t ks_schema_count(void)
{
    const struct catalog *c = catalog_get();
    return c ? c->n : 0;
}

const struct ks_schema *ks_schema_at(size_t i)
{
    const struct catalog *c = catalog_get();
    return c && i < c->n ? &c->v[i] : NULL;
}

/* ---- the API --------------------------------------------------------------------------- */

#define HEADER_LEN 10

enum ks_code ks_serde_encode(const struct ks_schema *s, const json_t *obj, void **out,
                             size_t *outlen, struct ks_err *err)
{
    struct ks_buf b = {0};
    char path[256] = "";

    if (!s || !obj || !out || !outlen)
        return ks_err_set(err, KS_EINVAL, 0, NULL, "schema, object and output are required");
    if (!ks_buf_room(&b, 256))
        return ks_err_set(err, KS_ENOMEM, 0, NULL, "out of memory");
    b.p[0] = 0xC3;
    b.p[1] = 0x01;
    for (int i = 0; i < 8; i++)
        b.p[2 + i] = (uint8_t)(s->fp >> (8 * i));
    b.len = HEADER_LEN;
    if (encode_value(&b, s->model.root, obj, false, err, path, 0, 0) != 0) {
        free(b.p);
        return err ? err->code : KS_EINVAL;
    }
    if (b.oom) {
        free(b.p);
        return ks_err_set(err, KS_ENOMEM, 0, NULL, "out of memory");
    }
    *out = b.p;
    *outlen = b.len;
    return KS_OK;
}

enum ks_code ks_serde_peek(const void *buf, size_t len, const struct ks_schema **writer,
                           struct ks_err *err)
{
    const uint8_t *p = buf;
    uint64_t fp = 0;

    if (!catalog_get())
        return ks_err_set(err, KS_ESTATE, 0, NULL, "serde is not initialized");
    if (!p || len < HEADER_LEN)
        return ks_err_set(err, KS_EPOISON, 0, NULL,
                          "message too short for a single-object header (%zu bytes)", len);
    if (p[0] != 0xC3 || p[1] != 0x01)
        return ks_err_set(err, KS_EPOISON, 0, NULL,
                          "bad magic 0x%02x%02x (not Avro single-object encoding)", p[0], p[1]);
    for (int i = 0; i < 8; i++)
        fp |= (uint64_t)p[2 + i] << (8 * i);
    const struct ks_schema *s = ks_schema_by_fingerprint(fp);
    if (!s)
        return ks_err_set(err, KS_EPOISON, 0, NULL, "unknown schema fingerprint %016llx",
                          (unsigned long long)fp);
    if (writer)
        *writer = s;
    return KS_OK;
}

/* Decodes the body into root (a new object when NULL). */
static enum ks_code decode_message(const void *buf, size_t len, const struct ks_schema **writer,
                                   json_t *root, json_t **out, struct ks_err *err)
{
    const struct ks_schema *s;
    enum ks_code rc = ks_serde_peek(buf, len, &s, err);
    if (rc != KS_OK) {
        json_decref(root);
        return rc;
    }
    struct dec d = {.p = (const uint8_t *)buf + HEADER_LEN, .end = (const uint8_t *)buf + len};
    json_t *j = decode_record(&d, s->model.root, root, 0);
    if (!j)
        return ks_err_set(err, d.msg ? KS_EPOISON : KS_ENOMEM, 0, d.field,
                          "body does not decode as %s: %s%s%s", s->name,
                          d.msg ? d.msg : "out of memory", d.field ? " at field " : "",
                          d.field ? d.field : "");
    if (d.p != d.end) {
        json_decref(j);
        return ks_err_set(err, KS_EPOISON, 0, NULL, "%zu trailing bytes after the %s body",
                          (size_t)(d.end - d.p), s->name);
    }
    if (writer)
        *writer = s;
    *out = j;
    return KS_OK;
}

enum ks_code ks_serde_decode(const void *buf, size_t len, const struct ks_schema **writer,
                             json_t **out, struct ks_err *err)
{
    if (!out)
        return ks_err_set(err, KS_EINVAL, 0, NULL, "output is required");
    return decode_message(buf, len, writer, NULL, out, err);
}

char *ks_serde_to_json_text(const void *buf, size_t len, struct ks_err *err)
{
    const struct ks_schema *s;
    json_t *root = NULL, *j = NULL;
    char *text = NULL;

    if (ks_serde_peek(buf, len, &s, err) != KS_OK)
        return NULL;
    if (!(root = json_object()) || json_object_set_new(root, "$schema", json_string(s->name))) {
        json_decref(root);
        ks_err_set(err, KS_ENOMEM, 0, NULL, "out of memory");
        return NULL;
    }
    if (decode_message(buf, len, NULL, root, &j, err) != KS_OK)
        return NULL;
    if (!(text = json_dumps(j, JSON_COMPACT)))
        ks_err_set(err, KS_ENOMEM, 0, NULL, "out of memory");
    json_decref(j);
    return text;
}
