-- ingress_batch(fin, claims, lock_ttl, keep, bodies): the ingress's group commit. One call
-- per batch of concurrent requests (producers/ingress/store.c): claims take or resume
-- idempotency records and reserve refunds (up to captured minus refunded, pending ones
-- included); finishes record the published refunds and payouts and complete their
-- records, or release records whose event Kafka did not confirm. A payment has no
-- complete finish: its rows (payment and orders) are written by kasir-risk from its event,
-- and its payment row is what completes its record (a finish of a payment that an older
-- ingress still sends, in a rolling deploy, is left to that: its rows come from risk too). Returns one jsonb per claim and finish, in input order, with its
-- outcome. A payment's claim stores its answer: element "b" of bodies (sent as binary; as
-- base64 inside the JSON, PostgreSQL 15's JSON parser took a call per character of it), or
-- its base64 "body" (an ingress that sends its answers inside the claims' JSON, through the
-- four-argument form at the end of this file: one not yet upgraded in a rolling deploy). A
-- finish carries its answer inline: kept finishes are retried as their text alone (store.c).
-- Deploy order: this file before the ingress that calls the five-argument form (it fails
-- to prepare its statement without it). Rolling back to a file without it leaves this form
-- unused and replaces the four-argument one.
-- Locks: row locks on the idempotency records and the orders it touches, in id order.
-- Planner settings pinned (index probes whatever the statistics say: a plan cached while a
-- table looked small kept sequential-scanning it).
-- Repeatable: re-applied by the migration runner whenever this file changes.
CREATE OR REPLACE FUNCTION ingress_batch(fin jsonb, claims jsonb, lock_ttl interval,
                                         keep interval, bodies bytea[])
