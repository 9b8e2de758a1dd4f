/* jsonw.h - a small JSON text writer for hot paths.
 *
 * Builds compact JSON straight into a growable buffer, without a tree: the ingress writes
 * several documents per request (idempotency claims, finishes, responses) and building
 * them as jansson trees only to serialize them again was a tenth of its CPU. Log lines
 * (log.c) use it too.
 *
 * The buffer may start on the caller's stack; it moves to the heap when it grows. If an
 * allocation fails the writer turns "full": later appends are dropped and ks_jw_take
 * returns NULL, so a caller checks once, at the end.
 *
 * Strings are arbitrary bytes: control characters are escaped and invalid UTF-8 becomes
 * U+FFFD, so the output always parses as JSON.
 *
 *   struct ks_jw w;
 *   ks_jw_init(&w, NULL, 0);
 *   ks_jw_open(&w, NULL);                 {
 *   ks_jw_str(&w, "id", id);              "id":"..."
 *   ks_jw_int(&w, "amount_minor", 15000); ,"amount_minor":15000
 *   ks_jw_open_array(&w, "orders");       ,"orders":[
 *   ks_jw_open(&w, NULL); ... ks_jw_close(&w, '}');
 *   ks_jw_close(&w, ']');
 *   ks_jw_close(&w, '}');
 *   char *s = ks_jw_take(&w, &len);       malloc'd, NUL-terminated; NULL if full */
#ifndef KS_JSONW_H
#define KS_JSONW_H

#include <stddef.h>
#include <stdint.h>

/* Bytes ks_jw_put always leaves free at the end, for ks_jw_tail. */
#define KS_JW_RESERVE 64

struct ks_jw {
    char *p;
    size_t len, cap;
    int heap;  /* p is malloc'd */
    int full;  /* an allocation failed: further appends are dropped */
    int comma; /* the next member or element needs a ',' before it */
};

/* stack (cap bytes) may be NULL/0: the buffer then starts on the heap when first used. */
void ks_jw_init(struct ks_jw *w, char *stack, size_t cap);
/* Frees a heap buffer; the writer is empty afterwards. */
void ks_jw_free(struct ks_jw *w);

/* Raw bytes; 0, or -1 when the buffer cannot grow (nothing appended). */
int ks_jw_put(struct ks_jw *w, const char *s, size_t n);
int ks_jw_raw(struct ks_jw *w, const char *s);
/* Appends into the reserve: cannot fail, at most KS_JW_RESERVE bytes in all. */
void ks_jw_tail(struct ks_jw *w, const char *s);
/* s as a JSON string, quotes included; all of it or nothing. */
int ks_jw_quote(struct ks_jw *w, const char *s);
/* The same for len bytes at s, which may hold NULs (written as \u0000). */
int ks_jw_quoten(struct ks_jw *w, const char *s, size_t len);

/* Members (name non-NULL) or array elements (name NULL); commas are handled. */
void ks_jw_open(struct ks_jw *w, const char *name);       /* {  */
void ks_jw_open_array(struct ks_jw *w, const char *name); /* [  */
void ks_jw_close(struct ks_jw *w, char c);                /* '}' or ']' */
void ks_jw_str(struct ks_jw *w, const char *name, const char *v); /* NULL v: null */
void ks_jw_strn(struct ks_jw *w, const char *name, const char *v, size_t len); /* the same */
void ks_jw_int(struct ks_jw *w, const char *name, int64_t v);
/* len bytes of data as a base64 (RFC 4648 4, padded) JSON string */
void ks_jw_b64(struct ks_jw *w, const char *name, const void *data, size_t len);
/* json is a complete JSON text, copied as it is */
void ks_jw_json(struct ks_jw *w, const char *name, const char *json);

/* The text, malloc'd and NUL-terminated (the writer is left empty), or NULL when full or
 * out of memory. len may be NULL. */
char *ks_jw_take(struct ks_jw *w, size_t *len);

/* 1 if the n bytes at s are valid UTF-8 (no overlong forms, surrogates or code points
 * above U+10FFFF), as jansson requires of every string it stores. */
int ks_utf8_valid(const char *s, size_t n);
/* The length of s's longest prefix of at most max bytes that does not cut a character of
 * UTF-8 s in two: for printf's "%.*s" where text is shortened to fit. */
size_t ks_utf8_prefix(const char *s, size_t max);
/* Length of s without a character its end cuts short: for text a fixed buffer has already
 * cut (snprintf), where ks_utf8_prefix cannot see the bytes that were left out. The longest
 * prefix that is valid UTF-8 (the whole of s when it is). */
size_t ks_utf8_uncut(const char *s);

#endif
