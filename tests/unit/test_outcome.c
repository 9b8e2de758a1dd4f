/* test_outcome.c - outcome ids: the contract with the executor (lib/outcome.h). */
#include <string.h>

#include "lib/outcome.h"
#include "tests/unit/ktest.h"

/* Pinned values: the executor's and a webhook's report of one event must carry these same
 * ids, whichever build made them (a change here breaks the ledger's dedup across daemons). */
KT_TEST(test_pinned)
{
    char id[KS_ID_LEN], msg[KS_ID_LEN];

    ks_outcome_id("CHARGE", "ord_1", "SUCCEEDED", id);
    KT_STREQ(id, "out_d2fc8edd-d847-8b18-9446-102518cd5777");
    ks_outcome_message_id(id, msg);
    KT_STREQ(msg, "msg_e853fe22-1f99-875d-93d7-9b13b229bcba");
}

/* the definitions the header gives, spelled out with ks_id_derive */
KT_TEST(test_definition)
{
    char a[KS_ID_LEN], b[KS_ID_LEN], c[KS_ID_LEN];

    ks_outcome_id("REFUND", "rfd_9", "REFUNDED", a);
    ks_id_derive("out", "outcome", b, "REFUND", "rfd_9", "REFUNDED", NULL);
    KT_STREQ(a, b);
    KT_CHECK(ks_id_valid(a, "out"));
    ks_outcome_message_id(a, b);
    ks_id_derive("msg", "outcome", c, a, NULL);
    KT_STREQ(c, b);
    KT_CHECK(ks_id_valid(b, "msg"));
}

/* every input changes the id; the parts cannot slide into each other */
KT_TEST(test_distinct)
{
    char a[KS_ID_LEN], b[KS_ID_LEN];

    ks_outcome_id("CHARGE", "ord_1", "SUCCEEDED", a);
    ks_outcome_id("CHARGE", "ord_1", "PENDING_CUSTOMER", b);
    KT_CHECK(strcmp(a, b) != 0);
    ks_outcome_id("CHARGE", "ord_2", "SUCCEEDED", b);
    KT_CHECK(strcmp(a, b) != 0);
    ks_outcome_id("REFUND", "ord_1", "SUCCEEDED", b);
    KT_CHECK(strcmp(a, b) != 0);
    ks_outcome_id("CHARGE", "ord_1S", "UCCEEDED", b);
    KT_CHECK(strcmp(a, b) != 0);
    ks_outcome_id("CHARGE", "ord_1", "SUCCEEDED", b);
    KT_STREQ(a, b);
}

KT_MAIN(test_pinned, test_definition, test_distinct)
