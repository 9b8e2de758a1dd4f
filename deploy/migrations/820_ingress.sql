-- 820: the ingress (producers/ingress): partners and their API keys, idempotency records,
-- and the read model of payments, payment orders, refunds and payouts.
-- squashes: 200_ingress_schema 720_ledger_publish 760_ingress_unresolved_payments 770_ledger_checks_per_statement
--
-- The read-model tables are created here because the ingress creates their rows; the
-- workers own the status columns from then on (payments.status, payment_orders.status,
-- next_action, captured_minor, refunds.status, payouts.status, failure_code,
-- failure_message) and update them in place. Refunds and payouts in state PENDING_PUBLISH
-- are not accepted yet: their event has not been confirmed by Kafka, and the ingress never
-- shows them (a GET answers 404). A payment row is written only once its event is confirmed
-- and its answer stored (ingress_batch).
--
-- Why the tables look as they do (figures: docs/BENCHMARKS.md):
--   - id columns collate "C": ids are opaque ASCII tokens, byte order is their order, and
--     the database's C.UTF-8 collation would send every B-tree comparison through strcoll;
--   - no foreign keys between these tables: ingress_batch writes related rows in one
--     transaction, and a key would cost a trigger call and a row lock per row;
--   - fillfactor below 100 on the tables whose rows are updated after their insert
--     (idempotency records and payments by the ingress, orders by the workers: EXECUTING,
--     then a final status), so those updates stay HOT (on the page, no new index
--     entries); a BRIN index for the purge (expires_at grows with insertion order);
--   - statistics target 10 on the three tables written per payment: every query goes
--     through a unique index, and the default target made each ANALYZE read nearly every
--     page of idempotency_keys. Raise a column's target if a query filters it by range.

CREATE TABLE partners (
    partner_id       text PRIMARY KEY,
    name             text NOT NULL,
    rate_limit_rps   integer NOT NULL DEFAULT 2000 CHECK (rate_limit_rps > 0),
    rate_limit_burst integer NOT NULL DEFAULT 4000 CHECK (rate_limit_burst > 0),
    created_at       timestamptz NOT NULL DEFAULT now(),
    disabled_at      timestamptz
);

