/* log.h - one JSON object per line on stderr: ts, level, svc, event, then fields, then msg.
 *
 * event is a stable dotted name ("ingress.request", "worker.batch.committed"). Fields that
 * are absent (NULL value) are omitted. Strings are JSON-escaped. The logger never writes a
 * field whose name looks like a secret (key, secret, token, password, authorization,
 * signature, card, pan, cvv): such fields are written as "[redacted]".
 * Thread-safe: each line goes out with one write(2). */
#ifndef KS_LOG_H
#define KS_LOG_H

enum ks_log_level { KS_LOG_DEBUG, KS_LOG_INFO, KS_LOG_WARN, KS_LOG_ERROR };

/* Sets the service name (e.g. "ingress") and the minimum level; call once from main(). */
void ks_log_init(const char *svc, enum ks_log_level min);
/* Parses "debug" | "info" | "warn" | "error"; -1 if none. */
int ks_log_level_parse(const char *s);
/* 1 when lines of level lvl are written: for callers whose fields cost work to make. */
int ks_log_enabled(enum ks_log_level lvl);
/* Redirects output to fd (default 2). For tests. */
void ks_log_set_fd(int fd);

/* fields: name/value string pairs ending with NULL; a NULL value omits the field;
 * msg may be NULL. Example:
 *   ks_log(KS_LOG_INFO, "worker.batch.committed", "batch committed",
 *          "topic", t, "trace_id", tid, NULL); */
void ks_log(enum ks_log_level lvl, const char *event, const char *msg, ...)
    __attribute__((sentinel));

/* Same, with printf-style msg and no fields. */
void ks_logf(enum ks_log_level lvl, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
