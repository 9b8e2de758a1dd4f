-- ledger_field(v): one field of an entry's hashed text, "<byte length>:<value>" (NULL as the
-- empty string), so no two entries share a text (docs/LEDGER.md, "The hash chain";
-- consumers/ledger/verify.c computes the same in C).
-- Written so the planner inlines it into the batch statement: every operator in the body
-- is immutable (the length is cast to text: "integer || text" is anytextcat, which is only
-- stable, and an immutable SQL function whose body is less than immutable is called through
-- the SQL function executor instead, once per field: 19 calls per four-line entry).
-- Repeatable: re-applied by the migration runner whenever this file changes.
CREATE OR REPLACE FUNCTION ledger_field(v text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT octet_length(coalesce(v, ''))::text || ':' || coalesce(v, '') $$;
