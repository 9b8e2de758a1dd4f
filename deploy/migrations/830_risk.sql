-- 830: tables owned by kasir-risk (consumers/risk): one decision per payment and per payout,
-- and the holds an admin releases or rejects. See consumers/README.md; what an admin does
-- with a hold is functions/risk_hold_*.sql and risk_holds_list.sql, called by the ingress's
-- admin endpoints and `kasir-risk holds`.
-- squashes: 301_risk 302_risk_holds

-- One row per payment decided. (partner_id, checkout_id) is the idempotency key: a second
-- event for a checkout (a redelivery, or another payment for the same checkout) finds it
-- taken and is not decided again. The rows are also the velocity history of the buyer:
-- at_us is the event's occurred_at (the ingress's acceptance time), so a replayed batch
-- sees the same windows, and currencies/amounts are the payment's totals per currency.
-- reasons and rules (the codes and the ids of the rules that fired) are NULL when none
-- did: an approval, most rows, is kept narrow.
CREATE TABLE risk_payments (
    partner_id  text COLLATE "C" NOT NULL,
    checkout_id text COLLATE "C" NOT NULL,
    payment_id  text COLLATE "C" NOT NULL,
    buyer_id    text COLLATE "C" NOT NULL,
    at_us       bigint NOT NULL,
    currencies  text[] NOT NULL,
    amounts     bigint[] NOT NULL,
    decision    text NOT NULL CHECK (decision IN ('APPROVE', 'REVIEW', 'REJECT')),
    reasons     text[],
    rules       text[],
    decided_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (partner_id, checkout_id),
    CHECK (cardinality(currencies) = cardinality(amounts) AND cardinality(currencies) > 0)
);
-- the buyer's history in time order: velocity windows and the buyer's first payment
CREATE INDEX risk_payments_buyer ON risk_payments (partner_id, buyer_id, at_us);

-- One row per payout decided; payout_id is the idempotency key.
CREATE TABLE risk_payouts (
    payout_id    text COLLATE "C" PRIMARY KEY,
    partner_id   text COLLATE "C" NOT NULL,
    seller_id    text NOT NULL,
    at_us        bigint NOT NULL,
    amount_minor bigint NOT NULL,
    currency     text NOT NULL,
    decision     text NOT NULL CHECK (decision IN ('APPROVE', 'REVIEW', 'REJECT')),
    reasons      text[],
    rules        text[],
    decided_at   timestamptz NOT NULL DEFAULT now()
);

-- A payment or payout that risk sent to REVIEW. hold_id is the payment's or payout's id.
-- The PspCommands an approval releases were encoded by the worker when it held the
-- payment (risk_hold_commands: SQL cannot write Avro); risk_hold_decide moves them into
-- kasir_outbox under outbox_worker, the worker-runtime owner whose relay sends them.
CREATE TABLE risk_holds (
    hold_id       text COLLATE "C" PRIMARY KEY,
    kind          text NOT NULL CHECK (kind IN ('payment', 'payout')),
    partner_id    text COLLATE "C" NOT NULL,
    party_id      text NOT NULL,              -- the buyer (payment) or the seller (payout)
    checkout_id   text,                       -- payments only
    currencies    text[] NOT NULL,
    amounts       bigint[] NOT NULL,
    reasons       text[] NOT NULL,
    rules         text[] NOT NULL,
    outbox_worker text NOT NULL,
    status        text NOT NULL DEFAULT 'HELD' CHECK (status IN ('HELD', 'APPROVED', 'REJECTED')),
    held_at       timestamptz NOT NULL DEFAULT now(),
    decided_at    timestamptz,
    decided_by    text,                       -- "<partner>/<credential>" of the admin
    decision_note text,                       -- the admin's reason
    CHECK ((status = 'HELD') = (decided_at IS NULL)),
    CHECK (status = 'HELD' OR (decided_by IS NOT NULL AND decision_note IS NOT NULL))
);
CREATE INDEX risk_holds_partner ON risk_holds (partner_id, status, held_at);

-- The outputs of a held payment (one per order) or payout, ready for kasir_outbox.
CREATE TABLE risk_hold_commands (
    hold_id    text COLLATE "C" NOT NULL REFERENCES risk_holds ON DELETE CASCADE,
    n          integer NOT NULL,
    message_id text NOT NULL,
    topic      text NOT NULL,
    key        bytea,
    value      bytea NOT NULL,
    headers    bytea,
    PRIMARY KEY (hold_id, n)
);
