-- 700: tables owned by kasir-webhooks (consumers/webhooks): every PSP notification it read,
-- and the state it knows of each PSP operation. See consumers/webhooks/README.md.

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
-- charge whose money arrived after it was final as FAILED or EXPIRED (reported once).
CREATE TABLE webhook_operations (
    kind         text COLLATE "C" NOT NULL CHECK (kind IN ('CHARGE', 'REFUND', 'PAYOUT')),
    object_id    text COLLATE "C" NOT NULL,
    status       text NOT NULL CHECK (status IN ('PENDING_CUSTOMER', 'SUCCEEDED', 'FAILED',
                                                 'EXPIRED', 'REFUNDED', 'PAID_OUT')),
    late_success boolean NOT NULL DEFAULT false,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, object_id)
);

-- A final state is never left, whatever writes the row: the worker's decision is checked
-- again by the database (SQLSTATE KS422, as the trigger of migration 300).
CREATE FUNCTION webhook_operations_final() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status <> 'PENDING_CUSTOMER' AND NEW.status <> OLD.status THEN
        RAISE EXCEPTION 'webhook operation % % cannot leave its final state % for %',
            OLD.kind, OLD.object_id, OLD.status, NEW.status USING ERRCODE = 'KS422';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER webhook_operations_final BEFORE UPDATE OF status ON webhook_operations
    FOR EACH ROW EXECUTE FUNCTION webhook_operations_final();
