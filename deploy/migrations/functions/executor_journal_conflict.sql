-- executor_journal_conflict(command_id, attempt): raises (SQLSTATE 40001, retriable) naming
-- an attempt another executor instance journaled first. kasir-executor's journal statement
-- calls it when its INSERT ... ON CONFLICT DO NOTHING wrote fewer rows than it was given:
-- that attempt is not this instance's to send (its PSP may differ: the other instance's
-- circuit, its failover). The journal rolls back, nothing is sent, and the re-run finds
-- the attempt and asks its PSP first. Locks: none.
-- Repeatable: re-applied by the migration runner whenever this file changes.
CREATE OR REPLACE FUNCTION executor_journal_conflict(p_command text, p_attempt integer)
    RETURNS integer LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'attempt % of command % was journaled by another instance', p_attempt, p_command
        USING ERRCODE = '40001';
END $$;
