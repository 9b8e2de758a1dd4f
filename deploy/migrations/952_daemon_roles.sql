-- 952: every daemon connects as a role of its own, as kasir-ledger does (840): kasir-X as
-- kasir_X (deploy/README.md, "Roles"). None is a superuser (which could set
-- session_replication_role and so switch the ledger's triggers off) or owns a table (an
-- owner can disable its triggers); each has the privileges its statements and the functions
-- it calls need, and on the ledger's tables never more than SELECT and INSERT (the ingress:
-- SELECT). The
-- operator's commands (`kasir-ingress partner|key`, `kasir-dlq`, migrations) stay with the
-- owner's role.
DO $$
DECLARE r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['kasir_ingress', 'kasir_risk', 'kasir_executor', 'kasir_webhooks',
                             'kasir_demo'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I LOGIN', r);
        END IF;
    END LOOP;
END $$;

-- the worker runtime's tables (instances, offsets, outbox, processed ids, parked rows) and
-- the status machine, which the transition triggers read whoever writes
GRANT SELECT, INSERT, UPDATE, DELETE ON kasir_instances, kasir_offsets, kasir_outbox,
    kasir_outbox_dead, kasir_processed TO kasir_risk, kasir_executor, kasir_webhooks, kasir_demo;
GRANT USAGE, SELECT, UPDATE ON SEQUENCE kasir_outbox_id_seq
    TO kasir_risk, kasir_executor, kasir_webhooks, kasir_demo, kasir_ingress;
GRANT SELECT ON kasir_transitions TO kasir_ingress, kasir_risk, kasir_executor, kasir_webhooks;

-- kasir-ingress (serve): credentials are read (the operator's CLI writes them), idempotency
-- records written and purged, the read model's rows created, refunds reserved on orders;
-- admin endpoints: holds (risk_hold_decide queues its command in the outbox), adjustments
-- (requested here; decided by ledger_adjustment_decide, which runs as its owner and is the
-- only ledger function this role may call), payout retries; reads of balances, entries and
-- postings for balances and the audit export
GRANT SELECT ON partners, api_keys TO kasir_ingress;
GRANT SELECT, INSERT, UPDATE, DELETE ON idempotency_keys TO kasir_ingress;
GRANT SELECT, INSERT ON payments, payment_orders, refunds, payouts TO kasir_ingress;
GRANT SELECT, INSERT, UPDATE ON risk_holds, risk_hold_commands TO kasir_ingress;
GRANT INSERT ON kasir_outbox TO kasir_ingress;
GRANT SELECT, INSERT, UPDATE ON ledger_adjustments TO kasir_ingress;
GRANT SELECT, INSERT ON ledger_payout_retries TO kasir_ingress;
GRANT SELECT ON ledger_payout_retriable TO kasir_ingress;
GRANT SELECT ON ledger_accounts, ledger_balances, ledger_entries, ledger_postings,
    ledger_fee_plans, ledger_account_balances, ingress_unresolved TO kasir_ingress;

-- kasir-risk: decisions, holds, the read model's rows an event arrives without, payouts
GRANT SELECT, INSERT ON payments, payment_orders, payouts TO kasir_risk;
GRANT SELECT, INSERT, UPDATE ON risk_payments, risk_payouts, risk_holds, risk_hold_commands
    TO kasir_risk;

-- kasir-executor: its attempts and refunds at the PSPs, the orders' and payouts' status
-- (a refund's outcome gives its order's unused reservation back, by trigger)
GRANT SELECT, INSERT, UPDATE ON executor_attempts, executor_refunds TO kasir_executor;
GRANT SELECT ON payments, payment_orders, refunds, payouts TO kasir_executor;

-- kasir-webhooks: the notifications seen and the operations they settle; the read model it
-- only reads (its outcomes go to kasir-ledger, which writes the statuses)
GRANT SELECT, INSERT, UPDATE ON webhook_events, webhook_operations TO kasir_webhooks;
GRANT SELECT ON executor_attempts, payments, payment_orders, refunds, payouts TO kasir_webhooks;

-- kasir-demo: the runtime's example worker and its accounts
GRANT SELECT, INSERT, UPDATE, DELETE ON demo_accounts, demo_applied, demo_seen TO kasir_demo;

-- no temporary tables for anyone but the owner: a daemon needs none, and a table of one's
-- own is where a borrowed trigger function would fire
DO $$ BEGIN
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
END $$;

-- The read model's rows are updated by column, never whole: a role that could rewrite an
-- order's seller_id or amount would redirect what kasir-ledger credits. Statuses (with
-- updated_at) move through the transition triggers; the ingress also reserves refunds on
-- the order (refund_requested_minor); a payout refused for its funds records why.
-- kasir_ledger keeps 840's grants (it records captures, refunds and payouts).
GRANT UPDATE (status, updated_at) ON payments TO kasir_ingress, kasir_risk, kasir_executor;
GRANT UPDATE (status, updated_at) ON payment_orders TO kasir_ingress, kasir_risk, kasir_executor;
GRANT UPDATE (refund_requested_minor) ON payment_orders TO kasir_ingress;
GRANT UPDATE (status, updated_at) ON refunds TO kasir_ingress, kasir_executor;
GRANT UPDATE (status, updated_at) ON payouts TO kasir_ingress, kasir_risk, kasir_executor;
GRANT UPDATE (failure_code, failure_message) ON payouts TO kasir_ingress, kasir_risk;
