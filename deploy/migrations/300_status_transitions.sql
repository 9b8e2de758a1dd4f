-- 300: the state machines of payments, payment orders and payouts, checked by the database.
--
-- kasir_transitions lists every allowed status change; a status with no row leaving it is
-- terminal. Two uses:
--   - writers filter with kasir_transition_ok(entity, old, new) in their UPDATE ... WHERE
--     (or ON CONFLICT ... DO UPDATE ... WHERE), so an out-of-order or replayed event
--     changes nothing instead of failing its batch;
--   - a trigger on each table refuses any other change of status (SQLSTATE KS422), so no
--     writer, present or future, can move a row out of a terminal state by mistake.
-- The trigger fires only when the status column is set to a different value: inserts and
-- updates of other columns (the ingress's refund reservations, next_action) cost nothing.
-- A later worker that needs another edge adds a row here in its own migration.

CREATE TABLE kasir_transitions (
    entity      text NOT NULL CHECK (entity IN ('payment', 'order', 'payout')),
    from_status text NOT NULL,
    to_status   text NOT NULL,
    PRIMARY KEY (entity, from_status, to_status)
);

INSERT INTO kasir_transitions (entity, from_status, to_status) VALUES
    -- payments: NOT_STARTED (accepted; risk approved or held it) -> EXECUTING (the
    -- executor recorded its attempt) -> SUCCESS | FAILED; risk's REJECT is NOT_STARTED ->
    -- FAILED. PENDING_PUBLISH rows may be overtaken by a worker that read the published
    -- event before the ingress recorded Kafka's confirmation.
    ('payment', 'PENDING_PUBLISH', 'NOT_STARTED'),
    ('payment', 'PENDING_PUBLISH', 'EXECUTING'),
    ('payment', 'PENDING_PUBLISH', 'FAILED'),
    ('payment', 'NOT_STARTED', 'EXECUTING'),
    ('payment', 'NOT_STARTED', 'FAILED'),
    ('payment', 'EXECUTING', 'SUCCESS'),
    ('payment', 'EXECUTING', 'FAILED'),
    -- payment orders: as payments, plus PENDING_CUSTOMER (VA, QRIS, e-wallet waiting for
    -- the buyer) and EXPIRED (the buyer never paid)
    ('order', 'NOT_STARTED', 'EXECUTING'),
    ('order', 'NOT_STARTED', 'FAILED'),
    ('order', 'EXECUTING', 'PENDING_CUSTOMER'),
    ('order', 'EXECUTING', 'SUCCESS'),
    ('order', 'EXECUTING', 'FAILED'),
    ('order', 'PENDING_CUSTOMER', 'SUCCESS'),
    ('order', 'PENDING_CUSTOMER', 'FAILED'),
    ('order', 'PENDING_CUSTOMER', 'EXPIRED'),
    -- payouts: REQUESTED -> EXECUTING -> PAID_OUT | FAILED; risk's REVIEW is REQUESTED ->
    -- HELD, and an admin's approval HELD -> REQUESTED (released to the executor)
    ('payout', 'PENDING_PUBLISH', 'REQUESTED'),
    ('payout', 'PENDING_PUBLISH', 'HELD'),
    ('payout', 'PENDING_PUBLISH', 'EXECUTING'),
    ('payout', 'PENDING_PUBLISH', 'FAILED'),
    ('payout', 'REQUESTED', 'HELD'),
    ('payout', 'REQUESTED', 'EXECUTING'),
    ('payout', 'REQUESTED', 'FAILED'),
    ('payout', 'HELD', 'REQUESTED'),
    ('payout', 'HELD', 'FAILED'),
    ('payout', 'EXECUTING', 'PAID_OUT'),
    ('payout', 'EXECUTING', 'FAILED');

-- true when entity may move from -> to. A plain SQL function: the planner inlines it into
-- the caller's statement (one index probe per row, no function call).
CREATE FUNCTION kasir_transition_ok(entity text, from_status text, to_status text)
RETURNS boolean LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT EXISTS (SELECT 1 FROM kasir_transitions t
                    WHERE t.entity = $1 AND t.from_status = $2 AND t.to_status = $3)
$$;

-- The guard; TG_ARGV[0] is the entity.
CREATE FUNCTION kasir_transition_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM kasir_transitions t
                    WHERE t.entity = TG_ARGV[0] AND t.from_status = OLD.status
                      AND t.to_status = NEW.status) THEN
        RAISE EXCEPTION 'cannot move % from % to %', TG_ARGV[0], OLD.status, NEW.status
            USING ERRCODE = 'KS422',
                  HINT = 'allowed moves are the rows of kasir_transitions; a status with none is terminal';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER payments_transition BEFORE UPDATE OF status ON payments
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION kasir_transition_guard('payment');
CREATE TRIGGER payment_orders_transition BEFORE UPDATE OF status ON payment_orders
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION kasir_transition_guard('order');
CREATE TRIGGER payouts_transition BEFORE UPDATE OF status ON payouts
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION kasir_transition_guard('payout');
