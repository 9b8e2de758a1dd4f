-- 940: refunds get the state machine payments, orders and payouts have (810): SUCCEEDED and
-- FAILED are terminal, checked by the database whatever client writes. Before, only the
-- writers' own filters kept a refund in its final state: two workers reading it in
-- different snapshots (kasir-ledger on the main topic and on a retry topic) could both
-- move it, and a FAILED refund (its reservation given back by ingress_refund_failed) could
-- become SUCCEEDED, or the reverse. Any move between the states before the end is allowed,
-- as the writers make them (the ingress's PENDING_PUBLISH -> REQUESTED, the executor's ->
-- EXECUTING, kasir-ledger's final state from whichever it finds, its outcome having
-- overtaken the others). The guard trigger itself is made by
-- functions/kasir_transition_triggers.sql.
ALTER TABLE kasir_transitions DROP CONSTRAINT kasir_transitions_entity_check;
ALTER TABLE kasir_transitions ADD CONSTRAINT kasir_transitions_entity_check
    CHECK (entity IN ('payment', 'order', 'payout', 'refund'));
INSERT INTO kasir_transitions (entity, from_status, to_status) VALUES
    ('refund', 'PENDING_PUBLISH', 'REQUESTED'),
    ('refund', 'PENDING_PUBLISH', 'EXECUTING'),
    ('refund', 'PENDING_PUBLISH', 'SUCCEEDED'),
    ('refund', 'PENDING_PUBLISH', 'FAILED'),
    ('refund', 'REQUESTED', 'EXECUTING'),
    ('refund', 'REQUESTED', 'SUCCEEDED'),
    ('refund', 'REQUESTED', 'FAILED'),
    ('refund', 'EXECUTING', 'SUCCEEDED'),
    ('refund', 'EXECUTING', 'FAILED');
