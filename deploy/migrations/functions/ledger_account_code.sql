-- ledger_account_code(type, partner_id, seller_id, psp, currency): the account code of a
-- (type, owner, currency): '/'-separated, a character no Kasir id may hold (ingress ids are
-- letters, digits and _ - . :), so two owners never share a code. NULL for an unknown type.
-- Called by ledger_account and kasir-ledger. Immutable; locks: none.
-- Repeatable: re-applied by the migration runner whenever this file changes.
CREATE OR REPLACE FUNCTION ledger_account_code(type text, partner_id text, seller_id text, psp text,
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
