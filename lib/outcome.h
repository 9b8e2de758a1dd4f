/* outcome.h - the ids of a PSP outcome (kasir.psp.outcomes), the same whoever reports it.
 *
 * The executor (from the PSP's answer) and kasir-webhooks (from the PSP's notification)
 * may both report one event: a card charge that succeeded is answered and notified. Both
 * derive the outcome's ids from the operation and the state reached, never from the
 * message that told them, so the two reports carry the same outcome_id and message_id and
 * the ledger posts one of them (it also dedups on its own source keys, docs/LEDGER.md).
 *
 * kind is the CommandKind symbol ("CHARGE", "REFUND", "PAYOUT"); object_id is Kasir's id
 * of the operation (the order id for CHARGE, the refund id for REFUND, the payout id for
 * PAYOUT); status is the OutcomeStatus symbol ("SUCCEEDED", "FAILED", "PENDING_CUSTOMER",
 * "EXPIRED", "REFUNDED", "PAID_OUT"). */
#ifndef KS_OUTCOME_H
#define KS_OUTCOME_H

#include "ids.h"

/* out = ks_id_derive("out", "outcome", kind, object_id, status, NULL). */
void ks_outcome_id(const char *kind, const char *object_id, const char *status,
                   char out[KS_ID_LEN]);
/* The payload's message_id of that outcome: ks_id_derive("msg", "outcome", outcome_id). */
void ks_outcome_message_id(const char *outcome_id, char out[KS_ID_LEN]);

#endif
