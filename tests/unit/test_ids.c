/* test_ids.c - UUIDv7 ids (form, order, threads) and derived ids (determinism). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/ids.h"
#include "tests/unit/ktest.h"

KT_TEST(test_new_form)
{
    char id[KS_ID_LEN];
    struct ks_err err;

    memset(&err, 0x5a, sizeof(err));
    KT_INTEQ(ks_id_new("pay", id, &err), KS_OK);
    KT_INTEQ(strlen(id), 4 + 36);
    KT_CHECK(strncmp(id, "pay_", 4) == 0);
    KT_CHECK(ks_id_valid(id, "pay"));
    KT_CHECK(ks_id_valid(id, NULL));
    KT_CHECK(!ks_id_valid(id, "po"));
    KT_CHECK(!ks_id_valid(id, ""));
    /* version 7 and the RFC 9562 variant */
    KT_INTEQ(id[4 + 14], '7');
    KT_CHECK(strchr("89ab", id[4 + 19]) != NULL);
    KT_INTEQ(err.code, 0x5a5a5a5a); /* untouched on success */

    KT_INTEQ(ks_id_new(NULL, id, &err), KS_OK);
    KT_INTEQ(strlen(id), 36);
    KT_CHECK(ks_id_valid(id, NULL));
    KT_CHECK(ks_id_valid(id, ""));
    KT_CHECK(!ks_id_valid(id, "pay"));
    KT_INTEQ(ks_id_new("", id, &err), KS_OK);
    KT_INTEQ(strlen(id), 36);

    /* the longest prefix that fits KS_ID_LEN */
    KT_INTEQ(ks_id_new("abcdefghijklmnopqrstuvwxyz", id, &err), KS_OK);
    KT_CHECK(ks_id_valid(id, "abcdefghijklmnopqrstuvwxyz"));
}

KT_TEST(test_new_bad_prefix)
{
    char id[KS_ID_LEN];
    struct ks_err err;

    KT_INTEQ(ks_id_new("abcdefghijklmnopqrstuvwxyz0", id, &err), KS_EINVAL);
    KT_CHECK(strstr(err.msg, "prefix") != NULL);
    KT_INTEQ(ks_id_new("Pay", id, &err), KS_EINVAL);
    KT_INTEQ(ks_id_new("pay-x", id, &err), KS_EINVAL);
}

KT_TEST(test_new_timestamp_is_now)
{
    char id[KS_ID_LEN], hexms[13];
    struct ks_err err;
    struct timespec ts;
    unsigned long long ms, now;

    KT_INTEQ(ks_id_new(NULL, id, &err), KS_OK);
    clock_gettime(CLOCK_REALTIME, &ts);
    now = (unsigned long long)ts.tv_sec * 1000 + (unsigned long long)ts.tv_nsec / 1000000;
    memcpy(hexms, id, 8);
    memcpy(hexms + 8, id + 9, 4);
    hexms[12] = '\0';
    ms = strtoull(hexms, NULL, 16);
    KT_CHECK_MSG(ms <= now + 1 && now - ms < 5000, "id ms %llu, now %llu", ms, now);
}

#define MANY 100000

KT_TEST(test_new_monotonic)
{
    static char ids[2][KS_ID_LEN];
    struct ks_err err;
    int bad = 0;

    KT_INTEQ(ks_id_new("msg", ids[0], &err), KS_OK);
    for (int i = 1; i < MANY; i++) {
        char *prev = ids[(i - 1) % 2], *cur = ids[i % 2];
        if (ks_id_new("msg", cur, &err) != KS_OK || strcmp(prev, cur) >= 0 ||
            !ks_id_valid(cur, "msg")) {
            if (bad++ < 5)
                fprintf(stderr, "not increasing: %s then %s\n", prev, cur);
        }
    }
    KT_INTEQ(bad, 0);
}

#define THREADS 4
#define PER_THREAD 20000

static char thread_ids[THREADS * PER_THREAD][KS_ID_LEN];

static void *make_ids(void *arg)
{
    int t = (int)(size_t)arg;
    struct ks_err err;

    for (int i = 0; i < PER_THREAD; i++)
        if (ks_id_new(NULL, thread_ids[t * PER_THREAD + i], &err) != KS_OK)
            thread_ids[t * PER_THREAD + i][0] = '\0';
    return NULL;
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp(a, b);
}

