-- 900: where a replay's copies went, so that the next replay can find the copies of one
-- that was killed (kill -9, a crash) between Kafka's confirmation and its mark, record them
-- and not send them a second time (dlq-tools/README.md, "A killed replay"). One row per
-- partition of each target topic, written before the replay's first copy to it: the
-- partition's end offset then, so every copy of the replay there is at or after it.
CREATE TABLE IF NOT EXISTS kasir_dlq_replay_targets (
    replay_id  text    NOT NULL REFERENCES kasir_dlq_audit (id),
    topic      text COLLATE "C" NOT NULL,
    partition  integer NOT NULL,
    start_off  bigint  NOT NULL,
    PRIMARY KEY (replay_id, topic, partition)
);
