/* outcome.c - see outcome.h. */
#include "outcome.h"

#include "banned.h"

void ks_outcome_id(const char *kind, const char *object_id, const char *status,
                   char out[KS_ID_LEN])
{
    ks_id_derive("out", "outcome", out, kind, object_id, status, NULL);
}