KT_TEST(test_new_threads_unique)
{
    pthread_t th[THREADS];
    int dups = 0, invalid = 0;

    for (int t = 0; t < THREADS; t++)
        pthread_create(&th[t], NULL, make_ids, (void *)(size_t)t);
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    /* each thread's own ids increase */
    for (int t = 0; t < THREADS; t++)
        for (int i = 1; i < PER_THREAD; i++)
            if (strcmp(thread_ids[t * PER_THREAD + i - 1], thread_ids[t * PER_THREAD + i]) >= 0)
                dups++;
    qsort(thread_ids, THREADS * PER_THREAD, KS_ID_LEN, cmp_id);
    for (int i = 0; i < THREADS * PER_THREAD; i++) {
        if (!ks_id_valid(thread_ids[i], NULL))
            invalid++;
        if (i > 0 && strcmp(thread_ids[i - 1], thread_ids[i]) == 0)
            dups++;
    }
    KT_INTEQ(dups, 0);
    KT_INTEQ(invalid, 0);
}

KT_TEST(test_derive_deterministic)
{
    char a[KS_ID_LEN], b[KS_ID_LEN];

    ks_id_derive("msg", "ledger", a, "kasir.psp.outcomes", "3", "1024", NULL);
    ks_id_derive("msg", "ledger", b, "kasir.psp.outcomes", "3", "1024", NULL);
    KT_STREQ(a, b);
    KT_CHECK(ks_id_valid(a, "msg"));
    KT_INTEQ(a[4 + 14], '8'); /* UUIDv8 */
    KT_CHECK(strchr("89ab", a[4 + 19]) != NULL);

    /* no prefix and "" are the same: a bare uuid */
    ks_id_derive(NULL, "ns", a, "a", NULL);
    KT_CHECK(ks_id_valid(a, NULL));
    ks_id_derive("", "ns", b, "a", NULL);
    KT_STREQ(a, b);
}

KT_TEST(test_derive_pinned)
{
    char a[KS_ID_LEN];

    /* Pinned, because stored ids stop matching if the recipe changes. Computed apart from
     * this code, with Python: hashlib.sha256(b"ns\x00a") = 94b30d7e9cf1a483dc6fafcc6d...,
     * first 16 bytes, then version 8 (byte 6 high nibble) and variant 10 (byte 8). */
    ks_id_derive(NULL, "ns", a, "a", NULL);
    KT_STREQ(a, "94b30d7e-9cf1-8483-9c6f-afcc6ddad6e4");
}

KT_TEST(test_derive_sensitive_to_each_part)
{
    char base[KS_ID_LEN], x[KS_ID_LEN];

    ks_id_derive("msg", "ledger", base, "t", "3", "1024", NULL);
    ks_id_derive("msg", "ledger2", x, "t", "3", "1024", NULL);
    KT_CHECK(strcmp(base, x) != 0);
    ks_id_derive("msg", "ledger", x, "u", "3", "1024", NULL);
    KT_CHECK(strcmp(base, x) != 0);
    ks_id_derive("msg", "ledger", x, "t", "4", "1024", NULL);
    KT_CHECK(strcmp(base, x) != 0);
    ks_id_derive("msg", "ledger", x, "t", "3", "1025", NULL);
    KT_CHECK(strcmp(base, x) != 0);
    ks_id_derive("msg", "ledger", x, "t", "3", "1024", "", NULL);
    KT_CHECK(strcmp(base, x) != 0);
    ks_id_derive("msg", "ledger", x, "t", "3", NULL);
    KT_CHECK(strcmp(base, x) != 0);
    /* same uuid, other prefix */
    ks_id_derive("idem", "ledger", x, "t", "3", "1024", NULL);
    KT_STREQ(x + 5, base + 4);
    /* separators keep boundaries: ("ab","c") differs from ("a","bc") and ("abc") */
    ks_id_derive(NULL, "n", base, "ab", "c", NULL);
    ks_id_derive(NULL, "n", x, "a", "bc", NULL);
    KT_CHECK(strcmp(base, x) != 0);
    ks_id_derive(NULL, "n", x, "abc", NULL);
    KT_CHECK(strcmp(base, x) != 0);
    ks_id_derive(NULL, "na", x, "bc", NULL);
    KT_CHECK(strcmp(base, x) != 0);
}

