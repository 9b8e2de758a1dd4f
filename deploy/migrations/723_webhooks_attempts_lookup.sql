-- 723: kasir-webhooks asks, for each notification, which PSPs the executor sent the
-- operation to (executor_attempts by kind and object id): a notification of another PSP,
-- or for an operation never sent, is dead-lettered. This index keeps that look-up one
-- probe; executor_attempts_order covers resolved charges only.
CREATE INDEX executor_attempts_object ON executor_attempts (object_id, kind);
