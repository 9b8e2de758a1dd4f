/* replay.c - kasir-dlq replay and resolve.
 *
 * Replay: copy first, acknowledge after. Each selected dead letter is produced (idempotent
 * producer, acks=all) to its origin topic or --to; only when Kafka's delivery report
 * confirms the copy is its (dlq topic, partition, offset) added to the batch of marks, and
 * a batch goes to kasir_dlq_replayed in one statement (with the audit's count) every
 * --batch confirmations or 500 ms. A rerun skips what is marked. A kill between a
 * delivery and its mark is repaired by the next replay (dlq_recover): every copy names its
 * dead letter (kasir.replay.ref), a replay records its targets' end offsets before its
 * first copy there and holds a lock on its id, and the next one reads a dead replay's
 * copies back from those offsets and marks them, so they are not sent again.
 * Copies are produced in chunks (at most --batch copies or 200 ms, and never across a
 * --rate wait): before a chunk the replay takes the resolve lock shared and reads the
 * resolve marks committed since the last chunk, on a connection of its own, and releases
 * the lock when the chunk is handed to the producer (store.c, GATE): a dead letter
 * resolved while the replay runs is not copied after the resolve commits. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dlq.h"
#include "lib/kafka.h"
#include "lib/headers.h"
#include "lib/ids.h"
#include "lib/pgarr.h"
#include "lib/banned.h"

#define H_REPLAY_ID "kasir.replay.id"
#define H_REPLAY_BY "kasir.replay.by"
#define H_REPLAY_AT "kasir.replay.at"
#define H_REPLAY_REF "kasir.replay.ref" /* the dead letter copied: <dlq topic>:<partition>:<offset> */

struct pending { /* one copy in flight, until its delivery report */
    const char *dlq, *target; /* owned by the scan / the target list */
    int32_t partition;
    int64_t offset;
    char message_id[256];
};

struct target {
    char *name;
    int ok; /* exists in the cluster, and its end offsets are recorded (a real replay) */
};

struct replay {
    struct dlq_ctx *c;
    rd_kafka_t *rk;
    struct dlq_markbuf *marks;
    struct target *targets;
    size_t ntargets;
    char id[KS_ID_LEN];
    int64_t selected, sent, confirmed, failed, recorded;
    int64_t undelivered; /* delivery reports with an error (part of sent - confirmed) */
    int64_t inflight; /* marks sent to PostgreSQL, answer not read yet */
    int write_failed;
    struct ks_db *gate;   /* the resolve lock's connection */
    int gated;            /* holds the resolve lock (a chunk is open) */
    double gate_t;        /* when the chunk began */
    int64_t gate_n;       /* copies produced in it */
    int64_t resolved;     /* selected, then found resolved before their copy: not sent */
    struct ks_err err;
};

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct replay *r = opaque;
    struct pending *p = m->_private;

    (void)rk;
    if (m->err) {
        /* counted as sent and not confirmed; failed counts the copies never produced */
        if (r->undelivered++ < 5)
            fprintf(stderr, "kasir-dlq: copy of %s:%d:%" PRId64 " to %s not delivered: %s\n",
                    p->dlq, (int)p->partition, p->offset, p->target, rd_kafka_err2str(m->err));
    } else {
        dlq_markbuf_add(r->marks, p->dlq, p->partition, p->offset, p->message_id, p->target);
        r->confirmed++;
    }
    free(p);
}

/* the answer to the batch of marks in flight, if one is */
static void wait_marks(struct replay *r)
{
    if (!r->inflight)
        return;
    if (dlq_markbuf_wait(ks_db_conn(r->c->db), &r->err) != KS_OK) {
        r->write_failed = 1;
        fprintf(stderr, "kasir-dlq: %s\n", r->err.msg);
    } else {
        r->recorded += r->inflight;
    }
    r->inflight = 0;
}

/* the batch of confirmed copies -> kasir_dlq_replayed, sent without waiting: copies go on
 * while PostgreSQL writes it. A failure stops the replay (what went and is not recorded is
 * sent again by the rerun, and deduplicated downstream). */
static void send_marks(struct replay *r)
{
    size_t n = dlq_markbuf_count(r->marks);

    if (n == 0 || r->write_failed)
        return;
    wait_marks(r);
    if (r->write_failed)
        return;
    if (dlq_markbuf_send(r->marks, ks_db_conn(r->c->db), r->id, 0, r->selected, &r->err) !=
        KS_OK) {
        r->write_failed = 1;
        fprintf(stderr, "kasir-dlq: %s\n", r->err.msg);
        return;
    }
    r->inflight = (int64_t)n;
}

