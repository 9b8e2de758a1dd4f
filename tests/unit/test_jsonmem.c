/* test_jsonmem.c - the per-thread cache of jansson's small blocks (lib/jsonmem.c). */
#include <jansson.h>
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lib/jsonmem.h"
#include "tests/unit/ktest.h"

/* a freed block comes back for a request of its size class, and only for one that fits */
KT_TEST(test_reuse)
{
    void *p = ks_jsonmem_malloc(40), *q, *r;
    KT_CHECK(p != NULL);
    memset(p, 0xab, 40);
    ks_jsonmem_free(p);
    KT_INTEQ(ks_jsonmem_cached(), 48); /* a 48-byte chunk: 40 usable */
    q = ks_jsonmem_malloc(100);        /* another class: not p */
    KT_CHECK(q != NULL && q != p);
    KT_CHECK(malloc_usable_size(q) >= 100);
    r = ks_jsonmem_malloc(33); /* 33 + 8 rounds to 48 too: p */
    KT_CHECK(r == p);
    KT_INTEQ(ks_jsonmem_cached(), 0);
    ks_jsonmem_free(q);
    ks_jsonmem_free(r);
    ks_jsonmem_free(NULL);
    ks_jsonmem_release();
    KT_INTEQ(ks_jsonmem_cached(), 0);
}

/* big blocks go straight back to free; the cache stops at its bound */
KT_TEST(test_bounds)
{
    enum { N = (int)(KS_JSONMEM_MAX_BYTES / 1000) + 64 }; /* 1,008-byte chunks, more than fit */
    void **v = calloc(N, sizeof(*v));
    size_t before;

    ks_jsonmem_free(ks_jsonmem_malloc(4096));
    KT_INTEQ(ks_jsonmem_cached(), 0);
    for (int i = 0; i < N; i++)
        v[i] = ks_jsonmem_malloc(1000);
    for (int i = 0; i < N; i++)
        ks_jsonmem_free(v[i]);
    before = ks_jsonmem_cached();
    KT_CHECK(before <= KS_JSONMEM_MAX_BYTES);
    KT_CHECK(before > KS_JSONMEM_MAX_BYTES - 2048);
    ks_jsonmem_release();
    KT_INTEQ(ks_jsonmem_cached(), 0);
    free(v);
}

static void *free_them(void *arg)
{
    void **v = arg;
    for (int i = 0; i < 1000; i++)
        ks_jsonmem_free(v[i]);
    /* kept by this thread, freed when it ends */
    return (void *)(ks_jsonmem_cached() > 0 ? v : NULL);
}

/* a block allocated on one thread and freed on another is an ordinary malloc block */
KT_TEST(test_threads)
{
    void *v[1000], *ret = NULL;
    pthread_t t;
    for (int i = 0; i < 1000; i++)
        v[i] = ks_jsonmem_malloc((size_t)(i % 200) + 1);
    KT_CHECK(pthread_create(&t, NULL, free_them, v) == 0);
    KT_CHECK(pthread_join(t, &ret) == 0);
    KT_CHECK(ret == v);
    KT_INTEQ(ks_jsonmem_cached(), 0);
}

/* jansson through the cache: trees built, freed and built again read back the same */
KT_TEST(test_jansson)
{
    json_t *a;
    char *s;
    ks_jsonmem_install();
    ks_jsonmem_install();
    for (int round = 0; round < 3; round++) {
        a = json_pack("{s:s, s:I, s:[{s:s, s:n}], s:{}}", "message_id", "msg_1", "occurred_at",
                      (json_int_t)1767225600000000, "orders", "order_id", "ord_1", "psp", "metadata");
        KT_CHECK(a != NULL);
        KT_INTEQ(json_string_set(json_object_get(a, "message_id"), "msg_2"), 0);
        s = json_dumps(a, JSON_COMPACT | JSON_SORT_KEYS);
        KT_STREQ(s, "{\"message_id\":\"msg_2\",\"metadata\":{},\"occurred_at\":1767225600000000,"
                    "\"orders\":[{\"order_id\":\"ord_1\",\"psp\":null}]}");
        free(s);
        json_decref(a);
    }
    ks_jsonmem_release();
}

KT_MAIN(test_reuse, test_bounds, test_threads, test_jansson)
