/* test_sandbox_store.c - the PSP sandbox's store (deploy/psp-sandbox/store.c and util.c are
 * compiled into this test): objects, references, idempotency records and refund totals stay
 * retrievable past 200,000 of each, and no jansson object holds more than a shard's share
 * of them, so growing one never rehashes a whole map under the store's lock
 * (docs/BENCHMARKS.md, sessions 37 and 38). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deploy/psp-sandbox/store.c"
#include "deploy/psp-sandbox/util.c" /* sb_idem_check's fingerprint and tag */
#include "tests/unit/ktest.h"

struct sb_ctx SB;

#define N 200000
/* The most keys one object may hold at N records: growing an object of 4,096 keys rehashes
 * them in well under a millisecond; one of 131,072 took 16 ms (store.c). With 256 shards
 * the largest holds ~900; the bound catches 48 shards or fewer, and one map unsharded. */
#define SHARD_BOUND 4096

static void key(char *out, size_t cap, const char *prefix, int i)
{
    snprintf(out, cap, "%s%07d", prefix, i);
}

KT_TEST(test_fill)
{
    char id[32], ref[32], scope[48];
    struct sb_resp r = {.status = 200, .body = "{\"ok\":true}"};
    int i;

    KT_INTEQ(sb_store_init(), 0);
    for (i = 0; i < N; i++) {
        key(id, sizeof(id), "pi_", i);
        key(ref, sizeof(ref), "ord_", i);
        key(scope, sizeof(scope), "stripe:tag:key_", i);
        sb_obj_put("payment_intent", id, json_pack("{s:s, s:i}", "id", id, "n", i));
        sb_ref_put("payment_intent", ref, id);
        snprintf(r.request_id, sizeof(r.request_id), "req_%d", i);
        sb_idem_store(scope, "fp-a", &r);
        /* a refund of every charge, two of every tenth */
        key(ref, sizeof(ref), "re_", i);
        sb_ledger_add_refund("stripe", id, ref, ref, NULL, 100, "usd", "card");
        if (i % 10 == 0)
            sb_ledger_add_refund("stripe", id, ref, ref, NULL, 250, "usd", "card");
    }
}

KT_TEST(test_every_record_retrievable)
{
    char id[32], ref[32], scope[48], want[32];
    int i, bad_obj = 0, bad_ref = 0, bad_hit = 0, bad_mismatch = 0;

    for (i = 0; i < N; i++) {
        struct sb_resp r = {0};
        json_t *o;

        key(id, sizeof(id), "pi_", i);
        key(ref, sizeof(ref), "ord_", i);
        key(scope, sizeof(scope), "stripe:tag:key_", i);
        o = sb_obj_get("payment_intent", id);
        if (!o || json_integer_value(json_object_get(o, "n")) != i)
            bad_obj++;
        if (!sb_ref_get("payment_intent", ref) || strcmp(sb_ref_get("payment_intent", ref), id))
            bad_ref++;
        snprintf(want, sizeof(want), "req_%d", i);
        if (sb_idem_lookup(scope, "fp-a", &r) != SB_IDEM_HIT || r.status != 200 ||
            strcmp(r.body, "{\"ok\":true}") != 0 || strcmp(r.request_id, want) != 0)
            bad_hit++;
        free(r.body);
        if (sb_idem_lookup(scope, "fp-b", &r) != SB_IDEM_MISMATCH)
            bad_mismatch++;
    }
    KT_INTEQ(bad_obj, 0);
    KT_INTEQ(bad_ref, 0);
    KT_INTEQ(bad_hit, 0);
    KT_INTEQ(bad_mismatch, 0);
    /* a key never stored is not found, of a kind never stored neither */
    KT_CHECK(sb_obj_get("payment_intent", "pi_absent") == NULL);
    KT_CHECK(sb_obj_get("refund", "pi_0000001") == NULL);
    KT_CHECK(sb_ref_get("payment_intent", "ord_absent") == NULL);
}

KT_TEST(test_refund_totals)
{
    char id[32];
    int i, bad = 0;

    for (i = 0; i < N; i++) {
        key(id, sizeof(id), "pi_", i);
        if (sb_ledger_refunded("stripe", id) != (i % 10 == 0 ? 350 : 100))
            bad++;
    }
    KT_INTEQ(bad, 0);
    /* per PSP: the same id at another PSP has refunded nothing */
    KT_INTEQ(sb_ledger_refunded("midtrans", "pi_0000000"), 0);
    KT_INTEQ(sb_ledger_refunded("stripe", "pi_absent"), 0);
    /* and the ledger holds each refund with what it refunds */
    KT_INTEQ(json_array_size(sb_ledger_entries()), N + N / 10);
    KT_STREQ(json_string_value(json_object_get(json_array_get(sb_ledger_entries(), 1),
                                               "refund_of")),
             "pi_0000000");
}

KT_TEST(test_entry_not_built_is_not_entered)
{
    size_t n = json_array_size(sb_ledger_entries());
    json_t *last = json_array_get(sb_ledger_entries(), n - 1);

    /* a string jansson refuses (not UTF-8): no entry, no total, and no other entry tagged */
    KT_CHECK(sb_ledger_add_refund("stripe", "pi_0000003", "re_x", "re_x", "k-\xff", 5, "usd",
                                  "card") == NULL);
    KT_INTEQ(json_array_size(sb_ledger_entries()), n);
    KT_INTEQ(sb_ledger_refunded("stripe", "pi_0000003"), 100);
    KT_STREQ(json_string_value(json_object_get(last, "refund_of")), "pi_0199999");
}

KT_TEST(test_null_keys_refused)
{
    /* a NULL id or reference is refused, as jansson refuses it, not dereferenced */
    sb_obj_put("payment_intent", NULL, json_object());
    sb_ref_put("payment_intent", NULL, "pi_x");
    KT_CHECK(sb_obj_get("payment_intent", NULL) == NULL);
    KT_CHECK(sb_ref_get("payment_intent", NULL) == NULL);
}

KT_TEST(test_no_object_holds_a_whole_map)
{
    size_t largest = sb_store_largest_object();

    KT_CHECK_MSG(largest >= N / 1024, "largest %zu: the records are not in the maps", largest);
    KT_CHECK_MSG(largest <= SHARD_BOUND, "largest object holds %zu keys (bound %d)", largest,
                 SHARD_BOUND);
}

KT_TEST(test_reset_forgets)
{
    struct sb_resp r = {0};

    sb_store_reset();
    KT_CHECK(sb_obj_get("payment_intent", "pi_0000007") == NULL);
    KT_CHECK(sb_ref_get("payment_intent", "ord_0000007") == NULL);
    KT_CHECK(sb_idem_lookup("stripe:tag:key_0000007", "fp-a", &r) == SB_IDEM_NEW);
    KT_INTEQ((long long)sb_store_largest_object(), 0);
    KT_INTEQ(sb_ledger_refunded("stripe", "pi_0000007"), 0);
    KT_INTEQ(json_array_size(sb_ledger_entries()), 0);
    /* and the store takes records again after a reset */
    sb_obj_put("payment_intent", "pi_again", json_pack("{s:s}", "id", "pi_again"));
    KT_CHECK(sb_obj_get("payment_intent", "pi_again") != NULL);
}

KT_MAIN(test_fill, test_every_record_retrievable, test_refund_totals,
        test_entry_not_built_is_not_entered, test_null_keys_refused,
        test_no_object_holds_a_whole_map, test_reset_forgets)
