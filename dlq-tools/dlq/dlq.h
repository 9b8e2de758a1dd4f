/* dlq.h - kasir-dlq's pieces: options, one dead letter's view, PostgreSQL state, commands.
 *
 * main.c parses the command line and runs a command; msg.c reads a dead letter's headers,
 * matches filters and prints; store.c holds every statement against PostgreSQL (audit,
 * replay and resolve marks, parked outbox rows); replay.c is replay and resolve.
 * Exit codes (README "Exit codes"): 0 done, 1 failed (Kafka or PostgreSQL, or some copies
 * not delivered: rerun), 2 bad arguments or settings, 3 interrupted (what was confirmed
 * is recorded: rerun to carry on). */
#ifndef KS_DLQ_H
#define KS_DLQ_H

#include <signal.h>
#include <stdint.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#include "lib/config.h"
#include "lib/db.h"
#include "lib/err.h"
#include "lib/ids.h"
#include "lib/scan.h"

enum { DLQ_EXIT_OK = 0, DLQ_EXIT_FAIL = 1, DLQ_EXIT_USAGE = 2, DLQ_EXIT_INTERRUPTED = 3 };

/* states of a dead letter (bits, for --status); DLQ_LATE marks a resolve that a replay's
 * dlq_marks_refresh found, i.e. made while the replay ran (it counts them) */
enum { DLQ_OPEN = 1, DLQ_REPLAYED = 2, DLQ_RESOLVED = 4, DLQ_ANY = 7, DLQ_LATE = 8 };

struct dlq_hdr {
    char *name, *value;
};
struct dlq_ref { /* <dlq topic>:<partition>:<offset> */
    char *topic;
    int32_t partition;
    int64_t offset;
};
/* "<topic>:<partition>:<offset>" (a positional ref, a copy's kasir.replay.ref) -> r, its
 * topic allocated; -1 when s is not one */
int dlq_ref_parse(const char *s, struct dlq_ref *r);

struct dlq_opts {
    char **dlqs;     /* --dlq: DLQ topics to read; none: every topic named *.dlq */
    size_t ndlqs;
    char **errors;   /* --error: error classes */
    size_t nerrors;
    char **origins;  /* --topic: origin topics */
    size_t norigins;
    int64_t since, until; /* dead-lettered at or after / before (ms); -1: none */
    const char *key;
    struct dlq_hdr *hdrs; /* --header name=value, all must match */
    size_t nhdrs;
    struct dlq_ref *refs; /* positional refs: only these messages */
    size_t nrefs;
    int status;      /* DLQ_* bits wanted; 0: the command's default */
    long limit;      /* -1: none */
    int json, raw, quiet, dry_run, again, all;
    const char *to, *by, *note, *worker, *audit_id;
    double rate;     /* messages per second; 0: as fast as possible */
    long batch;      /* progress records per round trip */
    int64_t *ids;    /* parked: --id */
    size_t nids;
};

struct dlq_marks; /* replay and resolve marks of the DLQ topics read, from PostgreSQL */

struct dlq_ctx {
    struct ks_config *cfg;
    const char *brokers;
    struct ks_db *db;        /* NULL when PostgreSQL is not needed or not reachable */
    struct dlq_marks *marks; /* NULL without db */
    struct dlq_opts o;
    char actor[256];         /* who: --by, else KASIR_DLQ_ACTOR, else user@host */
    int lock;                /* replay: lock the DLQ topics before reading their marks */
};

extern volatile sig_atomic_t dlq_stop; /* set by SIGINT/SIGTERM */

/* One dead letter: the record and its kasir.* headers, copied out (truncated to fit). */
struct dlq_msg {
    rd_kafka_message_t *rkm; /* owned by the caller of dlq_next */
    const char *dlq;         /* DLQ topic */
    int32_t partition;
    int64_t offset, ts;      /* ts: when it was dead-lettered (record timestamp, ms) */
    char message_id[256];
    char origin[256];        /* kasir.origin.topic, else the DLQ topic minus ".dlq" */
    int origin_foreign;      /* the header names another topic than T of the DLQ T.dlq:
                              * shown and filtered on, never followed by replay */
    int32_t origin_partition;
    int64_t origin_offset, origin_ts;
    char cls[32], code[32], field[128], group[256], instance[256], msg[1024];
    int attempt;
    int64_t first_failure, last_failure;
    int state;               /* DLQ_OPEN / _REPLAYED / _RESOLVED bits; 0 unknown */
};

