/* outcome.c - outcome ids (outcome.h). */
#include "outcome.h"

#include "banned.h"

void ks_outcome_id(const char *kind, const char *object_id, const char *status,
                   char out[KS_ID_LEN])
{
    ks_id_derive("out", "outcome", out, kind, object_id, status, NULL);
}

void ks_outcome_message_id(const char *outcome_id, char out[KS_ID_LEN])
{
    ks_id_derive("msg", "outcome", out, outcome_id, NULL);
}
