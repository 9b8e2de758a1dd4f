-- kasir_transition_guard(): the BEFORE UPDATE OF status trigger of payments, payment_orders,
-- payouts and refunds (TG_ARGV[0]: the entity): a move that is not a row of kasir_transitions raises
-- SQLSTATE KS422, whatever client wrote it; a status with no row is terminal. The triggers
-- are kasir_transition_triggers()'s: their WHEN clause lists the rows of kasir_transitions,
-- so this function runs only for a move the list lacks (a refused one, in practice); it
-- checks the table itself all the same. Locks: none.
-- Repeatable: re-applied by the migration runner whenever this file changes.
CREATE OR REPLACE FUNCTION kasir_transition_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM kasir_transitions t
                    WHERE t.entity = TG_ARGV[0] AND t.from_status = OLD.status
                      AND t.to_status = NEW.status) THEN
        RAISE EXCEPTION 'cannot move % from % to %', TG_ARGV[0], OLD.status, NEW.status
            USING ERRCODE = 'KS422',
                  HINT = 'allowed moves are the rows of kasir_transitions; a status with none is terminal';
    END IF;
    RETURN NEW;
END $$;
