/* outcome.h - the id of a PSP outcome, shared by everyone who reports one.
 *
 * The executor (from the PSP's answer) and the webhooks worker (from the PSP's
 * notification) may both report the same event: an order captured, a refund paid. They
 * derive the outcome id from the operation and the status reached, never from who saw
 * it, so both reports carry one id and the ledger posts the event once. */
#ifndef KS_OUTCOME_H
#define KS_OUTCOME_H

#include "ids.h"

/* out = ks_id_derive("out", "outcome", kind, object_id, status, NULL): kind is CHARGE,
 * REFUND or PAYOUT, object_id the order, refund or payout id, status the OutcomeStatus
 * symbol (SUCCEEDED, FAILED, ...). The message id of the outcome is
 * ks_id_derive("msg", "outcome", outcome_id, NULL). */
void ks_outcome_id(const char *kind, const char *object_id, const char *status,
                   char out[KS_ID_LEN]);

#endif
