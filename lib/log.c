/* log.c - see log.h.
 *
 * A line is built in memory (on the stack when it fits, else on the heap) and leaves with
 * one write(2): lines from different threads never interleave, and writes of up to
 * PIPE_BUF bytes to a pipe are atomic even across processes. If memory runs out while a
 * long line grows, the fields that fit are kept and "log_truncated":"true" ends the line,
 * so a line is always valid JSON.
 *
 * Values are arbitrary bytes (request fields, PSP answers): control characters are
 * escaped and invalid UTF-8 is replaced by U+FFFD, so every line parses as JSON. */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#include "banned.h"

static char log_svc[64] = "kasir";
static atomic_int log_min = KS_LOG_INFO;
static atomic_int log_fd = 2;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

/* Substrings of a field name (compared case-insensitively) that mark it as secret. Wide on
 * purpose: a redacted idempotency_key costs a little debugging, a logged API key costs a
 * rotation and an incident. */
static const char *const secret_words[] = {
    "key", "secret", "token", "password", "passwd", "authorization", "auth", "signature",
    "card", "cvv", "cvc", "credential", "cookie", "jwt",
};
/* Short words that are only secret as a whole segment of the name (split at '_', '.',
 * '-'): "pan" is a card number, "company" or "span" are not. */
static const char *const secret_segments[] = {"pan", "pin", "sig"};

void ks_log_init(const char *svc, enum ks_log_level min)
{
    snprintf(log_svc, sizeof(log_svc), "%s", svc ? svc : "kasir");
    atomic_store(&log_min, (int)min);
}

