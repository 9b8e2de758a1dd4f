-- 200: the ingress (producers/ingress): partners and their API keys, idempotency records,
-- and the read model of payments, payment orders, refunds and payouts.
--
-- The read-model tables are created here because the ingress creates their rows; the
-- workers own the status columns from then on (payments.status, payment_orders.status,
-- next_action, captured_minor, refunds.status, payouts.status) and update them in place.
-- Rows in state PENDING_PUBLISH are not accepted yet: their event has not been confirmed
-- by Kafka. The ingress never shows them (a GET answers 404).

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
-- completed rows replay response_status + response_body byte for byte.
CREATE TABLE idempotency_keys (
    partner_id      text NOT NULL,
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
    PRIMARY KEY (partner_id, key_hash)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

CREATE TABLE payments (
    payment_id  text PRIMARY KEY,
    partner_id  text NOT NULL,
    checkout_id text NOT NULL,
    buyer_id    text NOT NULL,
    status      text NOT NULL CHECK (status IN ('PENDING_PUBLISH', 'NOT_STARTED', 'EXECUTING',
                                                'SUCCESS', 'FAILED')),
    metadata    jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (partner_id, checkout_id)
);

CREATE TABLE payment_orders (
    order_id               text PRIMARY KEY,
    payment_id             text NOT NULL REFERENCES payments ON DELETE CASCADE,
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
);
CREATE INDEX payment_orders_payment ON payment_orders (payment_id);

CREATE TABLE refunds (
    refund_id    text PRIMARY KEY,
    partner_id   text NOT NULL,
    payment_id   text NOT NULL,
    order_id     text NOT NULL REFERENCES payment_orders,
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
    payout_id           text PRIMARY KEY,
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
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- ingress_batch: one round trip and one commit for a batch of concurrent requests
-- (group commit). fin: the finishes of requests whose events Kafka confirmed (complete)
-- or refused (release); claims: new requests to reserve. Returns one jsonb per claim:
--   {i, outcome: claimed|replay|in_flight|mismatch|duplicate_checkout|not_found|exceeds,
--    rid, status, body (base64), amount_minor, currency, payment_id}
-- Claims come sorted by (partner, key) from the caller, so two batches running at once
-- take their row locks in the same order.
-- (ingress_batch(): its one definition is deploy/migrations/functions/ingress_batch.sql)

-- ingress_purge: drops idempotency records past expires_at. A record that never completed
-- takes its never-accepted resource with it (and gives back the refund reservation).
-- (ingress_purge(): its one definition is deploy/migrations/functions/ingress_purge.sql)
