/* scan.c - whole-topic reads for the tools (kasir-dlq, kasir-tap); see scan.h. */
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "scan.h"
#include "banned.h"

struct part {
    const char *topic; /* one of s->topics */
    int32_t partition;
    int64_t start, end; /* [start, end) at scan start */
    int64_t next;       /* offset after the last message returned, -1 none yet */
    int done;
    int held;           /* ks_scan_hold: next stays at the held message */
    int away;           /* group: assigned to another member (counts as done meanwhile) */
};

struct ks_scan {
    rd_kafka_t *rk;
    char **topics;
    size_t ntopics;
    struct part *parts;
    size_t nparts, ndone, last;
    int follow, group;
    int rebalancing;    /* group: revoked, the next assignment not come yet */
    int64_t total;
};

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                         rd_kafka_topic_partition_list_t *l, void *opaque);

/* A scan joins a group only if every member it has is another scan of the same client.id:
 * joining a worker's group would take partitions from the running workers (they stall on
 * them while the scan runs) and commit offsets in their name. */
static enum ks_code group_is_ours(struct ks_scan *s, const char *group, struct ks_err *err)
{
    const struct rd_kafka_group_list *gl = NULL;
    char me[256];
    size_t melen = sizeof(me);
    enum ks_code rc = KS_OK;
    rd_kafka_resp_err_t e;

