/* Unit tests of the runtime's held retry copies (lib/worker_part.c wk_hold): order when
 * copies go back to the head, and the state an out-of-memory path leaves. No broker: the
 * partition is marked paused already, so wk_hold never reaches librdkafka. */
#include <stdlib.h>
#include <string.h>

#include "ktest.h"
#include "lib/worker_int.h"

static rd_kafka_message_t msgs[8];

static void part_init(struct part *p)
{
    memset(p, 0, sizeof(*p));
    p->paused = 1;
    p->taken = 100;
    for (int i = 0; i < 8; i++)
        msgs[i].offset = 10 + i;
}

/* copies taken from held and put back go before those left, in their order */
KT_TEST(test_hold_front_keeps_offset_order)
{
    struct ks_worker w;
    struct part p;
    memset(&w, 0, sizeof(w));
    part_init(&p);
    for (int i = 5; i < 8; i++) /* left held: 15..17 */
        wk_hold(&w, &p, &msgs[i], 0);
    p.front = 0; /* a wk_prepare pass begins */
    for (int i = 0; i < 5; i++) /* taken, then put back: 10..14 */
        wk_hold(&w, &p, &msgs[i], 1);
    KT_INTEQ(p.nheld, 8);
    for (size_t i = 0; i < p.nheld; i++)
        KT_INTEQ(p.held[i]->offset, 10 + (int64_t)i);
    KT_INTEQ(p.taken, 10); /* none of them is in hand: a copy fetched again is wanted */
    free(p.held);
}

/* An out-of-memory path releases every held copy (nheld 0) in the middle of a wk_prepare
 * pass whose put-backs had counted `front`; the next put-back must not move
 * (nheld - front) copies, a negative count: review, session 12 (crashed before) */
KT_TEST(test_hold_front_after_release)
{
    struct ks_worker w;
    struct part p;
    memset(&w, 0, sizeof(w));
    part_init(&p);
    p.capheld = 64;
    p.held = calloc(p.capheld, sizeof(*p.held));
    KT_CHECK(p.held != NULL);
    p.front = 3; /* three put back, then released: nheld 0 */
    p.nheld = 0;
    wk_hold(&w, &p, &msgs[4], 1);
    KT_INTEQ(p.nheld, 1);
    KT_CHECK(p.held[0] == &msgs[4]);
    KT_INTEQ(p.front, 1);
    free(p.held);
}

KT_MAIN(test_hold_front_keeps_offset_order, test_hold_front_after_release)
