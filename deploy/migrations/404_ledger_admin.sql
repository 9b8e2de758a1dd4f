-- 404: the ledger's admin operations (producers/ingress/admin_ledger.c, docs/LEDGER.md):
-- manual adjustments under a two-person rule, and payout retries.

-- A manual adjustment: requested by one API key, posted only when a different key of the
-- same partner approves it (ledger_adjustment_decide). amount_minor is signed, seen from the
-- seller: > 0 credits the seller's wallet, < 0 debits it; the other side is the counter
-- account (suspense of the partner, Kasir's fee revenue, or a PSP's clearing account).
-- A request not approved within 24 h expires; a rejected or expired request posts nothing.
CREATE TABLE ledger_adjustments (
    adjustment_id   text COLLATE "C" PRIMARY KEY,
    partner_id      text COLLATE "C" NOT NULL,
    idempotency_key text,
    seller_id       text COLLATE "C" NOT NULL,
    currency        text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    amount_minor    bigint NOT NULL CHECK (amount_minor <> 0
                                           AND abs(amount_minor) <= 1000000000000000),
    counter         text NOT NULL CHECK (counter IN ('suspense', 'fee_revenue', 'psp_clearing')),
    psp             text COLLATE "C",
    reason          text NOT NULL CHECK (reason <> ''),
    status          text NOT NULL DEFAULT 'REQUESTED'
                    CHECK (status IN ('REQUESTED', 'APPROVED', 'REJECTED', 'EXPIRED')),
    requested_key   text NOT NULL,              -- the API key that asked
    requested_by    text NOT NULL,              -- "<partner>/<key>"
    requested_at    timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL DEFAULT now() + interval '24 hours',
    decided_key     text,
    decided_by      text,
    decided_at      timestamptz,
    decision_note   text,
    entry_id        bigint,                     -- the posted entry (APPROVED only)
    CHECK ((counter = 'psp_clearing') = (psp IS NOT NULL)),
    CHECK ((status = 'APPROVED') = (entry_id IS NOT NULL)),
    CHECK (status IN ('REQUESTED', 'EXPIRED') OR decided_by IS NOT NULL),
    CHECK (decided_key IS NULL OR status <> 'APPROVED' OR decided_key <> requested_key),
    UNIQUE (partner_id, idempotency_key)
);
CREATE INDEX ledger_adjustments_partner ON ledger_adjustments (partner_id, requested_at);

-- Which payout failures a retry may follow (POST /v1/admin/payouts/{id}/retry): those that
-- say nothing about the destination, so the same payout may succeed later. Any other code
-- (an invalid or closed account, a name mismatch, a refusal by risk) is final. Data, not
-- code: an operator may add a PSP's code.
CREATE TABLE ledger_payout_retriable (
    failure_code text PRIMARY KEY,
    why          text NOT NULL
);
INSERT INTO ledger_payout_retriable VALUES
    ('INSUFFICIENT_FUNDS', 'refused by Kasir''s ledger: the seller''s wallet may cover it now'),
    ('EXPIRED', 'the PSP let the disbursement expire unprocessed'),
    ('psp_unavailable', 'the PSP or the destination bank was down'),
    ('psp_timeout', 'no answer from the PSP; resolved as failed'),
    ('psp_insufficient_balance', 'Kasir''s disbursement balance at the PSP ran short'),
    ('rate_limited', 'the PSP refused the call for its rate'),
    ('bank_unavailable', 'the destination bank was offline');

-- A retry of a failed payout is a new payout (payout_id = <failed>.r<n>): the failed one
-- stays FAILED (no way out of a final state) and keeps its ledger entries; the new one goes
-- through risk and the ledger's funds check like any payout.
CREATE TABLE ledger_payout_retries (
    payout_id    text COLLATE "C" PRIMARY KEY,   -- the new attempt
    retry_of     text COLLATE "C" NOT NULL UNIQUE, -- the failed payout it repeats
    partner_id   text COLLATE "C" NOT NULL,
    failure_code text NOT NULL,                  -- why the retried one failed
    requested_by text NOT NULL,
    reason       text NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now()
);