    if (rd_kafka_conf_get(rd_kafka_conf(s->rk), "client.id", me, &melen) != RD_KAFKA_CONF_OK)
        me[0] = '\0';
    if ((e = rd_kafka_list_groups(s->rk, group, &gl, 10000)) != 0)
        return ks_err_set(err, KS_EKAFKA, 1, NULL, "could not describe group %s: %s", group,
                          rd_kafka_err2str(e));
    for (int g = 0; g < gl->group_cnt && rc == KS_OK; g++)
        for (int i = 0; i < gl->groups[g].member_cnt; i++) {
            const struct rd_kafka_group_member_info *m = &gl->groups[g].members[i];
            if (strcmp(gl->groups[g].group, group) == 0 && strcmp(m->client_id, me) != 0) {
                rc = ks_err_set(err, KS_ECONFLICT, 0, "group",
                                "group %s is in use: its member %.100s (client %.100s on "
                                "%.100s) is not a %s; joining would take its partitions",
                                group, m->member_id, m->client_id, m->client_host, me);
                break;
            }
        }
    rd_kafka_group_list_destroy(gl);
    return rc;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int add_topic(struct ks_scan *s, const char *name)
{
    char **nt;

    for (size_t i = 0; i < s->ntopics; i++)
        if (strcmp(s->topics[i], name) == 0)
            return 0;
    if (!(nt = realloc(s->topics, (s->ntopics + 1) * sizeof(*nt))))
        return -1;
    s->topics = nt;
    if (!(s->topics[s->ntopics] = strdup(name)))
        return -1;
    s->ntopics++;
    return 0;
}

/* names and patterns -> the topic list, from one metadata request */
static enum ks_code expand_topics(struct ks_scan *s, const struct rd_kafka_metadata *md,
                                  const char *const *topics, size_t n, struct ks_err *err)
{
    for (size_t i = 0; i < n; i++) {
        int found = 0;

        if (topics[i][0] == '^') {
            regex_t re;
            if (regcomp(&re, topics[i], REG_EXTENDED | REG_NOSUB) != 0)
                return ks_err_set(err, KS_EINVAL, 0, "topic", "bad topic pattern %s",
                                  topics[i]);
            for (int t = 0; t < md->topic_cnt; t++) {
                const char *name = md->topics[t].topic;
                if (strncmp(name, "__", 2) != 0 && regexec(&re, name, 0, NULL, 0) == 0 &&
                    add_topic(s, name) != 0) {
                    regfree(&re);
                    return ks_err_set(err, KS_ENOMEM, 0, NULL, "out of memory");
                }
            }
            regfree(&re);
            continue;
        }
        for (int t = 0; t < md->topic_cnt && !found; t++)
            found = strcmp(md->topics[t].topic, topics[i]) == 0 && !md->topics[t].err;
        if (!found)
            return ks_err_set(err, KS_ENOTFOUND, 0, "topic", "topic %s does not exist",
                              topics[i]);
        if (add_topic(s, topics[i]) != 0)
            return ks_err_set(err, KS_ENOMEM, 0, NULL, "out of memory");
    }
    return KS_OK;
}

static const struct ks_scan_range *find_range(const struct ks_scan_range *r, size_t n,
                                              const char *topic, int32_t partition)
{
    for (size_t i = 0; i < n; i++)
        if (r[i].partition == partition && strcmp(r[i].topic, topic) == 0)
            return &r[i];
    return NULL;
}

/* one part per partition of the topics (or of the ranges), with start and end */
static enum ks_code plan_parts(struct ks_scan *s, const struct rd_kafka_metadata *md,
                               const struct ks_scan_range *ranges, size_t nranges,
                               const struct ks_scan_opts *o, struct ks_err *err)
{
    rd_kafka_topic_partition_list_t *times = NULL;
    enum ks_code rc = KS_OK;
    size_t cap = 0;

    for (size_t i = 0; i < s->ntopics; i++)
        for (int t = 0; t < md->topic_cnt; t++)
            if (strcmp(md->topics[t].topic, s->topics[i]) == 0)
                cap += (size_t)md->topics[t].partition_cnt;
    if (cap && !(s->parts = calloc(cap, sizeof(*s->parts))))
        return ks_err_set(err, KS_ENOMEM, 0, NULL, "out of memory");
    for (size_t i = 0; i < s->ntopics; i++)
        for (int t = 0; t < md->topic_cnt; t++) {
            if (strcmp(md->topics[t].topic, s->topics[i]) != 0)
                continue;
            for (int p = 0; p < md->topics[t].partition_cnt; p++) {
                int32_t id = md->topics[t].partitions[p].id;
                const struct ks_scan_range *r = NULL;
                struct part *pt;
                int64_t lo = 0, hi = 0;
                rd_kafka_resp_err_t e;

                if (nranges && !(r = find_range(ranges, nranges, s->topics[i], id)))
                    continue;
                e = rd_kafka_query_watermark_offsets(s->rk, s->topics[i], id, &lo, &hi, 10000);
                if (e) {
                    rc = ks_err_set(err, KS_EKAFKA, 1, NULL,
                                    "could not read the offsets of %s [%d]: %s",
                                    s->topics[i], (int)id, rd_kafka_err2str(e));
                    goto out;
                }
                pt = &s->parts[s->nparts++];
                pt->topic = s->topics[i];
                pt->partition = id;
                pt->start = o->from == KS_SCAN_END ? hi : lo;
                pt->end = hi;
                pt->next = -1;
                if (r) {
                    pt->start = r->start > lo ? r->start : lo;
                    pt->end = r->end < hi ? r->end : hi;
                }
            }
        }
    if (o->from == KS_SCAN_TIME && s->nparts) {
        if (!(times = rd_kafka_topic_partition_list_new((int)s->nparts)))
            return ks_err_set(err, KS_ENOMEM, 0, NULL, "out of memory");
        for (size_t i = 0; i < s->nparts; i++)
            rd_kafka_topic_partition_list_add(times, s->parts[i].topic,
                                              s->parts[i].partition)->offset = o->from_ms;
        if (rd_kafka_offsets_for_times(s->rk, times, 10000)) {
            rc = ks_err_set(err, KS_EKAFKA, 1, NULL, "could not find offsets for the time");
            goto out;
        }
        for (size_t i = 0; i < s->nparts; i++) {
            int64_t off = times->elems[i].offset;
            /* -1: no message at or after the time */
            if (off < 0)
                off = s->parts[i].end;
            if (off > s->parts[i].start)
                s->parts[i].start = off;
        }
    }
    for (size_t i = 0; i < s->nparts; i++) {
        struct part *pt = &s->parts[i];
        if (pt->start > pt->end)
            pt->start = pt->end;
        s->total += pt->end - pt->start;
        if (!s->follow && pt->start >= pt->end) {
            pt->done = 1;
            s->ndone++;
        }
    }
out:
    if (times)
        rd_kafka_topic_partition_list_destroy(times);
    return rc;
}

struct ks_scan *ks_scan_new(rd_kafka_conf_t *conf, const char *const *topics, size_t ntopics,
                            const struct ks_scan_range *ranges, size_t nranges,
                            const struct ks_scan_opts *o, struct ks_err *err)
{
    struct ks_scan *s = calloc(1, sizeof(*s));
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_partition_list_t *l = NULL;
    char group[64], errstr[256];
    rd_kafka_resp_err_t e;

    if (!s) {
        rd_kafka_conf_destroy(conf);
        ks_err_set(err, KS_ENOMEM, 0, NULL, "out of memory");
        return NULL;
    }
    s->follow = o->follow;
    s->group = o->group != NULL;
    /* assign needs no group, but the consumer API wants an id; it never joins with it */
    snprintf(group, sizeof(group), "kasir-scan-%d-%lld", (int)getpid(), (long long)now_ms());
    rd_kafka_conf_set(conf, "group.id", o->group ? o->group : group, NULL, 0);
    rd_kafka_conf_set(conf, "enable.partition.eof", "true", NULL, 0);
    rd_kafka_conf_set(conf, "auto.offset.reset", o->from == KS_SCAN_END ? "latest" : "earliest",
                      NULL, 0);
    if (o->group) {
        char cid[64];
        size_t n = sizeof(cid);
        /* the scan's name in its group, unless kafka.client.id names it: group_is_ours
         * admits only members of that name */
        if (o->client && rd_kafka_conf_get(conf, "client.id", cid, &n) == RD_KAFKA_CONF_OK &&
            strcmp(cid, "rdkafka") == 0)
            rd_kafka_conf_set(conf, "client.id", o->client, NULL, 0);
        rd_kafka_conf_set_opaque(conf, s);
        rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    }
    if (!(s->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr)))) {
        /* what librdkafka refuses here is its configuration, read only now: a TLS file
         * that does not load, an unknown SASL mechanism, properties that contradict */
        rd_kafka_conf_destroy(conf);
        ks_err_set(err, KS_ECONFIG, 0, NULL, "could not create the consumer: %s", errstr);
        goto fail;
    }
    rd_kafka_poll_set_consumer(s->rk);
    if ((e = rd_kafka_metadata(s->rk, 1, NULL, &md, 10000)) != 0) {
        ks_err_set(err, KS_EKAFKA, 1, NULL, "could not reach Kafka: %s", rd_kafka_err2str(e));
        goto fail;
    }
    if (expand_topics(s, md, topics, ntopics, err) != KS_OK ||
        plan_parts(s, md, ranges, nranges, o, err) != KS_OK)
        goto fail;
    if (!(l = rd_kafka_topic_partition_list_new((int)(s->nparts ? s->nparts : 1)))) {
        ks_err_set(err, KS_ENOMEM, 0, NULL, "out of memory");
        goto fail;
    }
    if (o->group && group_is_ours(s, o->group, err) != KS_OK)
        goto fail;
    if (o->group) {
        for (size_t i = 0; i < s->ntopics; i++)
            rd_kafka_topic_partition_list_add(l, s->topics[i], RD_KAFKA_PARTITION_UA);
        e = s->ntopics ? rd_kafka_subscribe(s->rk, l) : 0;
    } else {
        for (size_t i = 0; i < s->nparts; i++)
            if (!s->parts[i].done)
                rd_kafka_topic_partition_list_add(l, s->parts[i].topic,
                                                  s->parts[i].partition)->offset =
                    s->parts[i].start;
        e = rd_kafka_assign(s->rk, l);
    }
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        ks_err_set(err, KS_EKAFKA, 0, NULL, "could not start reading: %s", rd_kafka_err2str(e));
        goto fail;
    }
    rd_kafka_metadata_destroy(md);
    return s;
