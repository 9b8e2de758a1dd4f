-- 001: the foundation. schema_migrations itself is created by the runner
-- (deploy/local/stack.sh migrate) so that it can record this file.
-- pgcrypto gives digest() for hash chains and key hashing done in SQL.
CREATE EXTENSION IF NOT EXISTS pgcrypto;

-- A row per running daemon instance, for operators (who is alive, since when).
CREATE TABLE IF NOT EXISTS kasir_instances (
    instance_id  text PRIMARY KEY,
    service      text NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);