/* msg.c */
/* 1 when name is a dead-letter topic's, as the runtime names them (lib/worker_fail.c: the DLQ
 * of topic T is T.dlq); *olen is then the length of its origin T (0 for ".dlq" itself) */
int dlq_topic_origin(const char *name, size_t len, size_t *olen);
/* 1 when a replay may write to this topic: a legal Kafka topic name ([a-zA-Z0-9._-], 1-249),
 * not a dead-letter topic (a DLQ is evidence, written only by the workers: neither a header
 * nor --to makes the tool forge dead letters) and not an internal topic (__*). A header
 * naming another is ignored (the DLQ's own name minus ".dlq" is used); --to another is
 * refused */
int dlq_target_ok(const void *v, size_t len);
void dlq_msg_parse(struct dlq_msg *d, rd_kafka_message_t *rkm);
/* 1 when d passes every filter of o except status */
int dlq_msg_match(const struct dlq_opts *o, const struct dlq_msg *d);
/* opens the scan of the selected DLQ topics (refs narrow it to their partitions) */
struct ks_scan *dlq_scan_open(struct dlq_ctx *c, struct ks_err *err);
/* next dead letter that matches the filters and the wanted states: 1 (d filled; the
 * caller destroys d->rkm), 0 nothing within timeout_ms, -1 end, -2 error */
int dlq_next(struct dlq_ctx *c, struct ks_scan *s, int timeout_ms, struct dlq_msg *d,
             struct ks_err *err);
const char *dlq_state_name(int state);
void dlq_fmt_time(int64_t ms, char *buf, size_t len); /* RFC 3339 UTC, "-" for < 0 */
void dlq_fmt_age(int64_t ms, int64_t now, char *buf, size_t len);
/* bytes as a JSON string: themselves when UTF-8, else each invalid byte as U+FFFD (lib/jsonw's
 * rule) and *exact (may be NULL) set to 0; NULL p: null; NULL when out of memory. JSON
 * output gives such bytes exactly in a sibling member <name>_base64 */
json_t *dlq_text(const void *p, size_t len, int *exact);
/* 1 when s is UTF-8 text (what PostgreSQL's text takes) */
int dlq_utf8(const char *s);
/* 1 when s is UTF-8 text without control characters (C0, DEL, C1): an actor, which every
 * operator's terminal shows (audit) and every copy carries */
int dlq_printable(const char *s);
/* NULL when out of memory; every message gets its line, whatever its headers' bytes */
json_t *dlq_msg_json(const struct dlq_msg *d, int full, int raw);
/* writes bytes from a message to stdout for a terminal: control characters and bytes that
 * are not UTF-8 as \\xNN */
void dlq_tty_put(const char *s, size_t len);
/* the same into out, cut to fit cap (a table cell) */
const char *dlq_tty_str(const char *s, char *out, size_t cap);
void dlq_print_row_header(void);
void dlq_print_row(const struct dlq_msg *d, int64_t now);
void dlq_print_full(const struct dlq_msg *d, int raw);
json_t *dlq_filters_json(const struct dlq_opts *o);
int64_t dlq_now_ms(void);
/* writes j compact + '\n' on stdout and decrefs it; NULL (out of memory) is reported and
 * sets dlq_output_failed, which fails the command */
void dlq_json_line(json_t *j);
extern int dlq_output_failed;

/* store.c: every statement against PostgreSQL */
struct dlq_marks *dlq_marks_load(PGconn *pg, char **topics, size_t n, struct ks_err *err);
int dlq_marks_get(const struct dlq_marks *mk, const char *topic, int32_t partition,
                  int64_t off);
void dlq_marks_free(struct dlq_marks *mk);
/* adds the resolve marks committed since the last refresh (all of them the first time) */
enum ks_code dlq_marks_refresh(PGconn *pg, struct dlq_marks *mk, struct ks_err *err)
    __attribute__((warn_unused_result));
/* replay, around each chunk of copies: takes the resolve lock shared and refreshes mk's
 * resolve marks; leave releases it (store.c, GATE, says why). On a
 * connection of its own: the replay's main one has progress marks in flight. */
