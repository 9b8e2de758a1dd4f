-- 860: state of kasir-dlq (dlq-tools/dlq): the audit of every replay, resolve and parked
-- retry, and the marks that say which dead letters were replayed or resolved. A DLQ topic
-- is evidence: the tool never deletes or compacts it, it only marks messages here.
-- A dead letter is named by its place in its DLQ topic: (topic, partition, off).
-- squashes: 500_dlq_tools 501_dlq_resolve_seq

-- One row per action (replay, resolve, parked-retry), written when it starts and updated
-- as it goes, so a killed replay still shows who started it, with what filters, and how
-- far it got (status stays 'running': the process is gone, a rerun carries on).
CREATE TABLE kasir_dlq_audit (
    id          text        PRIMARY KEY,            -- the replay id (rpl_...), rsv_..., prk_...
    action      text        NOT NULL CHECK (action IN ('replay', 'resolve', 'parked-retry')),
    actor       text        NOT NULL,               -- who: --by, KASIR_DLQ_ACTOR, user@host
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    status      text        NOT NULL DEFAULT 'running'
                CHECK (status IN ('running', 'done', 'interrupted', 'failed')),
    filters     jsonb       NOT NULL,               -- the selection as given on the command line
    target      text,                               -- replay: --to, or null (origin topics)
    note        text,
    selected    bigint      NOT NULL DEFAULT 0,     -- matched the filters and were still open
    done        bigint      NOT NULL DEFAULT 0,     -- replayed (delivery confirmed), resolved, retried
    failed      bigint      NOT NULL DEFAULT 0      -- delivery failed (left open for a rerun)
);
CREATE INDEX kasir_dlq_audit_started ON kasir_dlq_audit (started_at);

-- Replay progress: the dead letters whose copies Kafka confirmed, written after the
-- delivery reports (copy first, acknowledge after). One row per batch of confirmations and
-- DLQ topic, the batch as parallel arrays: a row per message would cost more index and
-- foreign-key work than the replay itself. A rerun skips every (topic,
-- partition, offset) found here. A kill between a delivery and its row means that copy is
-- sent again: it carries the original kasir.message_id, so the worker's dedup drops it.
CREATE TABLE kasir_dlq_replayed (
    id          bigserial   PRIMARY KEY,
    replay_id   text        NOT NULL REFERENCES kasir_dlq_audit (id),
    topic       text COLLATE "C" NOT NULL,           -- the DLQ topic
    partitions  integer[]   NOT NULL,                -- per message: its DLQ partition,
    offs        bigint[]    NOT NULL,                --   its offset there,
    message_ids text[]      NOT NULL,                --   the id its copy carried (the original's),
    targets     text[]      NOT NULL,                --   the topic the copy went to
    replayed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX kasir_dlq_replayed_topic ON kasir_dlq_replayed (topic);
CREATE INDEX kasir_dlq_replayed_replay ON kasir_dlq_replayed (replay_id);

-- One replayed copy per row, for reading and auditing by hand.
CREATE VIEW kasir_dlq_replayed_messages AS
SELECT r.replay_id, r.topic, u.partition, u.off, u.message_id, u.target, r.replayed_at
FROM kasir_dlq_replayed r,
     unnest(r.partitions, r.offs, r.message_ids, r.targets) AS u(partition, off, message_id, target);

-- Dead letters marked handled without a replay (fixed by hand, obsolete). One mark each.
-- A replay that runs while someone resolves dead letters must not send them after the
-- resolve commits (dlq-tools/README.md, "Resolve during a replay"): before each chunk of
-- copies it asks for the marks it has not seen yet, by seq. Resolves write their marks
-- holding an advisory lock exclusively and a replay reads them holding it shared, so under
-- that lock seq grows in commit order and "seq > the last one seen" misses none.
CREATE TABLE kasir_dlq_resolved (
    topic       text COLLATE "C" NOT NULL,
    partition   integer     NOT NULL,
    off         bigint      NOT NULL,
    resolve_id  text        NOT NULL REFERENCES kasir_dlq_audit (id),
    message_id  text,
    resolved_at timestamptz NOT NULL DEFAULT now(),
    seq         bigserial,
    PRIMARY KEY (topic, partition, off)
);
CREATE INDEX kasir_dlq_resolved_seq ON kasir_dlq_resolved (topic, seq);