KT_TEST(test_derive_after)
{
    static const char pay[] = "pay_0190f3c2-7b1e-7cc3-9d5e-3f1a2b4c5d6e";
    char a[KS_ID_LEN], b[KS_ID_LEN], c[KS_ID_LEN], ids[3][KS_ID_LEN];

    /* Pinned, computed apart with Python: sha256(b"ns\x00" + pay + b"\x000"), version 8
     * and variant 10 as ks_id_derive ("12f4dab4-d410-85ac-82ad-59a6fe0c445f"), then the
     * first 48 bits replaced by the payment id's */
    ks_id_derive_after(NULL, "ns", a, pay, "0", NULL);
    KT_STREQ(a, "0190f3c2-7b1e-85ac-82ad-59a6fe0c445f");
    ks_id_derive(NULL, "ns", b, pay, "0", NULL);
    KT_STREQ(b, "12f4dab4-d410-85ac-82ad-59a6fe0c445f");
    ks_id_derive_after("ord", "ns", b, pay, "0", NULL);
    KT_STREQ(b + 4, a);
    KT_CHECK(ks_id_valid(b, "ord"));
    /* deterministic, and each part (the one after included) counts */
    ks_id_derive_after("ord", "ns", c, pay, "0", NULL);
    KT_STREQ(b, c);
    ks_id_derive_after("ord", "ns", c, pay, "1", NULL);
    KT_CHECK(strcmp(b, c) != 0 && strncmp(b, c, 4 + 13) == 0);
    ks_id_derive_after("ord", "ns", c, "pay_0190f3c2-7b1e-7cc3-9d5e-3f1a2b4c5d6f", "0", NULL);
    KT_CHECK(strcmp(b, c) != 0 && strncmp(b, c, 4 + 13) == 0);
    /* ids made in order give derived ids in the same order, and so do ids derived from
     * those (a command id from an order id from a payment id) */
    for (int i = 0; i < 3; i++) {
        char p[KS_ID_LEN];
        KT_INTEQ(ks_id_new("pay", p, NULL), KS_OK);
        ks_id_derive_after("ord", "payment-order", c, p, "0", NULL);
        ks_id_derive_after("cmd", "psp-command", ids[i], c, "CHARGE", NULL);
        KT_CHECK(strncmp(ids[i] + 4, p + 4, 13) == 0);
        if (i)
            KT_CHECK(strncmp(ids[i - 1] + 4, ids[i] + 4, 13) <= 0);
        nanosleep(&(struct timespec){0, 1500000}, NULL);
    }
    KT_CHECK(strcmp(ids[0], ids[2]) < 0);
    /* an after that holds no uuid: the hash alone, as ks_id_derive over the same parts */
    ks_id_derive_after("ord", "ns", a, "checkout-42", "0", NULL);
    ks_id_derive("ord", "ns", b, "checkout-42", "0", NULL);
    KT_STREQ(a, b);
    ks_id_derive_after("ord", "ns", a, "pay-0190f3c2-7b1e-7cc3-9d5e-3f1a2b4c5d6e", "0", NULL);
    ks_id_derive("ord", "ns", b, "pay-0190f3c2-7b1e-7cc3-9d5e-3f1a2b4c5d6e", "0", NULL);
    KT_STREQ(a, b);
    ks_id_derive_after("ord", "ns", a, "0190F3C2-7B1E-7CC3-9D5E-3F1A2B4C5D6E", NULL);
    ks_id_derive("ord", "ns", b, "0190F3C2-7B1E-7CC3-9D5E-3F1A2B4C5D6E", NULL);
    KT_STREQ(a, b);
    ks_id_derive_after("ord", "ns", a, "pay_0190f3c2-7b1e-7cc3-9d5e-3f1a2b4c5d6ex", NULL);
    ks_id_derive("ord", "ns", b, "pay_0190f3c2-7b1e-7cc3-9d5e-3f1a2b4c5d6ex", NULL);
    KT_STREQ(a, b);
    /* a retried payout's id, <payout id>_r<n>, leads with its payout id's time */
    ks_id_derive_after("cmd", "psp-command", a, "po_0190f3c2-7b1e-7cc3-9d5e-3f1a2b4c5d6e_r2",
                       "PAYOUT", NULL);
    KT_CHECK(strncmp(a + 4, pay + 4, 13) == 0 && ks_id_valid(a, "cmd"));
    ks_id_derive_after("cmd", "psp-command", b, "po_0190f3c2-7b1e-7cc3-9d5e-3f1a2b4c5d6e_r3",
                       "PAYOUT", NULL);
    KT_CHECK(strcmp(a, b) != 0);
    /* a bare uuid leads as well */
    ks_id_derive_after(NULL, "ns", a, pay + 4, NULL);
    KT_CHECK(strncmp(a, pay + 4, 13) == 0);
    /* out may be one of the inputs (nothing is written to it before the hash) */
    snprintf(c, sizeof(c), "%s", pay);
    ks_id_derive_after("ord", "ns", c, c, "0", NULL);
    ks_id_derive_after("ord", "ns", b, pay, "0", NULL);
    KT_STREQ(c, b);
    snprintf(c, sizeof(c), "%s", pay);
    ks_id_derive("ord", "ns", c, c, "0", NULL);
    ks_id_derive("ord", "ns", b, pay, "0", NULL);
    KT_STREQ(c, b);
    /* a bad prefix or no after: "" */
    ks_id_derive_after("Bad Prefix", "ns", a, pay, NULL);
    KT_STREQ(a, "");
    ks_id_derive_after("ord", "ns", a, NULL, NULL);
    KT_STREQ(a, "");
}

