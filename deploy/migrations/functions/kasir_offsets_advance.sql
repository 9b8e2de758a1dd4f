-- kasir_offsets_advance(group, topics, partitions, next, expected, instance): moves each
-- listed partition of the group's positions (kasir_offsets) from expected to next, in one
-- statement, and raises SQLSTATE KS409 unless every one of them moved. The worker sends the
-- end of a batch (outbox COPY, delete of delivered rows, this, COMMIT) as one query string
-- and does other work while it runs: the fence has to stop the COMMIT on the server, so a
-- partition another owner moved aborts the transaction before COMMIT is reached.
-- Locks: the rows of the listed partitions (FOR UPDATE, by the UPDATE).
-- Repeatable: re-applied by the migration runner whenever this file changes.
CREATE OR REPLACE FUNCTION kasir_offsets_advance(p_group text, p_topics text[], p_parts int[],
                                                 p_next bigint[], p_expected bigint[],
                                                 p_instance text) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
    moved bigint;
BEGIN
    UPDATE kasir_offsets o SET next_offset = u.n, instance = p_instance, updated_at = now()
    FROM unnest(p_topics, p_parts, p_next, p_expected) AS u(t, p, n, e)
    WHERE o.group_id = p_group AND o.topic = u.t AND o.partition = u.p AND o.next_offset = u.e;
    GET DIAGNOSTICS moved = ROW_COUNT;
    IF moved <> coalesce(cardinality(p_topics), 0) THEN
        RAISE EXCEPTION 'offsets moved under us: another owner committed these partitions'
            USING ERRCODE = 'KS409';
    END IF;
END
$fn$;