RETURNS SETOF jsonb LANGUAGE plpgsql
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off
AS $$
#variable_conflict use_column
DECLARE
    won text[] := '{}';
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
    -- finishes: statements with nothing to do are skipped (their fixed cost is most of a
    -- small batch's)
    IF jsonb_array_length(fin) > 0 THEN
    -- one primary-key probe per finish: refunds' and payouts' answers (a payment's was
    -- stored by its claim, and its payment row, which kasir-risk inserts, is what marks it
    -- complete), their status, and releases (Kafka did not confirm: the event may still
    -- have been written, a timeout is ambiguous, so the record keeps its resource id and
    -- fingerprint and is only unlocked; the client's retry resumes it with the same ids,
    -- and the deterministic message id dedups downstream). Not joins with
    -- jsonb_to_recordset(): with a table analyzed empty (a new cluster) the planner read the
    -- whole table for the batch's few rows, and the plan stayed cached while the table grew
    -- (test 222).
    IF fin @> '[{"store": true}]' OR fin @> '[{"op": "release"}]'
       OR fin @> '[{"route": "refunds"}]' OR fin @> '[{"route": "payouts"}]' THEN
    FOR f IN SELECT value FROM jsonb_array_elements(fin)
              WHERE value @> '{"store": true}' OR value @> '{"op": "release"}'
                 OR value @> '{"route": "refunds"}' OR value @> '{"route": "payouts"}' LOOP
        kh := decode(f->>'key', 'hex');
        IF f->>'op' = 'release' THEN
            UPDATE idempotency_keys SET locked_at = '-infinity'
             WHERE partner_id = f->>'partner' AND key_hash = kh AND state = 'in_flight';
            CONTINUE;
        END IF;
        CONTINUE WHEN f->>'op' IS DISTINCT FROM 'complete';
        IF f @> '{"store": true}' THEN
            UPDATE idempotency_keys
               SET state = 'completed', locked_at = NULL,
                   response_status = (f->>'status')::int,
                   response_body = decode(f->>'body', 'base64')
             WHERE partner_id = f->>'partner' AND key_hash = kh;
        END IF;
        IF f->>'route' = 'refunds' THEN
            UPDATE refunds SET status = 'REQUESTED', updated_at = now()
             WHERE refund_id = f->>'rid' AND status = 'PENDING_PUBLISH';
        ELSIF f->>'route' = 'payouts' THEN
            UPDATE payouts SET status = 'REQUESTED', updated_at = now()
             WHERE payout_id = f->>'rid' AND status = 'PENDING_PUBLISH';
        END IF;
    END LOOP;
    END IF;
    END IF;

    -- new payments, set-based (the hot path): one insert of the idempotency record, which
    -- reserves the checkout; a checkout that already has a payment goes row by row below.
    -- That check is a scalar subquery, not NOT EXISTS: the planner turns NOT EXISTS into an
    -- anti join, and with `payments` analyzed empty (a new cluster) it made that a join
    -- filter over a full scan of the (partner_id, checkout_id) index: each claim read every
    -- payment, the plan stayed cached while the table grew until autovacuum analyzed it
    -- again, up to a minute later, and the ingress made ~100 payments/s meanwhile. A
    -- subquery runs as a probe of that index whatever the statistics say (test 221).
    IF claims @> '[{"route": "payments"}]' THEN
    -- a plain insert first (no arbiter: ON CONFLICT's probe of the primary key before each
    -- row and its confirmation record cost more than the rare conflict); a key that exists
    -- (a retry, a replay) or a checkout taken by another key's record raises
    -- unique_violation, and then every unique index is an arbiter and the rows
    -- that conflict go row by row below
    BEGIN
        WITH c AS (SELECT * FROM jsonb_to_recordset(claims)
                       AS x(route text, partner text, key text, fp text, rid text, checkout text,
                            status int, b int, body text)
                    WHERE x.route = 'payments'
                      AND (SELECT 1 FROM payments p
                            WHERE p.partner_id = x.partner AND p.checkout_id = x.checkout) IS NULL),
             ins AS (INSERT INTO idempotency_keys (partner_id, key_hash, route, fingerprint,
                                                   resource_id, state, locked_at, expires_at,
                                                   checkout_id, response_status, response_body)
                     SELECT partner, decode(key, 'hex'), route, decode(fp, 'hex'), rid,
                            'in_flight', now(), now() + keep, checkout, status,
                            coalesce(bodies[b], decode(body, 'base64'))
                       FROM c ORDER BY partner, key
                     RETURNING resource_id)
        SELECT coalesce(array_agg(resource_id), '{}') INTO won FROM ins;
    EXCEPTION WHEN unique_violation THEN
        WITH c AS (SELECT * FROM jsonb_to_recordset(claims)
                       AS x(route text, partner text, key text, fp text, rid text, checkout text,
                            status int, b int, body text)
                    WHERE x.route = 'payments'
                      AND (SELECT 1 FROM payments p
                            WHERE p.partner_id = x.partner AND p.checkout_id = x.checkout) IS NULL),
             ins AS (INSERT INTO idempotency_keys (partner_id, key_hash, route, fingerprint,
                                                   resource_id, state, locked_at, expires_at,
                                                   checkout_id, response_status, response_body)
                     SELECT partner, decode(key, 'hex'), route, decode(fp, 'hex'), rid,
                            'in_flight', now(), now() + keep, checkout, status,
                            coalesce(bodies[b], decode(body, 'base64'))
                       FROM c ORDER BY partner, key
                     ON CONFLICT DO NOTHING RETURNING resource_id)
        SELECT coalesce(array_agg(resource_id), '{}') INTO won FROM ins;
    END;
    RETURN QUERY SELECT jsonb_build_object('i', x.i, 'outcome', 'claimed', 'rid', x.rid)
      FROM jsonb_to_recordset(claims) AS x(i int, rid text) WHERE x.rid = ANY(won);
    END IF;

    -- everything else row by row: existing keys (replays, conflicts, take-overs), refunds
    -- (they lock their order) and payouts; nothing to do when every claim was won above
    IF cardinality(won) = jsonb_array_length(claims) THEN
        RETURN;
    END IF;
    -- the orders the batch's refunds claim, locked first and in order-id order: two
    -- batches that refund the same orders take their locks in the same order (no deadlock)
    IF claims @> '[{"route": "refunds"}]' THEN
        PERFORM 1 FROM payment_orders
         WHERE order_id IN (SELECT x."order" FROM jsonb_to_recordset(claims)
                                AS x(route text, "order" text) WHERE x.route = 'refunds')
         ORDER BY order_id FOR UPDATE;
    END IF;
    FOR r IN SELECT value FROM jsonb_array_elements(claims)
              WHERE NOT value->>'rid' = ANY(won) LOOP
        kh := decode(r->>'key', 'hex');
        fp := decode(r->>'fp', 'hex');
        rt := r->>'route';
        INSERT INTO idempotency_keys (partner_id, key_hash, route, fingerprint, resource_id,
                                      state, locked_at, expires_at, checkout_id,
                                      response_status, response_body)
        VALUES (r->>'partner', kh, rt, fp, r->>'rid', 'in_flight', now(), now() + keep,
                CASE WHEN rt = 'payments' THEN r->>'checkout' END,
                CASE WHEN rt = 'payments' THEN (r->>'status')::int END,
                CASE WHEN rt = 'payments'
                     THEN coalesce(bodies[(r->>'b')::int], decode(r->>'body', 'base64')) END)
        ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            SELECT * INTO k FROM idempotency_keys
             WHERE partner_id = r->>'partner' AND key_hash = kh FOR UPDATE;
            IF NOT FOUND THEN
                -- not this key: the checkout is reserved by another key's record
                other := NULL;
                IF rt = 'payments' THEN
                    SELECT resource_id INTO other FROM idempotency_keys
                     WHERE partner_id = r->>'partner' AND checkout_id = r->>'checkout';
                END IF;
                IF other IS NOT NULL THEN
                    RETURN NEXT jsonb_build_object('i', r->'i', 'outcome', 'duplicate_checkout',
                                                   'rid', other);
                ELSE
                    RETURN NEXT jsonb_build_object('i', r->'i', 'outcome', 'in_flight');
                END IF;
                CONTINUE;
            END IF;
            IF k.fingerprint <> fp OR k.route <> rt THEN
                RETURN NEXT jsonb_build_object('i', r->'i', 'outcome', 'mismatch');
            ELSIF k.state = 'completed'
                  OR (k.route = 'payments' AND k.response_body IS NOT NULL
                      AND EXISTS (SELECT 1 FROM payments WHERE payment_id = k.resource_id)) THEN
                RETURN NEXT jsonb_build_object('i', r->'i', 'outcome', 'replay',
                    'status', k.response_status,
                    'body', translate(encode(k.response_body, 'base64'), E'\n', ''));
            ELSIF k.locked_at > now() - lock_ttl AND (r->>'force') IS NULL THEN
                -- with its payment id: the ingress that answered it claims the retry again
                -- until kasir-risk has written its rows (a replay then), for a second
                RETURN NEXT jsonb_build_object('i', r->'i', 'outcome', 'in_flight',
                                               'rid', k.resource_id);
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
                ELSIF rt = 'payments' AND k.response_body IS NOT NULL THEN
                    -- the answer stored by the first attempt is the answer
                    RETURN NEXT jsonb_build_object('i', r->'i', 'outcome', 'claimed',
                        'rid', k.resource_id, 'resumed', true, 'status', k.response_status,
                        'body', translate(encode(k.response_body, 'base64'), E'\n', ''));
                ELSE
                    RETURN NEXT jsonb_build_object('i', r->'i', 'outcome', 'claimed',
                        'rid', k.resource_id, 'resumed', true);
                END IF;
            END IF;
            CONTINUE;
        END IF;

        IF rt = 'payments' THEN
            -- the checkout may belong to a payment whose record was purged already
            SELECT payment_id INTO other FROM payments
             WHERE partner_id = r->>'partner' AND checkout_id = r->>'checkout';
            IF FOUND THEN
                DELETE FROM idempotency_keys WHERE partner_id = r->>'partner' AND key_hash = kh;
                RETURN NEXT jsonb_build_object('i', r->'i', 'outcome', 'duplicate_checkout',
                                               'rid', other);
                CONTINUE;
            END IF;
        ELSIF rt = 'refunds' THEN
            SELECT * INTO o FROM payment_orders
             WHERE order_id = r->>'order' AND partner_id = r->>'partner' FOR UPDATE;
            IF NOT FOUND OR NOT EXISTS (SELECT 1 FROM payments WHERE payment_id = o.payment_id) THEN
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
            -- only money that was captured goes back
            IF o.status <> 'SUCCESS' OR o.captured_minor <= 0 THEN
                DELETE FROM idempotency_keys WHERE partner_id = r->>'partner' AND key_hash = kh;
                RETURN NEXT jsonb_build_object('i', r->'i', 'outcome', 'not_captured',
                                               'status', o.status);
                CONTINUE;
            END IF;
            amt := COALESCE((r->>'amt')::bigint, o.captured_minor - o.refund_requested_minor);
            IF amt <= 0 OR o.refund_requested_minor + amt > o.captured_minor THEN
                DELETE FROM idempotency_keys WHERE partner_id = r->>'partner' AND key_hash = kh;
                RETURN NEXT jsonb_build_object('i', r->'i', 'outcome', 'exceeds',
                    'amount_minor', greatest(o.captured_minor - o.refund_requested_minor, 0),
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

-- The four-argument form: claims with their answers inline (base64 "body"). Not a DEFAULT
-- on bodies: a rollback that re-creates a four-argument function would make every call
-- ambiguous (a function and a second one with a defaulted last argument).
CREATE OR REPLACE FUNCTION ingress_batch(fin jsonb, claims jsonb, lock_ttl interval,
                                         keep interval)
RETURNS SETOF jsonb LANGUAGE sql
AS $$ SELECT * FROM ingress_batch(fin, claims, lock_ttl, keep, NULL::bytea[]) $$;
