-- 100: tables of the worker runtime (lib/worker.c, lib/outbox.c). See lib/README.md.

-- Consumer offsets live here, not in Kafka: a batch's effects and the position after it
-- commit in one transaction, so a crash can only replay a batch that left no trace.
-- next_offset -1: assigned but nothing processed yet (start from the beginning).
-- The worker advances a row only with UPDATE ... WHERE next_offset = <what it read>,
-- which fences an owner that lost the partition in a rebalance it has not seen yet.
CREATE TABLE IF NOT EXISTS kasir_offsets (
    group_id    text        NOT NULL,
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    next_offset bigint      NOT NULL DEFAULT -1,
    instance    text,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
);

-- The transactional outbox: output messages written with the effects that caused them,
-- relayed by the idempotent producer after the commit, and deleted on delivery (the
-- delete is the sent mark: cheaper than an UPDATE, and the table holds only what may
-- still be in flight). Rows of a crashed worker are relayed again: at-least-once on the
-- wire, each message carrying a deterministic kasir.message_id for the reader to dedup.
-- headers: the worker's own compact encoding (lib/outbox.c), opaque to SQL.
CREATE TABLE IF NOT EXISTS kasir_outbox (
    id          bigserial   PRIMARY KEY,
    worker      text        NOT NULL,
    message_id  text        NOT NULL,
    topic       text        NOT NULL,
    key         bytea,
    value       bytea,
    headers     bytea,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS kasir_outbox_unsent ON kasir_outbox (worker, id);

-- Message ids a consumer has processed (ks_dedup_claim): the reader's half of
-- exactly-once, for inputs whose effects have no natural unique key.
CREATE TABLE IF NOT EXISTS kasir_processed (
    consumer     text        NOT NULL,
    message_id   text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);