-- An API key is never stored: key_hash = SHA-256(key) finds it for HTTP Basic, and
-- sign_key = HMAC-SHA256(key, "kasir-token-v1") checks the signature of POST
-- /v1/auth/token (the partner derives it from its key, so the key itself never travels).
-- Changes to keys and partners are announced (ingress_auth_changed) so every running
-- ingress empties its credential caches at once.
CREATE TABLE api_keys (
    key_id     text PRIMARY KEY,
    partner_id text NOT NULL REFERENCES partners,
    key_hash   bytea NOT NULL UNIQUE,
    sign_key   bytea NOT NULL,
    scopes     text[] NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
CREATE INDEX api_keys_partner ON api_keys (partner_id);

-- One row per (partner, Idempotency-Key). key_hash is SHA-256 of the raw key; the raw key
-- is not kept. in_flight rows hold a lock (locked_at) that a retry may take over once it
-- is older than the lock TTL (a crashed request is resumed with the same resource id);
-- completed rows replay response_status + response_body byte for byte. A payment's claim
-- stores its answer at once, and its record counts as completed when its payment row
-- exists. checkout_id reserves a payment's checkout: two concurrent claims for one
-- checkout cannot both win.
CREATE TABLE idempotency_keys (
    partner_id      text COLLATE "C" NOT NULL,
    key_hash        bytea NOT NULL,
    route           text NOT NULL,
    fingerprint     bytea NOT NULL,
    resource_id     text NOT NULL,
    state           text NOT NULL CHECK (state IN ('in_flight', 'completed')),
    locked_at       timestamptz,
    response_status integer,
    response_body   bytea,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    checkout_id     text COLLATE "C",
    PRIMARY KEY (partner_id, key_hash)
) WITH (fillfactor = 70);
CREATE INDEX idempotency_keys_expiry_brin ON idempotency_keys USING brin (expires_at);
CREATE UNIQUE INDEX idempotency_keys_checkout
    ON idempotency_keys (partner_id, checkout_id) WHERE checkout_id IS NOT NULL;

CREATE TABLE payments (
    payment_id  text COLLATE "C" PRIMARY KEY,
    partner_id  text COLLATE "C" NOT NULL,
    checkout_id text COLLATE "C" NOT NULL,
    buyer_id    text NOT NULL,
    status      text NOT NULL CHECK (status IN ('PENDING_PUBLISH', 'NOT_STARTED', 'EXECUTING',
                                                'SUCCESS', 'FAILED')),
    metadata    jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (partner_id, checkout_id)
) WITH (fillfactor = 80);

CREATE TABLE payment_orders (
    order_id               text COLLATE "C" PRIMARY KEY,
    payment_id             text COLLATE "C" NOT NULL,
    partner_id             text NOT NULL,
    seq                    integer NOT NULL,
    seller_id              text NOT NULL,
    amount_minor           bigint NOT NULL CHECK (amount_minor > 0),
    currency               text NOT NULL,
    method                 text NOT NULL,
    psp_preference         text,
    status                 text NOT NULL DEFAULT 'NOT_STARTED'
                           CHECK (status IN ('NOT_STARTED', 'EXECUTING', 'PENDING_CUSTOMER',
                                             'SUCCESS', 'FAILED', 'EXPIRED')),
    captured_minor         bigint NOT NULL DEFAULT 0,
    refund_requested_minor bigint NOT NULL DEFAULT 0
                           CHECK (refund_requested_minor >= 0 AND refund_requested_minor <= amount_minor),
    next_action            jsonb,
    updated_at             timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 80);
CREATE INDEX payment_orders_payment ON payment_orders (payment_id);

-- A refund is accepted for a captured order only, up to captured_minor minus
-- refund_requested_minor (pending refunds reserved); a refund that fails gives its
-- reservation back (ingress_refund_failed).
CREATE TABLE refunds (
    refund_id    text COLLATE "C" PRIMARY KEY,
    partner_id   text NOT NULL,
    payment_id   text NOT NULL,
    order_id     text NOT NULL,
    amount_minor bigint NOT NULL CHECK (amount_minor > 0),
    currency     text NOT NULL,
    reason       text,
    status       text NOT NULL CHECK (status IN ('PENDING_PUBLISH', 'REQUESTED', 'EXECUTING',
                                                 'SUCCEEDED', 'FAILED')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refunds_order ON refunds (order_id);

CREATE TABLE payouts (
    payout_id           text COLLATE "C" PRIMARY KEY,
    partner_id          text NOT NULL,
    seller_id           text NOT NULL,
    amount_minor        bigint NOT NULL CHECK (amount_minor > 0),
    currency            text NOT NULL,
    channel             text NOT NULL CHECK (channel IN ('BANK_ACCOUNT', 'EWALLET')),
    bank_code           text,
    ewallet_channel     text,
    destination_account text NOT NULL,
    account_holder      text,
    description         text,
    status              text NOT NULL CHECK (status IN ('PENDING_PUBLISH', 'REQUESTED', 'HELD',
                                                        'EXECUTING', 'PAID_OUT', 'FAILED')),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    -- why a payout failed: a PSP's normalized failure code (from the outcome), or Kasir's
    -- own (INSUFFICIENT_FUNDS: refused by the ledger before any PSP saw it)
    failure_code        text,
    failure_message     text
);
-- a seller's wallet is the partner's: payouts are found by (partner, seller)
CREATE INDEX payouts_partner_seller ON payouts (partner_id, seller_id);

DO $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT table_name, column_name FROM information_schema.columns
              WHERE table_schema = current_schema()
                AND table_name IN ('idempotency_keys', 'payments', 'payment_orders') LOOP
        EXECUTE format('ALTER TABLE %I ALTER COLUMN %I SET STATISTICS 10',
                       c.table_name, c.column_name);
    END LOOP;
END $$;

-- Idempotency records past expires_at whose requests never resolved (ingress_purge keeps
-- them, with their reservations: their event may be in Kafka), for an operator. A
-- payment's request is resolved once its payment row exists: the ingress writes that row
-- only when Kafka confirmed the event (ingress_batch), in no state that waits for it, so
-- the view asks for the row and not for its status.
CREATE VIEW ingress_unresolved AS
SELECT k.partner_id, encode(k.key_hash, 'hex') AS key_hash, k.route, k.resource_id,
       k.created_at, k.expires_at, k.locked_at
  FROM idempotency_keys k
 WHERE k.expires_at < now()
   AND k.state <> 'completed'
   AND NOT (k.route = 'payments'
            AND EXISTS (SELECT 1 FROM payments p WHERE p.payment_id = k.resource_id));
