-- 403: entries posted by the ledger's SQL entry points (payout holds, settlements,
-- adjustments) are published on kasir.ledger.entries like kasir-ledger's own.
--
-- Those entries are posted inside another worker's (or the ingress's) transaction, and a
-- LedgerEntry is Avro, encoded in C by one home (consumers/ledger/entry.c). So ledger_post()
-- queues the entry id here in the posting transaction, and kasir-ledger moves queued entries
-- to its outbox in the transaction of its next batch (deleting them here): an entry is
-- published if and only if it committed, and once into the outbox.
CREATE TABLE ledger_unpublished (
    entry_id  bigint PRIMARY KEY,
    queued_at timestamptz NOT NULL DEFAULT now()
);
-- (UPDATE of one column: claiming rows FOR UPDATE SKIP LOCKED needs an UPDATE privilege;
-- the entry ids themselves cannot be changed)
GRANT SELECT, DELETE ON ledger_unpublished TO kasir_ledger;
GRANT UPDATE (queued_at) ON ledger_unpublished TO kasir_ledger;

-- every entry ledger_post() wrote before this migration
INSERT INTO ledger_unpublished (entry_id)
SELECT entry_id FROM ledger_entries WHERE chain LIKE 'sql:%' ON CONFLICT DO NOTHING;

-- why a payout failed: a PSP's normalized failure code (from the outcome), or Kasir's own
-- (INSUFFICIENT_FUNDS: refused by the ledger before any PSP saw it)
ALTER TABLE payouts ADD COLUMN failure_code text, ADD COLUMN failure_message text;
