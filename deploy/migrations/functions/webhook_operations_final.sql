-- webhook_operations_final(): the BEFORE UPDATE OF status trigger of webhook_operations
-- (below): a final state (anything but PENDING_CUSTOMER) is never left,
-- whatever writes the row; the worker's decision is checked again by the database
-- (SQLSTATE KS422, as kasir_transition_guard). Locks: none.
-- Repeatable: re-applied by the migration runner whenever this file changes.
CREATE OR REPLACE FUNCTION webhook_operations_final() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status <> 'PENDING_CUSTOMER' AND NEW.status <> OLD.status THEN
        RAISE EXCEPTION 'webhook operation % % cannot leave its final state % for %',
            OLD.kind, OLD.object_id, OLD.status, NEW.status USING ERRCODE = 'KS422';
    END IF;
    RETURN NEW;
END $$;

CREATE OR REPLACE TRIGGER webhook_operations_final BEFORE UPDATE OF status ON webhook_operations
    FOR EACH ROW EXECUTE FUNCTION webhook_operations_final();
