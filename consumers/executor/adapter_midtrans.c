/* adapter_midtrans.c - the Midtrans adapter. Not written yet: it supports no operation, so the
 * executor refuses commands for "midtrans" as an unsupported PSP instead of sending anything. */
#include "consumers/executor/adapter.h"

static int supports(enum ex_op op, const char *method, const char *currency)
{
    (void)op;
    (void)method;
    (void)currency;
    return 0;
}

const struct ex_adapter ex_adapter_midtrans = {
    .name = "midtrans",
    .supports = supports,
};