/* opens a chunk: the resolve lock, shared, and the resolve marks not seen yet */
static int gate_enter(struct replay *r)
{
    if (r->gated)
        return 0;
    if (dlq_gate_enter(ks_db_conn(r->gate), r->c->marks, &r->err) != KS_OK) {
        fprintf(stderr, "kasir-dlq: %s\n", r->err.msg);
        r->write_failed = 1;
        return -1;
    }
    r->gated = 1;
    r->gate_t = mono_s();
    r->gate_n = 0;
    return 0;
}

/* closes the chunk: its copies are with the producer, a waiting resolve may commit */
static void gate_leave(struct replay *r)
{
    if (!r->gated)
        return;
    r->gated = 0;
    if (dlq_gate_leave(ks_db_conn(r->gate), &r->err) != KS_OK) {
        fprintf(stderr, "kasir-dlq: %s\n", r->err.msg);
        r->write_failed = 1;
    }
}

/* Before the first copy to a topic: the end offset of each of its partitions, recorded, so
 * that if this replay is killed the next one finds its copies from there (dlq_recover) */
static int target_record(struct replay *r, const char *name,
                         const struct rd_kafka_metadata_topic *mt)
{
    int32_t *parts = calloc((size_t)mt->partition_cnt, sizeof(*parts));
    int64_t *offs = calloc((size_t)mt->partition_cnt, sizeof(*offs));
    int rc = -1;

    if (!parts || !offs) {
        fprintf(stderr, "kasir-dlq: out of memory\n");
        goto out;
    }
    for (int i = 0; i < mt->partition_cnt; i++) {
        int64_t lo, hi;
        rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(r->rk, name,
                                                                 mt->partitions[i].id, &lo,
                                                                 &hi, 10000);
        if (e) {
            fprintf(stderr, "kasir-dlq: could not read the offsets of %s [%d]: %s\n", name,
                    (int)mt->partitions[i].id, rd_kafka_err2str(e));
            goto out;
        }
        parts[i] = mt->partitions[i].id;
        offs[i] = hi;
    }
    /* on the resolve lock's connection: the main one may have progress marks in flight */
    if (dlq_target_record(ks_db_conn(r->gate), r->id, name, parts, offs,
                          (size_t)mt->partition_cnt, &r->err) != KS_OK) {
        fprintf(stderr, "kasir-dlq: %s\n", r->err.msg);
        goto out;
    }
    rc = 0;
out:
    free(parts);
    free(offs);
    return rc;
}

/* rk: the producer, or in a dry run the scan's consumer (a consumer never creates a topic
 * by asking for it) */
static const struct target *target_get(struct replay *r, rd_kafka_t *rk, const char *name)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt;
    struct target *nt;
    int exists;

    for (size_t i = 0; i < r->ntargets; i++)
        if (strcmp(r->targets[i].name, name) == 0)
            return &r->targets[i];
    if (!(nt = realloc(r->targets, (r->ntargets + 1) * sizeof(*nt))))
        return NULL;
    r->targets = nt;
    nt = &r->targets[r->ntargets];
    if (!(nt->name = strdup(name)))
        return NULL;
    /* a missing topic would hold every copy for message.timeout.ms, then fail them all:
     * ask once instead, and say so at once */
    rkt = rd_kafka_topic_new(rk, name, NULL);
    exists = rkt && rd_kafka_metadata(rk, 0, rkt, &md, 10000) == 0 && md->topic_cnt == 1 &&
             md->topics[0].err == 0 && md->topics[0].partition_cnt > 0;
    nt->ok = exists;
    if (exists && rk == r->rk && target_record(r, name, &md->topics[0]) != 0) {
        r->write_failed = 1; /* its messages stay open; the replay stops */
        nt->ok = 0;
    }
    if (md)
        rd_kafka_metadata_destroy(md);
    if (rkt)
        rd_kafka_topic_destroy(rkt);
    if (!exists)
        fprintf(stderr, "kasir-dlq: target topic %s does not exist: its messages are left open\n",
                name);
    r->ntargets++;
    return nt;
}

static int runtime_owned(const char *name)
{
    static const char *const prefixes[] = {"kasir.error.", "kasir.origin.", "kasir.retry.",
                                           "kasir.replay."};
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
        if (strncmp(name, prefixes[i], strlen(prefixes[i])) == 0)
            return 1;
    return strcmp(name, KS_H_ATTEMPT) == 0 || strcmp(name, KS_H_MESSAGE_ID) == 0;
}