fail:
    if (md)
        rd_kafka_metadata_destroy(md);
    ks_scan_free(s);
    return NULL;
}

void ks_scan_free(struct ks_scan *s)
{
    if (!s)
        return;
    if (s->rk) {
        if (s->group)
            rd_kafka_consumer_close(s->rk);
        rd_kafka_destroy(s->rk);
    }
    for (size_t i = 0; i < s->ntopics; i++)
        free(s->topics[i]);
    free(s->topics);
    free(s->parts);
    free(s);
}

static struct part *part_of(struct ks_scan *s, const rd_kafka_message_t *m)
{
    const char *t = rd_kafka_topic_name(m->rkt);

    /* messages come in runs from one partition: try the last one first */
    if (s->last < s->nparts && s->parts[s->last].partition == m->partition &&
        strcmp(s->parts[s->last].topic, t) == 0)
        return &s->parts[s->last];
    for (size_t i = 0; i < s->nparts; i++)
        if (s->parts[i].partition == m->partition && strcmp(s->parts[i].topic, t) == 0) {
            s->last = i;
            return &s->parts[i];
        }
    return NULL;
}

static void mark_done(struct ks_scan *s, struct part *p)
{
    if (!p->done && !s->follow) {
        p->done = 1;
        if (!p->away)
            s->ndone++;
    }
}

