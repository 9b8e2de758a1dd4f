-- 103: kasir-demo's audit of every processing (demo.audit = true, for tests): one row per
-- message each time a committed batch handled it, with no unique key, so a message
-- processed twice shows up here even though demo_applied's key would hide it.
CREATE TABLE IF NOT EXISTS demo_seen (
    event_id      text COLLATE "C" NOT NULL,
    src_topic     text    NOT NULL,
    src_partition integer NOT NULL,
    src_offset    bigint  NOT NULL,
    seen_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS demo_seen_event ON demo_seen (event_id);