/* the copy's headers: the dead letter's own, minus what the runtime owns (it writes them
 * again if the copy fails again, and does not trust them on a main topic), plus the
 * original message id and who replayed it when */
static rd_kafka_headers_t *copy_headers(const struct replay *r, const struct dlq_msg *d,
                                        const char *at)
{
    rd_kafka_headers_t *src = NULL, *h = rd_kafka_headers_new(16);
    char ref[300];
    const char *name;
    const void *v;
    size_t len;

    if (!h)
        return NULL;
    if (rd_kafka_message_headers(d->rkm, &src) == 0)
        for (size_t i = 0; rd_kafka_header_get_all(src, i, &name, &v, &len) == 0; i++)
            if (!runtime_owned(name))
                rd_kafka_header_add(h, name, -1, v, v ? (ssize_t)len : 0);
    /* none known (no header, no origin position: a hand-made dead letter): none written, so
     * the worker takes the payload's message_id, as it did for the original */
    if (d->message_id[0])
        rd_kafka_header_add(h, KS_H_MESSAGE_ID, -1, d->message_id, -1);
    rd_kafka_header_add(h, H_REPLAY_ID, -1, r->id, -1);
    rd_kafka_header_add(h, H_REPLAY_BY, -1, r->c->actor, -1);
    rd_kafka_header_add(h, H_REPLAY_AT, -1, at, -1);
    snprintf(ref, sizeof(ref), "%s:%d:%" PRId64, d->dlq, (int)d->partition, d->offset);
    rd_kafka_header_add(h, H_REPLAY_REF, -1, ref, -1);
    return h;
}

/* 0 produced, 1 the producer's queue is full (nothing done: wait and call again), -2
 * failed (reported) */
static int produce_copy(struct replay *r, const struct dlq_msg *d, const char *target)
{
    struct pending *p = calloc(1, sizeof(*p));
    rd_kafka_headers_t *h;
    rd_kafka_resp_err_t e;
    char at[24];

    snprintf(at, sizeof(at), "%" PRId64, dlq_now_ms());
    if (!p || !(h = copy_headers(r, d, at))) {
        free(p);
        return -2;
    }
    p->dlq = d->dlq;
    p->target = target;
    p->partition = d->partition;
    p->offset = d->offset;
    snprintf(p->message_id, sizeof(p->message_id), "%s", d->message_id);
    e = rd_kafka_producev(r->rk, RD_KAFKA_V_TOPIC(target),
                          RD_KAFKA_V_KEY(d->rkm->key, d->rkm->key_len),
                          RD_KAFKA_V_VALUE(d->rkm->payload, d->rkm->len),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
                          RD_KAFKA_V_OPAQUE(p), RD_KAFKA_V_END);
    if (e) {
        rd_kafka_headers_destroy(h);
        free(p);
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            return 1;
        fprintf(stderr, "kasir-dlq: could not produce to %s: %s\n", target, rd_kafka_err2str(e));
        return -2;
    }
    r->sent++;
    return 0;
}

struct progress {
    int tty, quiet;
    double t0, last;
};

