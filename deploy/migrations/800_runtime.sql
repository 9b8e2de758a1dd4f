-- 800: the foundation and the worker runtime (lib/worker.c, lib/outbox.c, lib/README.md),
-- and the tables of kasir-demo (consumers/demo), the runtime's example worker.
-- squashes: 001_foundation 100_worker_runtime 101_demo 102_runtime_collation 103_demo_seen 104_outbox_id_blocks 105_offsets_advance 106_outbox_dead 107_runtime_epoch 750_outbox_one_index
--
-- schema_migrations and schema_functions are the runner's own (deploy/migrate.sh). Key
-- columns that hold ids, not words, collate "C": B-tree comparisons are then memcmp instead
-- of strcoll, and the per-batch INSERTs of the runtime spend most of their time in index
-- maintenance on these keys.

-- pgcrypto gives digest() for hash chains and key hashing done in SQL.
CREATE EXTENSION IF NOT EXISTS pgcrypto;

-- A row per running daemon instance, for operators (who is alive, since when).
CREATE TABLE kasir_instances (
    instance_id  text PRIMARY KEY,
    service      text NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);

-- Consumer offsets live here, not in Kafka: a batch's effects and the position after it
-- commit in one transaction, so a crash can only replay a batch that left no trace.
-- next_offset -1: assigned but nothing processed yet (start from the beginning).
-- The worker advances a row only where next_offset is what it read (kasir_offsets_advance),
-- which fences an owner that lost the partition in a rebalance it has not seen yet.
-- epoch: every assignment bumps it (lib/worker.c reads its positions with that UPDATE), so
-- a write made "only while I own this partition" (ks_batch_journal: the executor's attempt
-- journal before it calls a PSP) is fenced at once, before the new owner has committed
-- anything: it locks the row at the epoch it read, or fails.
CREATE TABLE kasir_offsets (
    group_id    text COLLATE "C" NOT NULL,
    topic       text COLLATE "C" NOT NULL,
    partition   integer     NOT NULL,
    next_offset bigint      NOT NULL DEFAULT -1,
    instance    text,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    epoch       bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (group_id, topic, partition)
);

-- kasir_outbox ids are reserved by the worker a block at a time (lib/outbox.c): one
-- nextval() per block of 1024 instead of one per row, so that a batch's rows are written
-- with COPY (no RETURNING there) under ids known before the write. Blocks handed to
-- different transactions never overlap, and a reader of DEFAULT nextval() still gets a
-- fresh id (the first of a block).
CREATE SEQUENCE kasir_outbox_id_seq INCREMENT BY 1024;

-- The transactional outbox: output messages written with the effects that caused them,
-- relayed by the idempotent producer after the commit, and deleted on delivery (the
-- delete is the sent mark: cheaper than an UPDATE, and the table holds only what may
-- still be in flight). Rows of a crashed worker are relayed again: at-least-once on the
-- wire, each message carrying a deterministic kasir.message_id for the reader to dedup.
-- headers: the worker's own compact encoding (lib/outbox.c), opaque to SQL.
-- One index, the primary key (worker, id): every statement on the table names its owner
-- (the sweep, the park, the sent mark), and an id is unique on its own (the sequence), so
-- an index on id alone would only cost a B-tree insertion per output (docs/BENCHMARKS.md).
CREATE TABLE kasir_outbox (
    id          bigint      NOT NULL DEFAULT nextval('kasir_outbox_id_seq'),
    worker      text COLLATE "C" NOT NULL,
    message_id  text        NOT NULL,
    topic       text        NOT NULL,
    key         bytea,
    value       bytea,
    headers     bytea,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT kasir_outbox_pkey PRIMARY KEY (worker, id)
);
-- the sequence goes with its column, as bigserial's would (CREATE SEQUENCE cannot name a
-- column of a table that does not exist yet, and the column's default needs the sequence)
ALTER SEQUENCE kasir_outbox_id_seq OWNED BY kasir_outbox.id;

-- Outbox rows the relay could not deliver (topic missing with auto-create off, message too
-- large, any permanent produce error) end here instead of being re-produced every sweep
-- forever. The relay counts each row's failed deliveries (in memory); after
-- outbox.park_after failures or outbox.park_age_ms of age it moves the row here in one
-- transaction (DELETE ... RETURNING into INSERT), so a row is in exactly one of the two
-- tables. Operators list them with `kasir-dlq parked` and move one back to kasir_outbox to
-- retry it (the relay then picks it up like any other unsent row).
CREATE TABLE kasir_outbox_dead (
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
CREATE INDEX kasir_outbox_dead_worker ON kasir_outbox_dead (worker, parked_at);

-- Message ids a consumer has processed (ks_dedup_claim): the reader's half of
-- exactly-once, for inputs whose effects have no natural unique key. Ids are kept for
-- worker.dedup.retention (90 days by default, longer than any DLQ replay); the worker
-- deletes older ones of its group a slice at a time (kasir_processed_age).
CREATE TABLE kasir_processed (
    consumer     text COLLATE "C" NOT NULL,
    message_id   text COLLATE "C" NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);
CREATE INDEX kasir_processed_age ON kasir_processed (consumer, processed_at);

-- kasir-demo: one row per applied DemoEvent; event_id is the idempotency key.
CREATE TABLE demo_applied (
    event_id     text COLLATE "C" PRIMARY KEY,
    message_id   text        NOT NULL,
    account      text        NOT NULL,
    amount_minor bigint      NOT NULL CHECK (amount_minor > 0),
    currency     char(3)     NOT NULL,
    seq          bigint      NOT NULL,
    applied_seq  bigint      NOT NULL,
    src_topic    text        NOT NULL,
    src_partition integer    NOT NULL,
    src_offset   bigint      NOT NULL,
    applied_at   timestamptz NOT NULL DEFAULT now()
);

-- Running balance and count of applied events per account and currency.
CREATE TABLE demo_accounts (
    account       text COLLATE "C" NOT NULL,
    currency      char(3) NOT NULL,
    balance_minor bigint  NOT NULL,
    applied       bigint  NOT NULL,
    PRIMARY KEY (account, currency)
);

-- kasir-demo's audit of every processing (demo.audit = true, for tests): one row per
-- message each time a committed batch handled it, with no unique key, so a message
-- processed twice shows up here even though demo_applied's key would hide it.
CREATE TABLE demo_seen (
    event_id      text COLLATE "C" NOT NULL,
    src_topic     text    NOT NULL,
    src_partition integer NOT NULL,
    src_offset    bigint  NOT NULL,
    seen_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX demo_seen_event ON demo_seen (event_id);
