-- ledger_payments_refresh(ids): moves each payment's status to follow its orders
-- (docs/LEDGER.md): EXECUTING while any order is not final; SUCCESS when every order
-- succeeded; FAILED when every order is final and at least one failed or expired (a partly
-- failed payment: its captured orders stay captured and refundable, each order shows its
-- own status). Only payments in NOT_STARTED or EXECUTING move. Called by kasir-ledger.
-- A payment of one order has one writer (the owner of that order's partition), so its
-- status follows from the order directly. The orders of a bigger payment are posted by
-- different partitions, and each must see what the others committed: those payment rows
-- are locked first, in id order, and their orders read by a later statement (a fresh
-- snapshot under READ COMMITTED).
-- Locks: the payment rows it updates; those of payments of several orders first
-- (FOR UPDATE, in id order).
-- Repeatable: re-applied by the migration runner whenever this file changes.
CREATE OR REPLACE FUNCTION ledger_payments_refresh(p_ids text[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    multi text[];
BEGIN
    WITH s AS (
        SELECT o.payment_id, count(*) AS n,
               CASE WHEN bool_or(o.status NOT IN ('SUCCESS', 'FAILED', 'EXPIRED')) THEN 'EXECUTING'
                    WHEN bool_and(o.status = 'SUCCESS') THEN 'SUCCESS'
                    ELSE 'FAILED' END AS new_status
          FROM payment_orders o WHERE o.payment_id = ANY (p_ids)
         GROUP BY o.payment_id),
    single AS (
        UPDATE payments p SET status = s.new_status, updated_at = now()
          FROM s
         WHERE s.n = 1 AND p.payment_id = s.payment_id
           AND p.status IN ('NOT_STARTED', 'EXECUTING') AND p.status <> s.new_status)
    SELECT array_agg(payment_id ORDER BY payment_id) INTO multi FROM s WHERE n > 1;
    IF multi IS NULL THEN
        RETURN;
    END IF;
    PERFORM 1 FROM payments WHERE payment_id = ANY (multi) ORDER BY payment_id FOR UPDATE;
    UPDATE payments p SET status = s.new_status, updated_at = now()
      FROM (SELECT o.payment_id,
                   CASE WHEN bool_or(o.status NOT IN ('SUCCESS', 'FAILED', 'EXPIRED')) THEN 'EXECUTING'
                        WHEN bool_and(o.status = 'SUCCESS') THEN 'SUCCESS'
                        ELSE 'FAILED' END AS new_status
              FROM payment_orders o WHERE o.payment_id = ANY (multi)
             GROUP BY o.payment_id) s
     WHERE p.payment_id = s.payment_id AND p.status IN ('NOT_STARTED', 'EXECUTING')
       AND p.status <> s.new_status;
END $$;
