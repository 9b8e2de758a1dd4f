-- 101: tables owned by kasir-demo (consumers/demo), the example worker.

-- One row per applied DemoEvent; event_id is the idempotency key.
CREATE TABLE IF NOT EXISTS demo_applied (
    event_id     text        PRIMARY KEY,
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
CREATE TABLE IF NOT EXISTS demo_accounts (
    account       text    NOT NULL,
    currency      char(3) NOT NULL,
    balance_minor bigint  NOT NULL,
    applied       bigint  NOT NULL,
    PRIMARY KEY (account, currency)
);
