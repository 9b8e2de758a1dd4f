-- 810: the state machines of payments, payment orders and payouts, checked by the database.
-- squashes: 300_status_transitions 402_ledger_order_moves
--
-- kasir_transitions lists every allowed status change; a status with no row leaving it is
-- terminal. Two uses:
--   - writers filter with kasir_transition_ok(entity, old, new) in their UPDATE ... WHERE
--     (or ON CONFLICT ... DO UPDATE ... WHERE), so an out-of-order or replayed event
--     changes nothing instead of failing its batch;
--   - a trigger on each of payments, payment_orders and payouts refuses any other change of
--     status (SQLSTATE KS422), so no writer, present or future, can move a row out of a
--     terminal state by mistake. The triggers are built from these rows and rebuilt when
--     they change (functions/kasir_transition_triggers.sql), and fire only when the status
--     column is set to a different value: inserts and updates of other columns (the
--     ingress's refund reservations, next_action) cost nothing.
-- Another edge is a row inserted by a new migration; the triggers follow by themselves.

CREATE TABLE kasir_transitions (
    entity      text NOT NULL CHECK (entity IN ('payment', 'order', 'payout')),
    from_status text NOT NULL,
    to_status   text NOT NULL,
    PRIMARY KEY (entity, from_status, to_status)
);

INSERT INTO kasir_transitions (entity, from_status, to_status) VALUES
    -- payments: NOT_STARTED (accepted; risk approved or held it) -> EXECUTING (the
    -- executor recorded its attempt) -> SUCCESS | FAILED; risk's REJECT is NOT_STARTED ->
    -- FAILED. A PENDING_PUBLISH row (a payout's, below; the ingress writes a payment's
    -- row only once Kafka confirmed its event) may be overtaken by a worker that read the
    -- published event before the ingress recorded Kafka's confirmation.
    ('payment', 'PENDING_PUBLISH', 'NOT_STARTED'),
    ('payment', 'PENDING_PUBLISH', 'EXECUTING'),
    ('payment', 'PENDING_PUBLISH', 'FAILED'),
    ('payment', 'NOT_STARTED', 'EXECUTING'),
    ('payment', 'NOT_STARTED', 'FAILED'),
    ('payment', 'EXECUTING', 'SUCCESS'),
    ('payment', 'EXECUTING', 'FAILED'),
    -- payment orders: as payments, plus PENDING_CUSTOMER (VA, QRIS, e-wallet waiting for
    -- the buyer) and EXPIRED (the buyer never paid). An order also expires straight from
    -- EXECUTING: a VA or QR whose pending outcome never reached the ledger (a lost
    -- webhook, or both outcomes in one batch, where the final one wins) still expires.
    ('order', 'NOT_STARTED', 'EXECUTING'),
    ('order', 'NOT_STARTED', 'FAILED'),
    ('order', 'EXECUTING', 'PENDING_CUSTOMER'),
    ('order', 'EXECUTING', 'SUCCESS'),
    ('order', 'EXECUTING', 'FAILED'),
    ('order', 'EXECUTING', 'EXPIRED'),
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
