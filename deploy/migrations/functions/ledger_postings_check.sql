-- ledger_postings_check(): the AFTER INSERT statement trigger of ledger_postings (transition
-- table new_rows; below). Set-based, one query per INSERT whatever its
-- size: every entry touched gets all of its lines 1..n_lines in this statement (so nothing
-- is ever added to an entry later), lines carry the entry's chain and an existing account of
-- their currency, and they balance per currency; else SQLSTATE KS422. Then the balance
-- stripes (ledger_balances) move by the same rows.
-- Locks: the ledger_balances rows of the (account, chain) pairs written, taken in
-- (account, chain) order, so two writers never deadlock. Runs as its owner.
-- Repeatable: re-applied by the migration runner whenever this file changes.
CREATE OR REPLACE FUNCTION ledger_postings_check() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    bad record;
BEGIN
    -- per entry (one probe of ledger_entries each): n distinct lines, each in 1..n_lines,
    -- n = n_lines, so lines 1..n_lines all come in this statement; the entry's chain; the
    -- sum per currency
    WITH per_cur AS (
        SELECT entry_id, currency, sum(amount_minor) AS s, count(*) AS n, max(line) AS ml,
               min(chain) AS c1, max(chain) AS c2
          FROM new_rows GROUP BY entry_id, currency),
    per_entry AS (
        SELECT entry_id, sum(n) AS n, max(ml) AS ml, min(c1) AS c1, max(c2) AS c2,
               string_agg(CASE WHEN s <> 0 THEN currency || ' by ' || s END, ', ') AS unbalanced
          FROM per_cur GROUP BY entry_id)
    SELECT p.entry_id,
           CASE WHEN e.entry_id IS NULL THEN 'no such entry'
                WHEN p.c1 <> e.chain OR p.c2 <> e.chain THEN 'postings on another chain than the entry''s'
                WHEN p.ml > e.n_lines OR p.n <> e.n_lines
                  THEN 'lines missing or outside the entry''s line range (an entry''s postings are written whole, in one statement)'
                ELSE 'unbalanced in ' || p.unbalanced END AS why
      INTO bad
      FROM per_entry p LEFT JOIN ledger_entries e ON e.entry_id = p.entry_id
     WHERE e.entry_id IS NULL OR p.c1 <> e.chain OR p.c2 <> e.chain OR p.ml > e.n_lines
        OR p.n <> e.n_lines OR p.unbalanced IS NOT NULL
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'ledger: entry %: %', bad.entry_id, bad.why USING ERRCODE = 'KS422';
    END IF;
    -- per distinct (account, currency): the account exists in that currency
    SELECT n.account, n.currency INTO bad
      FROM (SELECT DISTINCT account, currency FROM new_rows) n
      LEFT JOIN ledger_accounts a ON a.account = n.account
     WHERE a.account IS NULL OR a.currency <> n.currency
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'ledger: account % unknown or not in %', bad.account, bad.currency
            USING ERRCODE = 'KS422';
    END IF;
    INSERT INTO ledger_balances AS b (account, chain, balance_minor, postings)
    SELECT account, chain, sum(amount_minor), count(*) FROM new_rows
     GROUP BY account, chain ORDER BY account, chain
    ON CONFLICT (account, chain) DO UPDATE
       SET balance_minor = b.balance_minor + excluded.balance_minor,
           postings = b.postings + excluded.postings;
    RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER ledger_postings_check AFTER INSERT ON ledger_postings
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ledger_postings_check();
-- a trigger function that runs as its owner: no one may attach it to a table of their own
-- (a temporary table firing it would move balances with no postings behind them); the
-- ledger's own triggers fire it whatever this says
REVOKE EXECUTE ON FUNCTION ledger_postings_check() FROM PUBLIC;
-- owned by kasir_ledger_guard (migration 953; the CREATE: deploy/migrations/README.md)
GRANT CREATE ON SCHEMA public TO kasir_ledger_guard;
ALTER FUNCTION ledger_postings_check() OWNER TO kasir_ledger_guard;
REVOKE CREATE ON SCHEMA public FROM kasir_ledger_guard;
