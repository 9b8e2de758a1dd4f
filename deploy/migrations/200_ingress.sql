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
CREATE OR REPLACE FUNCTION ingress_batch(fin jsonb, claims jsonb, lock_ttl interval,
                                         keep interval)
RETURNS SETOF jsonb LANGUAGE plpgsql AS $$
DECLARE
    f jsonb;
    r jsonb;
    k idempotency_keys%ROWTYPE;
    kh bytea;
    fp bytea;
    rt text;
    amt bigint;
    o payment_orders%ROWTYPE;
    other text;
    cur text;
BEGIN
    FOR f IN SELECT value FROM jsonb_array_elements(fin) LOOP
        kh := decode(f->>'key', 'hex');
        IF f->>'op' = 'complete' THEN
            UPDATE idempotency_keys
               SET state = 'completed', locked_at = NULL,
                   response_status = (f->>'status')::int,
                   response_body = decode(f->>'body', 'base64')
             WHERE partner_id = f->>'partner' AND key_hash = kh;
            IF f->>'route' = 'payments' THEN
                UPDATE payments SET status = 'NOT_STARTED', updated_at = now()
                 WHERE payment_id = f->>'rid' AND status = 'PENDING_PUBLISH';
            ELSIF f->>'route' = 'refunds' THEN
                UPDATE refunds SET status = 'REQUESTED', updated_at = now()
                 WHERE refund_id = f->>'rid' AND status = 'PENDING_PUBLISH';
            ELSIF f->>'route' = 'payouts' THEN
                UPDATE payouts SET status = 'REQUESTED', updated_at = now()
                 WHERE payout_id = f->>'rid' AND status = 'PENDING_PUBLISH';
            END IF;
        ELSE
            -- release: Kafka did not confirm. The event may still have been written (a
            -- timeout is ambiguous), so the record keeps its resource id and fingerprint
            -- and is only unlocked: the client's retry resumes it with the same ids, and
            -- the deterministic message id dedups downstream.
            UPDATE idempotency_keys SET locked_at = '-infinity'
             WHERE partner_id = f->>'partner' AND key_hash = kh AND state = 'in_flight';
        END IF;
    END LOOP;

    FOR r IN SELECT value FROM jsonb_array_elements(claims) LOOP
        kh := decode(r->>'key', 'hex');
        fp := decode(r->>'fp', 'hex');
        rt := r->>'route';
        INSERT INTO idempotency_keys (partner_id, key_hash, route, fingerprint, resource_id,
                                      state, locked_at, expires_at)
        VALUES (r->>'partner', kh, rt, fp, r->>'rid', 'in_flight', now(), now() + keep)
        ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            SELECT * INTO k FROM idempotency_keys
             WHERE partner_id = r->>'partner' AND key_hash = kh FOR UPDATE;
            IF NOT FOUND THEN
                RETURN NEXT jsonb_build_object('i', r->'i', 'outcome', 'in_flight');
                CONTINUE;
            END IF;
            IF k.fingerprint <> fp OR k.route <> rt THEN
                RETURN NEXT jsonb_build_object('i', r->'i', 'outcome', 'mismatch');
            ELSIF k.state = 'completed' THEN
                RETURN NEXT jsonb_build_object('i', r->'i', 'outcome', 'replay',
                    'status', k.response_status,
                    'body', translate(encode(k.response_body, 'base64'), E'\n', ''));
            ELSIF k.locked_at > now() - lock_ttl THEN
                RETURN NEXT jsonb_build_object('i', r->'i', 'outcome', 'in_flight');
            ELSE
                -- take over a crashed or failed attempt: same resource id, same events
                UPDATE idempotency_keys SET locked_at = now()
                 WHERE partner_id = r->>'partner' AND key_hash = kh;
                IF rt = 'refunds' THEN
                    SELECT payment_id, amount_minor, currency INTO other, amt, cur
                      FROM refunds WHERE refund_id = k.resource_id;
                    RETURN NEXT jsonb_build_object('i', r->'i', 'outcome', 'claimed',
                        'rid', k.resource_id, 'resumed', true, 'payment_id', other,
                        'amount_minor', amt, 'currency', cur);
                ELSE
                    RETURN NEXT jsonb_build_object('i', r->'i', 'outcome', 'claimed',
                        'rid', k.resource_id, 'resumed', true);
                END IF;
            END IF;
            CONTINUE;
        END IF;

        IF rt = 'payments' THEN
            INSERT INTO payments (payment_id, partner_id, checkout_id, buyer_id, status, metadata)
            VALUES (r->>'rid', r->>'partner', r->>'checkout', r->>'buyer', 'PENDING_PUBLISH',
                    COALESCE(r->'metadata', '{}'))
            ON CONFLICT DO NOTHING;
            IF NOT FOUND THEN
                DELETE FROM idempotency_keys WHERE partner_id = r->>'partner' AND key_hash = kh;
                SELECT payment_id INTO other FROM payments
                 WHERE partner_id = r->>'partner' AND checkout_id = r->>'checkout';
                RETURN NEXT jsonb_build_object('i', r->'i', 'outcome', 'duplicate_checkout',
                                               'rid', other);
                CONTINUE;
            END IF;
            INSERT INTO payment_orders (order_id, payment_id, partner_id, seq, seller_id,
                                        amount_minor, currency, method, psp_preference)
            SELECT e->>'oid', r->>'rid', r->>'partner', (n - 1)::int, e->>'seller',
                   (e->>'amt')::bigint, e->>'cur', e->>'method', e->>'psp'
              FROM jsonb_array_elements(r->'orders') WITH ORDINALITY AS t(e, n);
        ELSIF rt = 'refunds' THEN
            SELECT * INTO o FROM payment_orders
             WHERE order_id = r->>'order' AND partner_id = r->>'partner' FOR UPDATE;
            IF NOT FOUND OR NOT EXISTS (SELECT 1 FROM payments WHERE payment_id = o.payment_id
                                          AND status <> 'PENDING_PUBLISH') THEN
                DELETE FROM idempotency_keys WHERE partner_id = r->>'partner' AND key_hash = kh;
                RETURN NEXT jsonb_build_object('i', r->'i', 'outcome', 'not_found');
                CONTINUE;
            END IF;
            IF r->>'cur' IS NOT NULL AND r->>'cur' <> o.currency THEN
                DELETE FROM idempotency_keys WHERE partner_id = r->>'partner' AND key_hash = kh;
                RETURN NEXT jsonb_build_object('i', r->'i', 'outcome', 'currency',
                                               'currency', o.currency);
                CONTINUE;
            END IF;
            amt := COALESCE((r->>'amt')::bigint, o.amount_minor - o.refund_requested_minor);
            IF amt <= 0 OR o.refund_requested_minor + amt > o.amount_minor THEN
                DELETE FROM idempotency_keys WHERE partner_id = r->>'partner' AND key_hash = kh;
                RETURN NEXT jsonb_build_object('i', r->'i', 'outcome', 'exceeds',
                    'amount_minor', o.amount_minor - o.refund_requested_minor,
                    'currency', o.currency);
                CONTINUE;
            END IF;
            UPDATE payment_orders SET refund_requested_minor = refund_requested_minor + amt,
                                      updated_at = now()
             WHERE order_id = o.order_id;
            INSERT INTO refunds (refund_id, partner_id, payment_id, order_id, amount_minor,
                                 currency, reason, status)
            VALUES (r->>'rid', r->>'partner', o.payment_id, o.order_id, amt, o.currency,
                    r->>'reason', 'PENDING_PUBLISH');
            RETURN NEXT jsonb_build_object('i', r->'i', 'outcome', 'claimed', 'rid', r->>'rid',
                'payment_id', o.payment_id, 'amount_minor', amt, 'currency', o.currency);
            CONTINUE;
        ELSIF rt = 'payouts' THEN
            INSERT INTO payouts (payout_id, partner_id, seller_id, amount_minor, currency,
                                 channel, bank_code, ewallet_channel, destination_account,
                                 account_holder, description, status)
            VALUES (r->>'rid', r->>'partner', r->>'seller', (r->>'amt')::bigint, r->>'cur',
                    r->>'channel', r->>'bank', r->>'ewallet', r->>'dest', r->>'holder',
                    r->>'desc', 'PENDING_PUBLISH');
        END IF;
        RETURN NEXT jsonb_build_object('i', r->'i', 'outcome', 'claimed', 'rid', r->>'rid');
    END LOOP;
