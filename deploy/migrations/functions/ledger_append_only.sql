-- ledger_append_only(): the trigger of ledger_entries, ledger_postings and ledger_accounts
-- (BEFORE UPDATE OR DELETE per row, BEFORE TRUNCATE per statement; created by migration
-- 400): every change but an INSERT raises SQLSTATE KS403, whoever writes it: the ledger is
-- append-only. Locks: none.
-- Repeatable: re-applied by the migration runner whenever this file changes.
CREATE OR REPLACE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger: % on % is not allowed: the ledger is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'KS403';
END $$;
