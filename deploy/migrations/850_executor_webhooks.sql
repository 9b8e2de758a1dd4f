-- 850: the tables of the PSP-facing workers, kasir-executor and kasir-webhooks.
-- squashes: 700_webhooks 701_executor 722_executor_attempts_object

-- kasir-executor (consumers/executor, its README): the journal of PSP attempts and the
-- refunds it has turned into commands.

-- One row per attempt of a command at a PSP, committed (through ks_batch_journal, fenced by
-- partition ownership) BEFORE the request leaves. state:
--   sent      the request may have reached the PSP and no answer is recorded: the next
--             delivery of the command asks the PSP (the adapter's status sequence) before
--             anything is sent again;
--   absent    the PSP demonstrably did not act (a 503, connection refused, a status lookup
--             that found nothing and could not resend): a new attempt may go anywhere;
--   resolved  the PSP's verdict is known and its outcome went to the outbox in the same
--             transaction that set this state.
-- (command_id, attempt) is the key: a replayed journal write changes nothing.
CREATE TABLE executor_attempts (
    command_id      text COLLATE "C" NOT NULL,
    attempt         integer NOT NULL CHECK (attempt > 0),
    kind            text NOT NULL CHECK (kind IN ('CHARGE', 'REFUND', 'PAYOUT')),
    object_id       text COLLATE "C" NOT NULL, -- order, refund or payout id
    order_id        text COLLATE "C",
    psp             text NOT NULL,
    method          text NOT NULL,
    idem_key        text NOT NULL,
    amount_minor    bigint NOT NULL CHECK (amount_minor > 0),
    currency        text NOT NULL,
    state           text NOT NULL DEFAULT 'sent' CHECK (state IN ('sent', 'absent', 'resolved')),
    verdict         text CHECK (verdict IN ('SUCCEEDED', 'PENDING_CUSTOMER', 'PENDING', 'FAILED')),
    psp_reference   text,
    failure_code    text,
    failure_message text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    resolved_at     timestamptz,
    PRIMARY KEY (command_id, attempt),
    CHECK ((state = 'resolved') = (verdict IS NOT NULL))
);
-- a refund finds the PSP and reference of its order's capture
CREATE INDEX executor_attempts_order ON executor_attempts (order_id)
    WHERE kind = 'CHARGE' AND state = 'resolved';
-- before a new attempt, whether another command acted on the same order, refund or payout
-- already (one object, one operation at a PSP); kasir-webhooks checks by it that a
-- notification comes from the PSP the executor called
CREATE INDEX executor_attempts_object ON executor_attempts (object_id, kind);

-- One row per refund request accepted as a REFUND command. refund_id is the idempotency
-- key; the sum of the rows of an order that did not fail is what is committed to be
-- refunded, checked against the order's captured_minor before a row is added.
CREATE TABLE executor_refunds (
    refund_id     text COLLATE "C" PRIMARY KEY,
    order_id      text COLLATE "C" NOT NULL,
    amount_minor  bigint NOT NULL CHECK (amount_minor > 0),
    psp           text NOT NULL,
    psp_reference text NOT NULL,
    failed        boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX executor_refunds_order ON executor_refunds (order_id);

-- kasir-webhooks (consumers/webhooks, its README): every PSP notification it read, and the
-- state it knows of each PSP operation.

-- One row per PSP event, (psp, event_key) unique: the dedup of notifications. event_key is
-- the ingress's event id (the PSP's own id when it sends one, else one derived from what
-- is signed), widened where one PSP id covers several events (a Midtrans refund shares
-- order_id, status_code and gross_amount with the settlement it refunds). Written in the
-- transaction of the event's effects, so a replay finds it and changes nothing. result
-- says what the event did: applied (an outcome was emitted), duplicate (the operation was
-- already in that state), stale (it was already further: a regression, or a pending after
-- the payment), late_success (money after an expiry or a failure: emitted, the operation
-- stays final), ignored (nothing to report: a VA created, a Midtrans refund the executor
-- reports). Notifications that are dead-lettered leave no row (the DLQ has them).
CREATE TABLE webhook_events (
    psp         text COLLATE "C" NOT NULL,
    event_key   text COLLATE "C" NOT NULL,
    webhook_id  text NOT NULL,
    kind        text CHECK (kind IN ('CHARGE', 'REFUND', 'PAYOUT')),
    object_id   text COLLATE "C",
    status      text,
    result      text NOT NULL CHECK (result IN ('applied', 'duplicate', 'stale',
                                                'late_success', 'ignored')),
    reason      text,
    outcome_id  text,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (psp, event_key)
);

-- The state of one PSP operation as the notifications told it: (kind, object_id) is
-- Kasir's operation (order, refund or payout). status moves only forward: from nothing or
-- PENDING_CUSTOMER to a final state, never out of a final state. late_success marks a
-- charge whose money arrived after it was final as FAILED or EXPIRED (reported once). A
-- final state is never left, whatever writes the row: the worker's decision is checked again
-- by the database (functions/webhook_operations_final.sql, SQLSTATE KS422).
CREATE TABLE webhook_operations (
    kind         text COLLATE "C" NOT NULL CHECK (kind IN ('CHARGE', 'REFUND', 'PAYOUT')),
    object_id    text COLLATE "C" NOT NULL,
    status       text NOT NULL CHECK (status IN ('PENDING_CUSTOMER', 'SUCCEEDED', 'FAILED',
                                                 'EXPIRED', 'REFUNDED', 'PAID_OUT')),
    late_success boolean NOT NULL DEFAULT false,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, object_id)
);
