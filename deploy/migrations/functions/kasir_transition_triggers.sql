-- kasir_transition_triggers(): (re)creates the status guards of payments, payment_orders,
-- payouts and refunds from the rows of kasir_transitions; the statement trigger on kasir_transitions
-- below runs it whenever a row is inserted, updated or deleted, or the table truncated, in
-- that transaction, so the guards always say what the table says.
--
-- Each guard is a BEFORE UPDATE OF status row trigger whose WHEN clause holds the entity's
-- allowed moves, by status left:
--   WHEN (OLD.status IS DISTINCT FROM NEW.status
--         AND (CASE OLD.status WHEN 'A' THEN NEW.status IN ('B', 'C') ... END) IS NOT TRUE)
-- so a move in the list costs a few comparisons in the executor and no function call, and
-- any other move calls kasir_transition_guard(), which checks kasir_transitions and raises
-- SQLSTATE KS422 'cannot move <entity> from <old> to <new>' (the guard's body is the rule;
-- the list only spares the call). An entity with no row gets the guard on every move.
-- Locks: SHARE ROW EXCLUSIVE on the four tables (CREATE TRIGGER), taken only when
-- kasir_transitions changes (a migration).
-- Repeatable: re-applied by the migration runner whenever this file changes; the no-op
-- UPDATE at the end fires the trigger once, so the guards follow the table at once.
CREATE OR REPLACE FUNCTION kasir_transition_triggers() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    g record;
    moves text;
BEGIN
    FOR g IN SELECT * FROM (VALUES ('payment', 'payments', 'payments_transition'),
                                   ('order', 'payment_orders', 'payment_orders_transition'),
                                   ('payout', 'payouts', 'payouts_transition'),
                                   ('refund', 'refunds', 'refunds_transition'))
                           AS x(entity, tbl, trg) LOOP
        SELECT string_agg(format('WHEN %L THEN NEW.status IN (%s)', f.from_status, f.tos), ' '
                          ORDER BY f.from_status)
          INTO moves
          FROM (SELECT t.from_status,
                       string_agg(format('%L', t.to_status), ', ' ORDER BY t.to_status) AS tos
                  FROM kasir_transitions t WHERE t.entity = g.entity
                 GROUP BY t.from_status) f;
        EXECUTE format('CREATE OR REPLACE TRIGGER %I BEFORE UPDATE OF status ON %I '
                       'FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status%s) '
                       'EXECUTE FUNCTION kasir_transition_guard(%L)',
                       g.trg, g.tbl,
                       CASE WHEN moves IS NOT NULL
                            THEN format(' AND (CASE OLD.status %s END) IS NOT TRUE', moves)
                            ELSE '' END,
                       g.entity);
    END LOOP;
    RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER kasir_transitions_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON kasir_transitions
    FOR EACH STATEMENT EXECUTE FUNCTION kasir_transition_triggers();

UPDATE kasir_transitions SET entity = entity WHERE false;
