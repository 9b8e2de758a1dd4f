/* config.h - settings from a table: name, type, default, required, description.
 *
 * A daemon declares a static table of struct ks_config_def; ks_config_load reads an
 * optional file of "name = value" lines (# comments), then environment variables
 * KASIR_<NAME upper-cased, '.' -> '_'> override it. Every bad setting (unknown name in the
 * file, malformed value, missing required) is reported at once in a list, not one at a
 * time. Names starting with "kafka." are librdkafka properties: they pass straight
 * through (ks_config_kafka_props). docs/CONFIG.md is generated from the tables by
 * ks_config_markdown. */
#ifndef KS_CONFIG_H
#define KS_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"

enum ks_config_type { KS_CFG_STRING, KS_CFG_INT, KS_CFG_BOOL, KS_CFG_DURATION_MS };

struct ks_config_def {
    const char *name;        /* "pg.dsn", "http.port" */
    enum ks_config_type type;
    const char *def;         /* default as text, or NULL for none */
    int required;            /* 1: must be set (file, env or default) */
    const char *description; /* one line for docs/CONFIG.md */
};

struct ks_config; /* opaque */

/* Loads defs (n entries) from path (NULL: no file) and the environment. On failure
 * returns NULL, KS_ECONFIG in err, and writes one line per problem to *problems (a
 * malloc'd string the caller frees; may be NULL if problems is NULL). Durations accept
 * "250ms", "5s", "1m", "2h" or a plain number of milliseconds. */
struct ks_config *ks_config_load(const struct ks_config_def *defs, size_t n,
                                 const char *path, char **problems, struct ks_err *err);
void ks_config_free(struct ks_config *cfg);

/* Values; the name must be in the table (else "" / 0). Strings live as long as cfg. */
const char *ks_config_str(const struct ks_config *cfg, const char *name);
int64_t ks_config_int(const struct ks_config *cfg, const char *name);
int ks_config_bool(const struct ks_config *cfg, const char *name);
int64_t ks_config_ms(const struct ks_config *cfg, const char *name);

/* Calls fn for every "kafka.*" setting found in file or environment (KASIR_KAFKA_...
 * env names map '_' back to '.'), with the "kafka." prefix removed. */
void ks_config_kafka_props(const struct ks_config *cfg,
                           void (*fn)(const char *prop, const char *value, void *opaque),
                           void *opaque);

/* Writes a Markdown table of defs under a "## title" heading. */
void ks_config_markdown(FILE *out, const char *title, const struct ks_config_def *defs,
                        size_t n);

/* The settings every daemon has (pg.dsn, kafka.brokers, log.level, http.port,
 * instance.id); a daemon's table contains these rows as well as its own. Table names are
 * typed settings even when they start with "kafka." (kafka.brokers): they are not passed
 * through by ks_config_kafka_props. When a table has "log.level", its value must be one
 * that ks_log_level_parse accepts, else it is reported like any other bad setting. */
extern const struct ks_config_def ks_common_settings[];
extern const size_t ks_common_settings_count;

/* For main(): loads like ks_config_load and initializes the logger (ks_log_init) with svc
 * and the table's log.level (info when the table has none). On problems, writes each as
 * one JSON log line on stderr (event "config.invalid", fields "setting" and "source" when
 * known, msg the reason) and returns NULL; main() then exits with status 2. The caller
 * frees the result with ks_config_free. */
struct ks_config *ks_config_load_main(const char *svc, const struct ks_config_def *defs,
                                      size_t n, const char *path);

#endif