enum ks_code dlq_gate_enter(PGconn *pg, struct dlq_marks *mk, struct ks_err *err)
    __attribute__((warn_unused_result));
enum ks_code dlq_gate_leave(PGconn *pg, struct ks_err *err) __attribute__((warn_unused_result));
/* how many of the topics a replay is reading now; the first one's name in first */
int dlq_replays_running(PGconn *pg, char **topics, size_t n, char *first, size_t cap);
/* takes a session lock per DLQ topic for a replay; KS_ECONFLICT when another holds one */
enum ks_code dlq_lock_topics(PGconn *pg, char **topics, size_t n, struct ks_err *err)
    __attribute__((warn_unused_result));
enum ks_code dlq_audit_begin(PGconn *pg, const char *id, const char *action,
                             const char *actor, const json_t *filters, const char *target,
                             const char *note, struct ks_err *err)
    __attribute__((warn_unused_result));
enum ks_code dlq_audit_end(PGconn *pg, const char *id, const char *status, int64_t selected,
                           int64_t failed, struct ks_err *err)
    __attribute__((warn_unused_result));
/* batches of marks: add rows, then write them (one statement, counts added to the audit) */
struct dlq_markbuf;
struct dlq_markbuf *dlq_markbuf_new(void);
void dlq_markbuf_free(struct dlq_markbuf *b);
void dlq_markbuf_add(struct dlq_markbuf *b, const char *topic, int32_t partition, int64_t off,
                     const char *message_id, const char *target);
size_t dlq_markbuf_count(const struct dlq_markbuf *b);
/* write = send + wait; replay sends a batch and keeps producing while PostgreSQL works,
 * waiting for the answer only before the next send */
enum ks_code dlq_markbuf_send(struct dlq_markbuf *b, PGconn *pg, const char *action_id,
                              int resolve, int64_t selected, struct ks_err *err)
    __attribute__((warn_unused_result));
enum ks_code dlq_markbuf_wait(PGconn *pg, struct ks_err *err) __attribute__((warn_unused_result));
enum ks_code dlq_markbuf_write(struct dlq_markbuf *b, PGconn *pg, const char *action_id,
                               int resolve, int64_t selected, struct ks_err *err)
    __attribute__((warn_unused_result));
/* A killed replay (store.c says how): a replay holds dlq_run_lock on its id while it runs;
 * dlq_recovery_begin takes the recovery lock and lists the 'running' replays whose lock is
 * free (the caller frees ids and each id), dlq_recovery_end releases it; dlq_targets_of
 * gives a replay's target partitions from their recorded start offsets (the caller frees
 * each range's topic and the array); dlq_target_record records them before the first copy
 * to a topic; dlq_recover_write records the copies found (b) and finishes the record as
 * interrupted, *added the copies its marks lacked */
enum ks_code dlq_run_lock(PGconn *pg, const char *id, struct ks_err *err)
    __attribute__((warn_unused_result));
enum ks_code dlq_recovery_begin(PGconn *pg, char ***ids, size_t *n, struct ks_err *err)
    __attribute__((warn_unused_result));
void dlq_recovery_end(PGconn *pg);
enum ks_code dlq_targets_of(PGconn *pg, const char *id, struct ks_scan_range **ranges,
                            size_t *n, struct ks_err *err) __attribute__((warn_unused_result));
enum ks_code dlq_target_record(PGconn *pg, const char *id, const char *topic,
                               const int32_t *parts, const int64_t *offs, size_t n,
                               struct ks_err *err) __attribute__((warn_unused_result));
enum ks_code dlq_recover_write(struct dlq_markbuf *b, PGconn *pg, const char *id,
                               int64_t *added, struct ks_err *err)
    __attribute__((warn_unused_result));
int dlq_cmd_audit(struct dlq_ctx *c);
int dlq_cmd_parked(struct dlq_ctx *c);
int dlq_cmd_parked_retry(struct dlq_ctx *c);

/* replay.c */
int dlq_cmd_replay(struct dlq_ctx *c);
/* before a replay reads its marks (after it locked its DLQ topics): the copies of every
 * killed replay are found in its targets and recorded */
enum ks_code dlq_recover(struct dlq_ctx *c, struct ks_err *err) __attribute__((warn_unused_result));
int dlq_cmd_resolve(struct dlq_ctx *c);

#endif