KT_TEST(test_derive_bad_prefix)
{
    char x[KS_ID_LEN];

    ks_id_derive("Bad Prefix", "n", x, "a", NULL);
    KT_STREQ(x, "");
    KT_CHECK(!ks_id_valid(x, NULL));
}

KT_TEST(test_valid)
{
    static const struct {
        const char *s, *prefix;
        int want;
    } v[] = {
        {"0190f3c2-7b1e-7cc3-9d5e-3f1a2b4c5d6e", NULL, 1},
        {"pay_0190f3c2-7b1e-7cc3-9d5e-3f1a2b4c5d6e", "pay", 1},
        {"pay_0190f3c2-7b1e-7cc3-9d5e-3f1a2b4c5d6e", NULL, 1},
        {"pay_order_0190f3c2-7b1e-7cc3-9d5e-3f1a2b4c5d6e", "pay_order", 1},
        {"0190F3C2-7B1E-7CC3-9D5E-3F1A2B4C5D6E", NULL, 0},        /* upper case */
        {"0190f3c27b1e-7cc3-9d5e-3f1a2b4c5d6e0", NULL, 0},        /* hyphen moved */
        {"0190f3c2-7b1e-7cc3-9d5e-3f1a2b4c5d6", NULL, 0},         /* short */
        {"0190f3c2-7b1e-7cc3-9d5e-3f1a2b4c5d6e0", NULL, 0},       /* long */
        {"0190f3c2-7b1e-7cc3-9d5e-3f1a2b4c5d6g", NULL, 0},        /* not hex */
        {"pay0190f3c2-7b1e-7cc3-9d5e-3f1a2b4c5d6e", NULL, 0},     /* no '_' */
        {"_0190f3c2-7b1e-7cc3-9d5e-3f1a2b4c5d6e", NULL, 0},       /* empty prefix */
        {"Pay_0190f3c2-7b1e-7cc3-9d5e-3f1a2b4c5d6e", NULL, 0},    /* prefix case */
        {"pay_0190f3c2-7b1e-7cc3-9d5e-3f1a2b4c5d6e", "pa", 0},
        {"xpay_0190f3c2-7b1e-7cc3-9d5e-3f1a2b4c5d6e", "pay", 0},
        {"0190f3c2-7b1e-7cc3-9d5e-3f1a2b4c5d6e", "pay", 0},
        {"", NULL, 0},
    };

    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        KT_CHECK_MSG(ks_id_valid(v[i].s, v[i].prefix) == v[i].want, "\"%s\" prefix %s",
                     v[i].s, v[i].prefix ? v[i].prefix : "NULL");
    KT_INTEQ(ks_id_valid(NULL, NULL), 0);
}

/* ids read from bytes someone else wrote: kept when they fit, hashed when they do not */
KT_TEST(test_id_from_bytes)
{
    char a[KS_ID_LEN], b[KS_ID_LEN], c[KS_ID_LEN];
    char long1[100], long2[100];
    ks_id_from_bytes("msg_abc", 7, a);
    KT_STREQ(a, "msg_abc");
    memset(long1, 'x', sizeof(long1));
    memcpy(long2, long1, sizeof(long2));
    long2[99] = 'y'; /* same first 63 bytes */
    ks_id_from_bytes(long1, sizeof(long1), a);
    ks_id_from_bytes(long2, sizeof(long2), b);
    KT_CHECK(strcmp(a, b) != 0);        /* never cut to one id */
    KT_CHECK(strncmp(a, "msg_", 4) == 0 && strlen(a) < KS_ID_LEN);
    ks_id_from_bytes("\xff\xfe", 2, c);  /* not UTF-8: a storable id */
    KT_CHECK(ks_id_valid(c, "msg"));
    ks_id_from_bytes("E\0x", 3, a);      /* a NUL inside: hashed, not "E" */
    KT_CHECK(strcmp(a, "E") != 0);
    ks_id_from_bytes(long1, sizeof(long1), c);
    ks_id_from_bytes(long1, sizeof(long1), b);
    KT_STREQ(b, c);                     /* stable: every copy of an input gets one id */
}

KT_MAIN(test_id_from_bytes, test_new_form, test_new_bad_prefix, test_new_timestamp_is_now, test_new_monotonic,
        test_new_threads_unique, test_derive_deterministic, test_derive_pinned,
        test_derive_sensitive_to_each_part, test_derive_after, test_derive_bad_prefix, test_valid)