static void show_progress(struct progress *pg, struct replay *r, struct ks_scan *s, long limit,
                          int final)
{
    double now = mono_s(), el = now - pg->t0, f = ks_scan_progress(s), rate;
    int64_t done = r->confirmed;

    if (pg->quiet || (!final && now - pg->last < (pg->tty ? 0.2 : 2.0)))
        return;
    pg->last = now;
    if (limit > 0 && (double)r->sent / (double)limit > f)
        f = (double)r->sent / (double)limit;
    rate = el > 0 ? (double)done / el : 0;
    if (pg->tty) {
        char bar[31];
        int fill = (int)(f * 30);
        double eta = f > 0.001 ? el * (1 - f) / f : 0;
        for (int i = 0; i < 30; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[30] = '\0';
        fprintf(stderr, "\r[%s] %3d%%  %" PRId64 " replayed  %.0f msg/s  ETA %d:%02d   %s", bar,
                (int)(f * 100), done, rate, (int)eta / 60, (int)eta % 60, final ? "\n" : "");
    } else {
        fprintf(stderr, "kasir-dlq: replay %s: %" PRId64 " sent, %" PRId64 " confirmed, %" PRId64
                        " recorded, %.0f%% scanned, %.0f msg/s\n",
                r->id, r->sent, done, r->recorded, f * 100, rate);
    }
}

/* missing: the target topic does not exist (the real run would leave the message open) */
static void dry_line(const struct dlq_ctx *c, const struct dlq_msg *d, const char *target,
                     int missing)
{
    if (c->o.json)
        dlq_json_line(json_pack("{s:o, s:i, s:I, s:o, s:o, s:o, s:b}", "dlq_topic",
                                dlq_text(d->dlq, strlen(d->dlq), NULL), "partition",
                                (int)d->partition, "offset", (json_int_t)d->offset, "target",
                                dlq_text(target, strlen(target), NULL), "message_id",
                                dlq_text(d->message_id, strlen(d->message_id), NULL), "class",
                                dlq_text(d->cls, strlen(d->cls), NULL), "target_missing",
                                missing));
    else
        printf("%s:%d:%" PRId64 " -> %s%s  %s  %s\n", d->dlq, (int)d->partition, d->offset,
               target, missing ? " (does not exist)" : "", d->message_id, d->cls);
}

int dlq_cmd_replay(struct dlq_ctx *c)
{
    struct replay r = {.c = c};
    struct progress pg = {.tty = isatty(2), .quiet = c->o.quiet};
    struct ks_scan *s = NULL;
    struct dlq_msg d;
    rd_kafka_conf_t *conf = NULL;
    json_t *filters = NULL;
    double last_write, rate_t1;
    int rc = DLQ_EXIT_OK, begun = 0, scan_failed = 0, dry_failed = 0;

    /* DLQ_LATE: resolved while this replay runs; returned to be counted, never sent */
    c->o.status = DLQ_OPEN | (c->o.again ? DLQ_REPLAYED : 0) | DLQ_LATE;
    c->lock = !c->o.dry_run;
    if (!(s = dlq_scan_open(c, &r.err))) {
        fprintf(stderr, "kasir-dlq: %s\n", r.err.msg);
        return dlq_stop ? DLQ_EXIT_INTERRUPTED /* e.g. while finishing a killed replay */
               : r.err.code == KS_ENOTFOUND || r.err.code == KS_ECONFIG ? DLQ_EXIT_USAGE
                                                                         : DLQ_EXIT_FAIL;
    }
    if (!c->o.dry_run) {
        if (ks_id_new("rpl", r.id, &r.err) != KS_OK || !(r.marks = dlq_markbuf_new()) ||
            !(filters = dlq_filters_json(&c->o)) ||
            !(conf = ks_kafka_conf_new(c->brokers, "producer", c->cfg, &r.err))) {
            fprintf(stderr, "kasir-dlq: %s\n", r.err.msg[0] ? r.err.msg : "out of memory");
            rc = r.err.code == KS_ECONFIG ? DLQ_EXIT_USAGE : DLQ_EXIT_FAIL;
            goto out;
        }
        rd_kafka_conf_set_opaque(conf, &r);
        rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
        if (!(r.rk = ks_kafka_producer_new(conf, &r.err))) {
            /* the consumer took the same settings: what only a producer refuses (acks with
             * enable.idempotence) is a setting too (KS_ECONFIG) */
            fprintf(stderr, "kasir-dlq: %s\n", r.err.msg);
            rc = r.err.code == KS_ECONFIG ? DLQ_EXIT_USAGE : DLQ_EXIT_FAIL;
            goto out;
        }
        if (!(r.gate = ks_db_connect(ks_config_str(c->cfg, "pg.dsn"), &r.err))) {
            fprintf(stderr, "kasir-dlq: %s\n", r.err.msg);
            rc = DLQ_EXIT_FAIL;
            goto out;
        }
        /* the run lock first: a 'running' record whose lock is free is a killed replay */
        if (dlq_run_lock(ks_db_conn(c->db), r.id, &r.err) != KS_OK ||
            dlq_audit_begin(ks_db_conn(c->db), r.id, "replay", c->actor, filters, c->o.to,
                            c->o.note, &r.err) != KS_OK) {
            fprintf(stderr, "kasir-dlq: %s\n", r.err.msg);
            rc = DLQ_EXIT_FAIL;
            goto out;
        }
        begun = 1;
        if (!c->o.json && !c->o.quiet)
            fprintf(stderr, "kasir-dlq: replay %s by %s\n", r.id, c->actor);
    }
    last_write = pg.t0 = pg.last = mono_s();
    rate_t1 = -1;
    while (!dlq_stop && !r.write_failed && (c->o.limit < 0 || r.selected < c->o.limit)) {
        const char *target;
        const struct target *tg;
        int n = dlq_next(c, s, 100, &d, &r.err);

        if (n == -1)
            break;
        if (n == -2) {
            fprintf(stderr, "kasir-dlq: %s\n", r.err.msg);
            scan_failed = 1;
            break;
        }
        if (n == 0) /* the scan is waiting for Kafka: no chunk holds the lock meanwhile */
            gate_leave(&r);
        if (n == 1 && (d.state & DLQ_RESOLVED)) { /* --again, or resolved late */
            if ((d.state & DLQ_LATE) && (!(d.state & DLQ_REPLAYED) || c->o.again))
                r.resolved++; /* one this replay would have sent */
            rd_kafka_message_destroy(d.rkm);
            n = 0;
        }
        if (n == 1) {
            r.selected++;
            target = c->o.to ? c->o.to : d.origin;
            /* a forged or corrupt origin header would write this payload into another
             * pipeline's topic: only --to sends it elsewhere than the DLQ's own origin */
            if (!c->o.to && d.origin_foreign)
                target = "";
            if (c->o.dry_run) {
                /* what the real run would do: a message it would leave open counts as failed */
                int missing = target[0] && (tg = target_get(&r, ks_scan_handle(s), target)) &&
                              !tg->ok;
                dry_line(c, &d, target[0] ? target
                                : d.origin_foreign ? "(origin header is not the DLQ's topic)"
                                                   : "(no origin)",
                         missing);
                if (!target[0] || missing)
                    r.failed++;
            } else if (!target[0] || !(tg = target_get(&r, r.rk, target)) || !tg->ok) {
                if (!target[0] && d.origin_foreign)
                    fprintf(stderr,
                            "kasir-dlq: %s:%d:%" PRId64 ": its origin header names %s, not the "
                            "topic of %s: not followed, left open (use --to)\n",
                            d.dlq, (int)d.partition, d.offset, d.origin, d.dlq);
                else if (!target[0])
                    fprintf(stderr,
                            "kasir-dlq: %s:%d:%" PRId64 " names no origin topic: use --to\n",
                            d.dlq, (int)d.partition, d.offset);
                r.failed++;
            } else {
                int pr;
                if (c->o.rate > 0) {
                    /* message k is due at t1 + k / rate, t1 the first send: a long scan
                     * before it must not turn into a burst */
                    double due, now;
                    if (rate_t1 < 0)
                        rate_t1 = mono_s() - (double)r.sent / c->o.rate;
                    due = rate_t1 + (double)(r.sent) / c->o.rate;
                    if (mono_s() < due)
                        gate_leave(&r); /* never hold the lock through a wait */
                    while ((now = mono_s()) < due && !dlq_stop) {
                        int ms = (int)((due - now) * 1000);
                        rd_kafka_poll(r.rk, ms > 0 ? ms : 0);
                        if (ms <= 0)
                            break;
                    }
                }
                /* checked against the resolve marks and produced inside one chunk; a full
                 * producer queue is waited for outside it, and the check is made again */
                while ((pr = gate_enter(&r)) == 0) {
                    if (dlq_marks_get(c->marks, d.dlq, d.partition, d.offset) & DLQ_RESOLVED) {
                        r.resolved++; /* resolved after the replay read the marks */
                        pr = -1;
                        break;
                    }
                    if ((pr = produce_copy(&r, &d, tg->name)) != 1 || dlq_stop)
                        break;
                    gate_leave(&r);
                    rd_kafka_poll(r.rk, 100);
                }
                if (pr == 0) {
                    if (++r.gate_n >= c->o.batch || mono_s() - r.gate_t >= 0.2)
                        gate_leave(&r);
                } else if (pr == -2) {
                    r.failed++; /* selected, and failed: left open for a rerun */
                } else {
                    r.selected--; /* resolved meanwhile, or not sent (no lock, stopped) */
                }
            }
            rd_kafka_message_destroy(d.rkm);
        }
        if (r.rk) {
            double now;
            rd_kafka_poll(r.rk, 0);
            now = mono_s();
            if (dlq_markbuf_count(r.marks) >= (size_t)c->o.batch ||
                (dlq_markbuf_count(r.marks) && now - last_write >= 0.5)) {
                send_marks(&r);
                last_write = now;
            }
            show_progress(&pg, &r, s, c->o.limit, 0);
        }
    }
    gate_leave(&r);
    if (r.rk) {
        /* everything produced gets its report (delivered or failed) before the last marks */
        for (int i = 0; i < 600 && rd_kafka_outq_len(r.rk) > 0; i++) {
            rd_kafka_poll(r.rk, 100);
            if (dlq_markbuf_count(r.marks) >= (size_t)c->o.batch)
                send_marks(&r);
        }
        send_marks(&r);
        wait_marks(&r);
        show_progress(&pg, &r, s, c->o.limit, 1);
    }
out:
    if (begun) {
        const char *status = dlq_stop ? "interrupted"
                             : (r.failed || r.write_failed || scan_failed ||
                                r.confirmed < r.sent) ? "failed" : "done";
        struct ks_err e2 = {0};
        if (dlq_audit_end(ks_db_conn(c->db), r.id, status, r.selected,
                          r.failed + (r.sent - r.confirmed), &e2) != KS_OK)
            fprintf(stderr, "kasir-dlq: %s\n", e2.msg);
        if (dlq_stop)
            rc = DLQ_EXIT_INTERRUPTED;
        else if (strcmp(status, "failed") == 0)
            rc = DLQ_EXIT_FAIL;
    } else if (c->o.dry_run && rc == DLQ_EXIT_OK) {
        if (scan_failed)
            rc = DLQ_EXIT_FAIL;
        else if (dlq_stop)
            rc = DLQ_EXIT_INTERRUPTED;
        else if (r.failed)
            dry_failed = 1; /* exit 1 as the real run would, after the summary */
    }
    if ((rc != DLQ_EXIT_FAIL && rc != DLQ_EXIT_USAGE) || begun) {
        if (c->o.json)
            dlq_json_line(json_pack("{s:s?, s:b, s:I, s:I, s:I, s:I, s:I}", "replay_id",
                                    c->o.dry_run ? NULL : r.id, "dry_run", c->o.dry_run,
                                    "selected", (json_int_t)r.selected, "replayed",
                                    (json_int_t)r.recorded, "unconfirmed",
                                    (json_int_t)(r.confirmed - r.recorded), "failed",
                                    (json_int_t)(r.failed + (r.sent - r.confirmed)),
                                    "resolved_meanwhile", (json_int_t)r.resolved));
        else if (c->o.dry_run && r.failed)
            printf("dry run: %" PRId64 " selected, %" PRId64 " would be replayed, %" PRId64
                   " would fail (see above); nothing was sent or recorded\n",
                   r.selected, r.selected - r.failed, r.failed);
        else if (c->o.dry_run)
            printf("dry run: %" PRId64 " messages would be replayed; nothing was sent or "
                   "recorded\n",
                   r.selected);
        else {
            if (r.resolved)
                printf("replay %s: %" PRId64 " resolved while it ran, not sent\n", r.id,
                       r.resolved);
            printf("replay %s: %" PRId64 " selected, %" PRId64 " replayed and recorded, %" PRId64
                   " failed%s\n",
                   r.id, r.selected, r.recorded, r.failed + (r.sent - r.confirmed),
                   dlq_stop ? " (interrupted: rerun to carry on)" : "");
        }
    }
    if (r.rk)
        ks_kafka_producer_close(r.rk, 0);
    ks_db_free(r.gate); /* also releases the lock if a failure left it held */
    for (size_t i = 0; i < r.ntargets; i++)
        free(r.targets[i].name);
    free(r.targets);
    dlq_markbuf_free(r.marks);
    json_decref(filters);
    ks_scan_free(s);
    return dry_failed ? DLQ_EXIT_FAIL : rc;
}

/* the copies of killed replay id in one target topic (ranges: its partitions) -> mb;
 * *found counts them. A topic deleted since holds none: said, and passed over. */
static enum ks_code recover_topic(struct dlq_ctx *c, const char *id,
                                  const struct ks_scan_range *ranges, size_t n,
                                  struct dlq_markbuf *mb, int64_t *found, struct ks_err *err)
{
    struct ks_scan_opts so = {.from = KS_SCAN_BEGINNING};
    const char *name = ranges[0].topic;
    rd_kafka_conf_t *conf;
    struct ks_scan *s;
    enum ks_code rc = KS_OK;

    if (!(conf = ks_kafka_conf_new(c->brokers, "consumer", c->cfg, err)))
        return err->code;
    if (!(s = ks_scan_new(conf, &name, 1, ranges, n, &so, err))) {
        if (err->code != KS_ENOTFOUND)
            return err->code;
        fprintf(stderr, "kasir-dlq: replay %s: its target %s no longer exists\n", id, name);
        return KS_OK;
    }
    if (ks_scan_total(s) >= 100000 && !c->o.quiet) /* what was written there since it began */
        fprintf(stderr, "kasir-dlq: looking for the copies of killed replay %s among %" PRId64
                        " messages of %s\n", id, ks_scan_total(s), name);
    for (;;) {
        rd_kafka_message_t *m = NULL;
        rd_kafka_headers_t *h = NULL;
        const void *mv;
        size_t mlen;
        /* one byte more than any value they are compared with or parsed from: a longer
         * header is cut to a length that matches nothing */
        char rid[KS_ID_LEN + 1], ref[512], mid[KS_ID_LEN] = "";
        struct dlq_ref r;
        int k = ks_scan_next(s, 500, &m, err);

        if (k == -1)
            break;
        if (k == -2) {
            rc = err->code;
            break;
        }
        if (k == 0) {
            if (dlq_stop) {
                rc = ks_err_set(err, KS_ESTATE, 0, NULL, "interrupted");
                break;
            }
            continue;
        }
        if (ks_kafka_header(m, H_REPLAY_ID, rid, sizeof(rid)) && strcmp(rid, id) == 0 &&
            ks_kafka_header(m, H_REPLAY_REF, ref, sizeof(ref)) &&
            strlen(ref) < sizeof(ref) - 1 && dlq_ref_parse(ref, &r) == 0) {
            if (rd_kafka_message_headers(m, &h) == 0 &&
                rd_kafka_header_get_last(h, KS_H_MESSAGE_ID, &mv, &mlen) == 0 && mv)
                ks_id_from_bytes(mv, mlen, mid);
            dlq_markbuf_add(mb, r.topic, r.partition, r.offset, mid, rd_kafka_topic_name(m->rkt));
            free(r.topic);
            (*found)++;
        }
        rd_kafka_message_destroy(m);
    }
    ks_scan_free(s);
    return rc;
}

/* the copies of killed replay id in its targets -> mb; *found: copies seen */
static enum ks_code recover_one(struct dlq_ctx *c, const char *id, struct dlq_markbuf *mb,
                                int64_t *found, struct ks_err *err)
{
    struct ks_scan_range *ranges = NULL;
    size_t n = 0, i = 0;
    enum ks_code rc;

    *found = 0;
    rc = dlq_targets_of(ks_db_conn(c->db), id, &ranges, &n, err);
    while (rc == KS_OK && i < n) { /* one topic at a time (ordered by topic) */
        size_t k = i + 1;
        while (k < n && strcmp(ranges[k].topic, ranges[i].topic) == 0)
            k++;
        rc = recover_topic(c, id, &ranges[i], k - i, mb, found, err);
        i = k;
    }
    for (i = 0; i < n; i++)
        free((char *)ranges[i].topic);
    free(ranges);
    return rc;
}

enum ks_code dlq_recover(struct dlq_ctx *c, struct ks_err *err)
{
    struct dlq_markbuf *mb = dlq_markbuf_new();
    char **ids = NULL;
    size_t n = 0;
    enum ks_code rc;

    if (!mb)
        return ks_err_set(err, KS_ENOMEM, 0, NULL, "out of memory");
    if ((rc = dlq_recovery_begin(ks_db_conn(c->db), &ids, &n, err)) != KS_OK)
        goto out;
    for (size_t i = 0; i < n && rc == KS_OK; i++) {
        int64_t found = 0, added = 0;
        if ((rc = recover_one(c, ids[i], mb, &found, err)) != KS_OK ||
            (rc = dlq_recover_write(mb, ks_db_conn(c->db), ids[i], &added, err)) != KS_OK)
            break;
        if (!c->o.quiet)
            fprintf(stderr, "kasir-dlq: replay %s was stopped before it finished: %" PRId64
                            " of its copies found in its target topics, %" PRId64
                            " of them not recorded before (now they are: not sent again)\n",
                    ids[i], found, added);
    }
out:
    if (rc != KS_OK) {
        char why[sizeof(err->msg)];
        snprintf(why, sizeof(why), "%s", err->msg);
        ks_err_set(err, rc, err->retriable, NULL,
                   "could not finish the record of a killed replay: %s", why);
    }
    dlq_recovery_end(ks_db_conn(c->db));
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    dlq_markbuf_free(mb);
    return rc;
}

int dlq_cmd_resolve(struct dlq_ctx *c)
{
    struct dlq_markbuf *mb = NULL;
    struct ks_scan *s = NULL;
    struct ks_err err = {0};
    struct dlq_msg d;
    json_t *filters = NULL;
    char id[KS_ID_LEN];
    int64_t selected = 0;
    int rc = DLQ_EXIT_OK, begun = 0, n = 0;

    c->o.status = DLQ_OPEN | DLQ_REPLAYED;
    if (!(s = dlq_scan_open(c, &err))) {
        fprintf(stderr, "kasir-dlq: %s\n", err.msg);
        return err.code == KS_ENOTFOUND || err.code == KS_ECONFIG ? DLQ_EXIT_USAGE
                                                               : DLQ_EXIT_FAIL;
    }
    if (!c->o.dry_run) {
        if (ks_id_new("rsv", id, &err) != KS_OK || !(mb = dlq_markbuf_new()) ||
            !(filters = dlq_filters_json(&c->o)) ||
            dlq_audit_begin(ks_db_conn(c->db), id, "resolve", c->actor, filters, NULL,
                            c->o.note, &err) != KS_OK) {
            fprintf(stderr, "kasir-dlq: %s\n", err.msg[0] ? err.msg : "out of memory");
            rc = DLQ_EXIT_FAIL;
            goto out;
        }
        begun = 1;
    }
    while (!dlq_stop && (c->o.limit < 0 || selected < c->o.limit)) {
        if ((n = dlq_next(c, s, 200, &d, &err)) == -1)
            break;
        if (n == -2) {
            fprintf(stderr, "kasir-dlq: %s\n", err.msg);
            rc = DLQ_EXIT_FAIL;
            break;
        }
        if (n == 0)
            continue;
        if (d.state & DLQ_RESOLVED) { /* replayed, then resolved: selected by its replay mark */
            rd_kafka_message_destroy(d.rkm);
            continue;
        }
        selected++;
        if (c->o.dry_run)
            dry_line(c, &d, "resolved", 0);
        else
            dlq_markbuf_add(mb, d.dlq, d.partition, d.offset, d.message_id, NULL);
        rd_kafka_message_destroy(d.rkm);
        if (mb && dlq_markbuf_count(mb) >= (size_t)c->o.batch &&
            dlq_markbuf_write(mb, ks_db_conn(c->db), id, 1, selected, &err) != KS_OK) {
            fprintf(stderr, "kasir-dlq: %s\n", err.msg);
            rc = DLQ_EXIT_FAIL;
            break;
        }
    }
    if (mb && rc == DLQ_EXIT_OK &&
        dlq_markbuf_write(mb, ks_db_conn(c->db), id, 1, selected, &err) != KS_OK) {
        fprintf(stderr, "kasir-dlq: %s\n", err.msg);
        rc = DLQ_EXIT_FAIL;
    }
    if (dlq_stop && rc == DLQ_EXIT_OK)
        rc = DLQ_EXIT_INTERRUPTED;
    if (rc == DLQ_EXIT_OK && selected > 0 && !c->o.dry_run) {
        char **t = calloc(ks_scan_topic_count(s) + 1, sizeof(*t)), first[256] = "";
        int k = 0;
        for (size_t i = 0; t && i < ks_scan_topic_count(s); i++)
            t[i] = (char *)ks_scan_topic(s, i);
        if (t)
            k = dlq_replays_running(ks_db_conn(c->db), t, ks_scan_topic_count(s), first,
                                    sizeof(first));
        if (k > 0)
            fprintf(stderr,
                    "kasir-dlq: warning: a replay is reading %s%s: it sends none of these from "
                    "now on, but what it sent before this resolve stays sent (kasir-dlq list "
                    "--status replayed shows it)\n",
                    first, k > 1 ? " and more" : "");
        free(t);
    }
out:
    if (begun) {
        struct ks_err e2 = {0};
        if (dlq_audit_end(ks_db_conn(c->db), id, rc == DLQ_EXIT_OK ? "done"
                                                 : rc == DLQ_EXIT_INTERRUPTED ? "interrupted"
                                                                              : "failed",
                          selected, 0, &e2) != KS_OK) {
            fprintf(stderr, "kasir-dlq: %s\n", e2.msg);
            rc = DLQ_EXIT_FAIL;
        }
    }
    if (rc != DLQ_EXIT_FAIL) {
        if (c->o.json)
            dlq_json_line(json_pack("{s:s?, s:b, s:I}", "resolve_id", begun ? id : NULL,
                                    "dry_run", c->o.dry_run, "resolved", (json_int_t)selected));
        else if (c->o.dry_run)
            printf("dry run: %" PRId64 " messages would be resolved; nothing was recorded\n",
                   selected);
        else
            printf("resolve %s: %" PRId64 " messages marked resolved\n", id, selected);
    }
    dlq_markbuf_free(mb);
    json_decref(filters);
    ks_scan_free(s);
    return rc;
}
