/* err.h - errors that travel: a code, a retriable flag, a field and a message.
 *
 * Functions that can fail return an enum ks_code and fill a caller-owned struct ks_err.
 * On success the struct is left untouched. lib/ never exits or aborts: the caller (in the
 * end main() or the worker runtime) decides between retry, dead-letter and exit.
 * The enum is append-only: codes are logged, stored and put on DLQ headers by name. */
#ifndef KS_ERR_H
#define KS_ERR_H

#include <stdarg.h>

enum ks_code {
    KS_OK = 0,
    KS_EINVAL,     /* bad input: a field has a wrong value or form; never retriable */
    KS_ENOMEM,     /* allocation failed */
    KS_ERANGE,     /* a value is out of its allowed bounds */
    KS_EOVERFLOW,  /* arithmetic would overflow */
    KS_EIO,        /* file or socket I/O */
    KS_EDB,        /* PostgreSQL error (retriable when the server is unreachable) */
    KS_EKAFKA,     /* Kafka client error */
    KS_ETIMEOUT,   /* an operation took too long; the outcome may be unknown */
    KS_ENOTFOUND,  /* no such object (or not visible to the caller) */
    KS_ECONFLICT,  /* a uniqueness or state conflict */
    KS_EAUTH,      /* authentication or signature check failed */
    KS_EPOISON,    /* a message that can never be processed: undecodable, unknown schema */
    KS_ESCHEMA,    /* an Avro schema is malformed or does not match */
    KS_EPSP,       /* a payment service provider answered with an error */
    KS_ECONFIG,    /* a setting is missing or malformed */
    KS_EFORBIDDEN, /* authenticated, but not allowed */
    KS_ESTATE,     /* the object's state does not allow the operation */
    KS__CODE_COUNT
};

struct ks_err {
    enum ks_code code;
    int retriable;  /* 1: the same call may succeed later (timeouts, unreachable server) */
    char field[64]; /* the input field at fault ("payment_orders[2].amount"), or "" */
    char msg[256];  /* lower case, no period, says the reason */
};

/* Fills err (if not NULL) and returns code. field may be NULL. */
enum ks_code ks_err_set(struct ks_err *err, enum ks_code code, int retriable,
                        const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
enum ks_code ks_err_vset(struct ks_err *err, enum ks_code code, int retriable,
                         const char *field, const char *fmt, va_list ap);

/* Resets err to KS_OK with empty strings. */
void ks_err_clear(struct ks_err *err);

/* The stable lower-case name of a code ("invalid", "db", "poison", ...); "unknown" if out of range. */
const char *ks_code_name(enum ks_code code);

#endif