/* With a group, a run reads the partitions the group gives it, and ends when those reached
 * their ends: another member of the group reads the others (two runs of one export at
 * once). A partition taken away counts as done, and is read again if it comes back. The
 * scan does not end between a revoke and the next assignment. */
static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                         rd_kafka_topic_partition_list_t *l, void *opaque)
{
    struct ks_scan *s = opaque;

    if (e != RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        rd_kafka_assign(rk, NULL);
        s->rebalancing = 1;
        return;
    }
    rd_kafka_assign(rk, l);
    for (size_t i = 0; i < s->nparts; i++) {
        struct part *p = &s->parts[i];
        int mine = rd_kafka_topic_partition_list_find(l, p->topic, p->partition) != NULL;
        if (mine == !p->away)
            continue;
        p->away = !mine;
        if (!p->done && !s->follow) {
            if (p->away)
                s->ndone++;
            else
                s->ndone--;
        }
        if (!p->away && p->held) { /* paused again: the assignment resumed it */
            rd_kafka_topic_partition_list_t *one = rd_kafka_topic_partition_list_new(1);
            if (one) {
                rd_kafka_topic_partition_list_add(one, p->topic, p->partition);
                rd_kafka_pause_partitions(rk, one);
                rd_kafka_topic_partition_list_destroy(one);
            }
        }
    }
    s->rebalancing = 0;
}

int ks_scan_next(struct ks_scan *s, int timeout_ms, rd_kafka_message_t **out,
                 struct ks_err *err)
{
    for (;;) {
        rd_kafka_message_t *m;
        struct part *p;

        if (!s->follow && !s->rebalancing && s->ndone >= s->nparts)
            return -1;
        if (!(m = rd_kafka_consumer_poll(s->rk, timeout_ms)))
            return 0;
        p = m->rkt ? part_of(s, m) : NULL;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (p)
                mark_done(s, p);
            rd_kafka_message_destroy(m);
            continue;
        }
        if (m->err) {
            ks_err_set(err, KS_EKAFKA, 1, NULL, "%s", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            return -2;
        }
        if (p && (p->held || p->away)) { /* fetched before the hold (the group reads it
                                           * next time), or before it was taken away */
            rd_kafka_message_destroy(m);
            continue;
        }
        if (!p) { /* a partition the topic gained after the scan started */
            if (!s->follow) {
                rd_kafka_message_destroy(m);
                continue;
            }
            *out = m;
            return 1;
        }
        if (!s->follow && m->offset >= p->end) { /* written after the scan started */
            mark_done(s, p);
            rd_kafka_message_destroy(m);
            continue;
        }
        p->next = m->offset + 1;
        if (m->offset + 1 >= p->end)
            mark_done(s, p);
        *out = m;
        return 1;
    }
}

double ks_scan_progress(const struct ks_scan *s)
{
    int64_t done = 0;

    if (s->follow || s->group || s->total <= 0)
        return s->ndone >= s->nparts && !s->follow ? 1.0 : 0.0;
    for (size_t i = 0; i < s->nparts; i++) {
        const struct part *p = &s->parts[i];
        if (p->done)
            done += p->end - p->start;
        else if (p->next > p->start)
            done += (p->next < p->end ? p->next : p->end) - p->start;
    }
    return (double)done / (double)s->total;
}

int64_t ks_scan_total(const struct ks_scan *s)
{
    return s->total;
}

size_t ks_scan_topic_count(const struct ks_scan *s)
{
    return s->ntopics;
}

const char *ks_scan_topic(const struct ks_scan *s, size_t i)
{
    return i < s->ntopics ? s->topics[i] : NULL;
}

void ks_scan_hold(struct ks_scan *s, const rd_kafka_message_t *m)
{
    rd_kafka_topic_partition_list_t *l;
    struct part *p;

    if (!s->group || !m->rkt || !(p = part_of(s, m)) || p->held || p->next != m->offset + 1)
        return;
    p->held = 1;
    p->next = m->offset;
    if (!p->done) { /* also when following: a held partition has nothing more to give */
        p->done = 1;
        if (!p->away)
            s->ndone++;
    }
    /* stop fetching it; a failure only costs the fetches that the check above drops */
    if ((l = rd_kafka_topic_partition_list_new(1))) {
        rd_kafka_topic_partition_list_add(l, p->topic, p->partition);
        rd_kafka_pause_partitions(s->rk, l);
        rd_kafka_topic_partition_list_destroy(l);
    }
}