END $$;

-- ingress_purge: drops idempotency records past expires_at. A record that never completed
-- takes its never-accepted resource with it (and gives back the refund reservation).
CREATE OR REPLACE FUNCTION ingress_purge(lim integer) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    k record;
    n integer := 0;
BEGIN
    FOR k IN DELETE FROM idempotency_keys
              WHERE ctid IN (SELECT ctid FROM idempotency_keys WHERE expires_at < now()
                              LIMIT lim)
              RETURNING route, state, resource_id LOOP
        n := n + 1;
        CONTINUE WHEN k.state = 'completed';
        IF k.route = 'payments' THEN
            DELETE FROM payments WHERE payment_id = k.resource_id AND status = 'PENDING_PUBLISH';
        ELSIF k.route = 'refunds' THEN
            WITH d AS (DELETE FROM refunds WHERE refund_id = k.resource_id
                          AND status = 'PENDING_PUBLISH' RETURNING order_id, amount_minor)
            UPDATE payment_orders p SET refund_requested_minor = p.refund_requested_minor - d.amount_minor
              FROM d WHERE p.order_id = d.order_id;
        ELSIF k.route = 'payouts' THEN
            DELETE FROM payouts WHERE payout_id = k.resource_id AND status = 'PENDING_PUBLISH';
        END IF;
    END LOOP;
    RETURN n;
END $$;
