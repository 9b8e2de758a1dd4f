/* adapter_xendit.c - the Xendit adapter. Not written yet: it supports no operation, so the
 * executor refuses commands for "xendit" as an unsupported PSP instead of sending anything. */
#include "consumers/executor/adapter.h"

static int supports(enum ex_op op, const char *method, const char *currency)
{
    (void)op;
    (void)method;
    (void)currency;
    return 0;
}

const struct ex_adapter ex_adapter_xendit = {
    .name = "xendit",
    .supports = supports,
};