rd_kafka_t *ks_scan_handle(struct ks_scan *s)
{
    return s->rk;
}

enum ks_code ks_scan_commit(struct ks_scan *s, struct ks_err *err)
{
    rd_kafka_topic_partition_list_t *l;
    rd_kafka_resp_err_t e = 0;
    int n = 0;

    if (!s->group)
        return KS_OK;
    if (!(l = rd_kafka_topic_partition_list_new((int)(s->nparts ? s->nparts : 1))))
        return ks_err_set(err, KS_ENOMEM, 0, NULL, "out of memory");
    for (size_t i = 0; i < s->nparts; i++)
        if (s->parts[i].next >= 0 && !s->parts[i].away) { /* not another member's */
            rd_kafka_topic_partition_list_add(l, s->parts[i].topic, s->parts[i].partition)
                ->offset = s->parts[i].next;
            n++;
        }
    if (n)
        e = rd_kafka_commit(s->rk, l, 0);
    rd_kafka_topic_partition_list_destroy(l);
    if (e)
        return ks_err_set(err, KS_EKAFKA, 1, NULL, "could not commit offsets: %s",
                          rd_kafka_err2str(e));
    return KS_OK;
}

/* ---- points in time ---------------------------------------------------------------------- */

static int digits(const char *s, int n, int *v)
{
    *v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        *v = *v * 10 + (s[i] - '0');
    }
    return 0;
}

/* days since 1970-01-01 of a proleptic Gregorian date (civil-from-days, inverted) */
static int64_t days_from_civil(int y, int m, int d)
{
    int64_t era, yoe, doy, doe;
    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int parse_rfc3339(const char *s, int64_t *ms)
{
    int y, mo, d, h = 0, mi = 0, sec = 0, frac = 0, off = 0;
    size_t n = strlen(s);
    const char *p;
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

    /* a day the month does not have is refused, not carried into the next month */
    if (n < 10 || s[4] != '-' || s[7] != '-' || digits(s, 4, &y) || digits(s + 5, 2, &mo) ||
        digits(s + 8, 2, &d) || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] ||
        (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))))
        return -1;
    p = s + 10;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        if (strlen(p) < 9 || p[3] != ':' || p[6] != ':' || digits(p + 1, 2, &h) ||
            digits(p + 4, 2, &mi) || digits(p + 7, 2, &sec) || h > 23 || mi > 59 || sec > 60)
            return -1;
        p += 9;
        if (*p == '.') {
            int scale = 100;
            if (p[1] < '0' || p[1] > '9') /* a fraction has digits */
                return -1;
            for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
                frac += (*p - '0') * scale;
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int oh, om;
            if (strlen(p) != 6 || p[3] != ':' || digits(p + 1, 2, &oh) ||
                digits(p + 4, 2, &om) || oh > 23 || om > 59)
                return -1;
            off = (oh * 60 + om) * (*p == '+' ? 1 : -1);
            p += 6;
        } else {
            return -1;
        }
    }
    if (*p)
        return -1;
    *ms = ((days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec) - (int64_t)off * 60) *
              1000 +
          frac;
    return 0;
}

int ks_scan_parse_time(const char *s, int64_t now, int64_t *ms)
{
    char *end;
    long long v;
    size_t n = s ? strlen(s) : 0;

    if (n == 0)
        return -1;
    if (strspn(s, "0123456789") == n) {
        errno = 0;
        v = strtoll(s, &end, 10);
        if (errno || *end)
            return -1;
        *ms = v;
        return 0;
    }
    if (n >= 2 && strspn(s, "0123456789") == n - 1 && strchr("smhd", s[n - 1])) {
        static const int64_t unit[] = {1000, 60000, 3600000, 86400000};
        errno = 0;
        v = strtoll(s, &end, 10);
        if (errno || end != s + n - 1 || v > 100000000)
            return -1;
        *ms = now - v * unit[strchr("smhd", s[n - 1]) - "smhd"];
        return *ms < 0 ? -1 : 0; /* before 1970: below */
    }
    /* before 1970: no Kafka record has such a timestamp, and the tools' "none" (-1) and
     * librdkafka's offsets-for-times codes (-1 latest, -2 earliest) are negative: an
     * --until 1969-... would have selected everything */
    if (parse_rfc3339(s, ms) != 0 || *ms < 0)
        return -1;
    return 0;
}
