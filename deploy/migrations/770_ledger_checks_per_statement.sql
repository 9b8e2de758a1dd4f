-- 770: the ledger's COMMIT check runs once per INSERT statement into ledger_entries, not once
-- per entry, and the rows the hot path updates get room for HOT updates.
--
-- ledger_entry_checks: one row per INSERT statement into ledger_entries, written by that
-- statement's trigger (functions/ledger_entries_inserted.sql: the ids and line counts of the
-- entries it inserted) and checked and deleted at COMMIT (or SET CONSTRAINTS ... IMMEDIATE)
-- by the deferred constraint trigger on it (functions/ledger_entry_balanced.sql): every
-- entry has its last line. A row lives only inside its own transaction, so the table is
-- UNLOGGED (no WAL for it; a crash loses nothing that had to outlive the transaction). No
-- role but the owner has any right on it; a guard trigger refuses changes from outside the
-- check (functions/ledger_entry_checks_guard.sql).
CREATE UNLOGGED TABLE ledger_entry_checks (
    check_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entry_ids bigint[] NOT NULL,
    n_lines   smallint[] NOT NULL
);
REVOKE ALL ON ledger_entry_checks FROM PUBLIC;

-- An order is updated twice after its insert (EXECUTING, then a final status) and a balance
-- stripe once per batch: with free room on the page the update stays on it (HOT: no new
-- index entries). Full pages made 40 % of the orders' and most stripes' updates write every
-- index again. Applies to pages written from now on.
ALTER TABLE payment_orders SET (fillfactor = 80);
ALTER TABLE ledger_balances SET (fillfactor = 50);