int ks_log_level_parse(const char *s)
{
    if (!s)
        return -1;
    for (int i = 0; i < (int)(sizeof(level_names) / sizeof(level_names[0])); i++)
        if (strcasecmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

void ks_log_set_fd(int fd)
{
    atomic_store(&log_fd, fd);
}

static int name_is_secret(const char *name)
{
    size_t nl = strlen(name);

    for (size_t i = 0; i < sizeof(secret_words) / sizeof(secret_words[0]); i++) {
        size_t wl = strlen(secret_words[i]);
        for (size_t j = 0; j + wl <= nl; j++)
            if (strncasecmp(name + j, secret_words[i], wl) == 0)
                return 1;
    }
    for (const char *seg = name; *seg;) {
        size_t sl = strcspn(seg, "_.-");
        for (size_t i = 0; i < sizeof(secret_segments) / sizeof(secret_segments[0]); i++)
            if (sl == strlen(secret_segments[i]) && strncasecmp(seg, secret_segments[i], sl) == 0)
                return 1;
        seg += sl;
        if (*seg)
            seg++;
    }
    return 0;
}

/* A growable line buffer that starts on the stack. */
struct line {
    char *p;
    size_t len, cap;
    int heap;  /* p is malloc'd */
    int full;  /* an allocation failed: further appends are dropped */
};

/* Appends n bytes; 0 on success, -1 when the line cannot grow. */
static int line_put(struct line *l, const char *s, size_t n)
{
    if (l->full)
        return -1;
    if (l->len + n + 64 > l->cap) {
        /* 64 bytes stay in reserve for the closing marker and "}\n" */
        size_t ncap = l->cap * 2;
        char *np;
        while (ncap < l->len + n + 64)
            ncap *= 2;
        np = l->heap ? realloc(l->p, ncap) : malloc(ncap);
        if (!np) {
            l->full = 1;
            return -1;
        }
        if (!l->heap)
            memcpy(np, l->p, l->len);
        l->p = np;
        l->cap = ncap;
        l->heap = 1;
    }
    memcpy(l->p + l->len, s, n);
    l->len += n;
    return 0;
}

static int line_str(struct line *l, const char *s)
{
    return line_put(l, s, strlen(s));
}

/* Appends the end of the line into the reserve that line_put keeps: cannot fail. */
static void line_tail(struct line *l, const char *s)
{
    size_t n = strlen(s);

    memcpy(l->p + l->len, s, n);
    l->len += n;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if the bytes there are not one
 * (overlong forms, surrogates and code points above U+10FFFF are invalid). */
static size_t utf8_seq(const unsigned char *s)
{
    unsigned char c = s[0];

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        return (s[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        unsigned char lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
        return s[1] >= lo && s[1] <= hi && (s[2] & 0xc0) == 0x80 ? 3 : 0;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        unsigned char lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
        return s[1] >= lo && s[1] <= hi && (s[2] & 0xc0) == 0x80 && (s[3] & 0xc0) == 0x80
                   ? 4
                   : 0;
    }
    return 0;
}

/* Appends s as a JSON string, quotes included. The whole string goes in or nothing. */
static int line_json(struct line *l, const char *s)
{
    size_t start = l->len;
    const unsigned char *p = (const unsigned char *)s;
    int rc = line_put(l, "\"", 1);

    while (rc == 0 && *p) {
        const unsigned char *run = p;
        size_t n;
        /* copy plain runs in one go */
        while (*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\')
            p++;
        if (p > run)
            rc = line_put(l, (const char *)run, (size_t)(p - run));
        if (rc != 0 || !*p)
            break;
        if (*p == '"' || *p == '\\') {
            char esc[2] = {'\\', (char)*p};
            rc = line_put(l, esc, 2);
            p++;
        } else if (*p < 0x20 || *p == 0x7f) {
            char esc[8];
            switch (*p) {
            case '\n': rc = line_put(l, "\\n", 2); break;
            case '\r': rc = line_put(l, "\\r", 2); break;
            case '\t': rc = line_put(l, "\\t", 2); break;
            case '\b': rc = line_put(l, "\\b", 2); break;
            case '\f': rc = line_put(l, "\\f", 2); break;
            default:
                snprintf(esc, sizeof(esc), "\\u%04x", *p);
                rc = line_put(l, esc, 6);
            }
            p++;
        } else if ((n = utf8_seq(p)) > 0) {
            rc = line_put(l, (const char *)p, n);
            p += n;
        } else {
            rc = line_put(l, "\\ufffd", 6);
            p++;
        }
    }
    if (rc == 0)
        rc = line_put(l, "\"", 1);
    if (rc != 0)
        l->len = start;
    return rc;
}

/* Appends ,"name":"value" or nothing at all. */
static void line_field(struct line *l, const char *name, const char *value)
{
    size_t start = l->len;

    if (line_put(l, ",", 1) != 0 || line_json(l, name) != 0 || line_put(l, ":", 1) != 0 ||
        line_json(l, value) != 0)
        l->len = start;
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return; /* nowhere left to report a failing log */
        }
        p += w;
        n -= (size_t)w;
    }
}

/* fields is NULL (no fields) or a va_list of name/value pairs ending with a NULL name. */
static void emit(enum ks_log_level lvl, const char *event, const char *msg, va_list *fields)
{
    char stack[2048];
    struct line l = {stack, 0, sizeof(stack), 0, 0};
    char ts[40], frac[8];
    struct timespec now;
    struct tm tm;
    int li = (int)lvl;

    if (li < KS_LOG_DEBUG || li > KS_LOG_ERROR)
        li = KS_LOG_ERROR;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(frac, sizeof(frac), ".%03dZ", (int)(now.tv_nsec / 1000000) % 1000);

    /* the first four fields always fit the stack buffer */
    line_str(&l, "{\"ts\":\"");
    line_str(&l, ts);
    line_str(&l, frac);
    line_str(&l, "\",\"level\":\"");
    line_str(&l, level_names[li]);
    line_str(&l, "\"");
    line_field(&l, "svc", log_svc);
    line_field(&l, "event", event ? event : "");
    if (fields) {
        const char *name, *value;
        while ((name = va_arg(*fields, const char *)) != NULL) {
            value = va_arg(*fields, const char *);
            if (!value)
                continue;
            line_field(&l, name, name_is_secret(name) ? "[redacted]" : value);
        }
    }
    if (msg)
        line_field(&l, "msg", msg);
    if (l.full)
        line_tail(&l, ",\"log_truncated\":\"true\"");
    line_tail(&l, "}\n");
    write_all(atomic_load(&log_fd), l.p, l.len);
    if (l.heap)
        free(l.p);
}

void ks_log(enum ks_log_level lvl, const char *event, const char *msg, ...)
{
    va_list ap;

    if ((int)lvl < atomic_load(&log_min))
        return;
    va_start(ap, msg);
    emit(lvl, event, msg, &ap);
    va_end(ap);
}

void ks_logf(enum ks_log_level lvl, const char *event, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;

    if ((int)lvl < atomic_load(&log_min))
        return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    emit(lvl, event, buf, NULL);
}
