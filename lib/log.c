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

#include "hash.h"
#include "jsonw.h"
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

/* Field names are checked on every line: the name is lowercased once and each word found
 * with strstr. A name too long for the buffer is treated as secret. */
static int name_is_secret_uncached(const char *name, size_t nl)
{
    char low[128];
    size_t i;

    if (nl >= sizeof(low))
        return 1;
    for (i = 0; i <= nl; i++) /* ASCII only: the same whatever the locale */
        low[i] = name[i] >= 'A' && name[i] <= 'Z' ? (char)(name[i] | 0x20) : name[i];
    for (i = 0; i < sizeof(secret_words) / sizeof(secret_words[0]); i++)
        if (strstr(low, secret_words[i]))
            return 1;
    for (const char *seg = low; *seg;) {
        size_t sl = strcspn(seg, "_.-");
        for (i = 0; i < sizeof(secret_segments) / sizeof(secret_segments[0]); i++)
            if (sl == strlen(secret_segments[i]) && memcmp(seg, secret_segments[i], sl) == 0)
                return 1;
        seg += sl;
        if (*seg)
            seg++;
    }
    return 0;
}

/* The full check is ~20 strstr calls a field, a dozen fields a request line: the answers
 * are kept per thread, keyed by the name's text (compared whole, never by pointer: a
 * caller may build names in a reused buffer), in a small direct-mapped table. */
#define NAME_CACHE_SLOTS 64
#define NAME_CACHE_LEN 32
struct name_cache_slot {
    char name[NAME_CACHE_LEN]; /* "" when empty */
    int secret;
};
static _Thread_local struct name_cache_slot name_cache[NAME_CACHE_SLOTS];

static int name_is_secret(const char *name)
{
    size_t nl = strlen(name);
    uint32_t h = ks_hash_mem(KS_HASH_INIT, name, nl);
    struct name_cache_slot *slot;

    if (nl == 0 || nl >= NAME_CACHE_LEN)
        return name_is_secret_uncached(name, nl);
    slot = &name_cache[h % NAME_CACHE_SLOTS];
    if (memcmp(slot->name, name, nl + 1) == 0)
        return slot->secret;
    slot->secret = name_is_secret_uncached(name, nl);
    memcpy(slot->name, name, nl + 1);
    return slot->secret;
}

/* Appends ,"name":"value" or nothing at all. */
static void line_field(struct ks_jw *l, const char *name, const char *value)
{
    size_t start = l->len;

    if (ks_jw_put(l, ",", 1) != 0 || ks_jw_quote(l, name) != 0 || ks_jw_put(l, ":", 1) != 0 ||
        ks_jw_quote(l, value) != 0)
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

static _Thread_local time_t ts_sec = -1;
static _Thread_local char ts_text[40];

/* fields is NULL (no fields) or a va_list of name/value pairs ending with a NULL name. */
static void emit(enum ks_log_level lvl, const char *event, const char *msg, va_list *fields)
{
    char stack[2048];
    struct ks_jw l;
    char frac[8];
    struct timespec now;
    struct tm tm;
    int li = (int)lvl, ms;

    if (li < KS_LOG_DEBUG || li > KS_LOG_ERROR)
        li = KS_LOG_ERROR;
    clock_gettime(CLOCK_REALTIME, &now);
    /* the date and time to the second change once a second: formatted then, per thread */
    if (now.tv_sec != ts_sec) {
        gmtime_r(&now.tv_sec, &tm);
        strftime(ts_text, sizeof(ts_text), "%Y-%m-%dT%H:%M:%S", &tm);
        ts_sec = now.tv_sec;
    }
    ms = (int)(now.tv_nsec / 1000000) % 1000;
    frac[0] = '.';
    frac[1] = (char)('0' + ms / 100);
    frac[2] = (char)('0' + ms / 10 % 10);
    frac[3] = (char)('0' + ms % 10);
    frac[4] = 'Z';
    frac[5] = 0;

    /* the first four fields always fit the stack buffer */
    ks_jw_init(&l, stack, sizeof(stack));
    ks_jw_raw(&l, "{\"ts\":\"");
    ks_jw_raw(&l, ts_text);
    ks_jw_raw(&l, frac);
    ks_jw_raw(&l, "\",\"level\":\"");
    ks_jw_raw(&l, level_names[li]);
    ks_jw_raw(&l, "\"");
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
        ks_jw_tail(&l, ",\"log_truncated\":\"true\"");
    ks_jw_tail(&l, "}\n");
    write_all(atomic_load(&log_fd), l.p, l.len);
    ks_jw_free(&l);
}

int ks_log_enabled(enum ks_log_level lvl)
{
    return (int)lvl >= atomic_load(&log_min);
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
