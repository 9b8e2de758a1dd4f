-- 401: the ledger's SQL entry points for other workers, and the payment status rule.
--
-- Low-volume postings (a payout hold, a settlement) are made by the worker that decides
-- them, inside its own transaction, through ledger_post(): the same chain text and hash as
-- kasir-ledger's batch statement, on a chain of their own ('sql:payout_holds',
-- 'sql:settlements'), whose head row is locked while the entry is written.
-- These functions run as their owner (SECURITY DEFINER): a caller needs EXECUTE on them,
-- not write access to the ledger tables.

-- The account code of a (type, owner, currency): '/'-separated, a character no Kasir id
-- may hold (ingress ids are letters, digits and _ - . :), so two owners never share a code.
CREATE FUNCTION ledger_account_code(type text, partner_id text, seller_id text, psp text,
                                    currency text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE type
        WHEN 'seller_wallet' THEN 'seller_wallet/' || partner_id || '/' || seller_id || '/' || currency
        WHEN 'payout_hold' THEN 'payout_hold/' || partner_id || '/' || seller_id || '/' || currency
        WHEN 'psp_clearing' THEN 'psp_clearing/' || psp || '/' || currency
        WHEN 'psp_fee_expense' THEN 'psp_fee_expense/' || psp || '/' || currency
        WHEN 'suspense' THEN 'suspense/' || partner_id || '/' || currency
        WHEN 'fee_revenue' THEN 'fee_revenue/' || currency
        WHEN 'bank' THEN 'bank/' || currency
    END
$$;

CREATE FUNCTION ledger_account(p_type text, p_partner text, p_seller text, p_psp text,
                               p_currency text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    code text := ledger_account_code(p_type, p_partner, p_seller, p_psp, p_currency);
BEGIN
    INSERT INTO ledger_accounts (account, type, currency, normal_side, partner_id, seller_id, psp)
    VALUES (code, p_type, p_currency,
            CASE WHEN p_type IN ('psp_clearing', 'psp_fee_expense', 'bank') THEN 'D' ELSE 'C' END,
            p_partner, p_seller, p_psp)
    ON CONFLICT DO NOTHING;
    RETURN code;
END $$;

-- ledger_post(): its one definition is deploy/migrations/functions/ledger_post.sql

-- Payout holds: called by the worker that approves payouts (risk), in the transaction that
-- approves them and before any command reaches a PSP. For each payout, in wallet order:
--   held               funds moved from the seller's wallet to its payout_hold account;
--   already_held       the hold was posted before (a replay): go on as for held;
--   insufficient_funds the wallet's balance (all stripes, locked) is below the amount:
--                      nothing posted; the caller fails the payout (INSUFFICIENT_FUNDS);
--   not_found          no such payout row.
-- The caller owns the payout's status; kasir-ledger moves it to PAID_OUT or FAILED on the
-- PSP's result and pays the hold out or releases it.
CREATE FUNCTION ledger_payout_holds(p_payout_ids text[])
RETURNS TABLE (payout_id text, result text, available_minor bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    p record;
    wallet text;
    hold text;
    avail bigint;
BEGIN
    FOR p IN SELECT x.id, po.partner_id, po.seller_id, po.amount_minor, po.currency
               FROM unnest(p_payout_ids) AS x(id)
               LEFT JOIN payouts po ON po.payout_id = x.id
              ORDER BY po.partner_id, po.seller_id, po.currency, x.id LOOP
        payout_id := p.id;
        available_minor := NULL;
        IF p.partner_id IS NULL THEN
            result := 'not_found';
            RETURN NEXT;
            CONTINUE;
        END IF;
        IF EXISTS (SELECT 1 FROM ledger_entries WHERE source_key = 'payout_hold:' || p.id) THEN
            result := 'already_held';
            RETURN NEXT;
            CONTINUE;
        END IF;
        wallet := ledger_account('seller_wallet', p.partner_id, p.seller_id, NULL, p.currency);
        hold := ledger_account('payout_hold', p.partner_id, p.seller_id, NULL, p.currency);
        -- every stripe locked: no credit or debit of this wallet commits meanwhile
        PERFORM 1 FROM ledger_balances WHERE account = wallet ORDER BY chain FOR UPDATE;
        SELECT -coalesce(sum(balance_minor), 0) INTO avail FROM ledger_balances WHERE account = wallet;
        available_minor := avail;
        IF avail < p.amount_minor THEN
            result := 'insufficient_funds';
            RETURN NEXT;
            CONTINUE;
        END IF;
        PERFORM ledger_post('sql:payout_holds', 'payout_hold:' || p.id, 'payout_hold', p.id,
                            p.partner_id, 'payout:' || p.id, ARRAY[wallet, hold],
                            ARRAY[p.amount_minor, -p.amount_minor], p.currency);
        result := 'held';
        RETURN NEXT;
    END LOOP;
END $$;

-- Settlement: the PSP paid its clearing balance out to Kasir's bank account (called by the
-- recon worker when a settlement is matched). fee_minor: fees the PSP deducted at payout
-- time that no capture carried. Returns the entry id, NULL when posted before.
CREATE FUNCTION ledger_settle(p_settlement_id text, p_psp text, p_currency text,
                              p_amount_minor bigint, p_fee_minor bigint DEFAULT 0)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF p_amount_minor <= 0 OR p_fee_minor < 0 THEN
        RAISE EXCEPTION 'ledger: settlement % amounts must be positive', p_settlement_id
            USING ERRCODE = '22023';
    END IF;
    RETURN ledger_post('sql:settlements', 'settlement:' || p_settlement_id, 'settlement',
                       p_settlement_id, NULL, 'settlement:' || p_settlement_id,
                       ARRAY[ledger_account('bank', NULL, NULL, NULL, p_currency),
                             ledger_account('psp_fee_expense', NULL, NULL, p_psp, p_currency),
                             ledger_account('psp_clearing', NULL, NULL, p_psp, p_currency)],
                       ARRAY[p_amount_minor, p_fee_minor, -(p_amount_minor + p_fee_minor)],
                       p_currency);
END $$;

-- A payment's status from its orders (docs/LEDGER.md): EXECUTING while any order is not
-- final; SUCCESS when every order succeeded; FAILED when every order is final and at least
-- one failed or expired (a partly failed payment: its captured orders stay captured and
-- refundable, each order shows its own status).
-- A payment of one order has one writer (the owner of that order's partition), so its
-- status follows from the order directly. The orders of a bigger payment are posted by
-- different partitions, and each must see what the others committed: those payment rows
-- are locked first, in id order, and their orders read by a later statement (a fresh
-- snapshot under READ COMMITTED).
CREATE FUNCTION ledger_payments_refresh(p_ids text[]) RETURNS void
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

REVOKE EXECUTE ON FUNCTION ledger_account(text, text, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ledger_account(text, text, text, text, text) TO kasir_ledger;
