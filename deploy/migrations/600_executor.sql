-- 600: tables owned by kasir-executor (consumers/executor): the journal of PSP attempts and
-- the refunds it has turned into commands. See consumers/executor/README.md.

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
