-- 402: an order can expire straight from EXECUTING: a VA or QR whose pending outcome never
-- reached the ledger (lost webhook, both outcomes in one batch, where the final one wins)
-- still expires. Added to the status machine of migration 300.
INSERT INTO kasir_transitions (entity, from_status, to_status)
VALUES ('order', 'EXECUTING', 'EXPIRED')
ON CONFLICT DO NOTHING;
