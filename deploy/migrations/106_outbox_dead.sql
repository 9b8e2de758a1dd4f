-- 106: outbox rows the relay could not deliver (topic missing with auto-create off, message
-- too large, any permanent produce error) end here instead of being re-produced every
-- sweep forever. The relay counts each row's failed deliveries (in memory); after
-- outbox.park_after failures or outbox.park_age_ms of age it moves the row here in one
-- transaction (DELETE ... RETURNING into INSERT), so a row is in exactly one of the two
-- tables. Operators list them with `kasir-dlq parked` and move one back to kasir_outbox to
-- retry it (the relay then picks it up like any other unsent row).
CREATE TABLE IF NOT EXISTS kasir_outbox_dead (
    id          bigint      PRIMARY KEY,          -- the kasir_outbox id it had
    worker      text        NOT NULL,
    message_id  text        NOT NULL,
    topic       text        NOT NULL,
    key         bytea,
    value       bytea,
    headers     bytea,                            -- lib/outbox.c's compact encoding
    created_at  timestamptz NOT NULL,
    attempts    integer     NOT NULL,
    last_error  text        NOT NULL,
    parked_at   timestamptz NOT NULL DEFAULT now(),
    retried_at  timestamptz,                      -- set when an operator moved it back
    retried_by  text
);
CREATE INDEX IF NOT EXISTS kasir_outbox_dead_worker ON kasir_outbox_dead (worker, parked_at);
