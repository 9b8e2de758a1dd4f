-- 206: byte-order ("C") collation for the ingress's id columns, as 102 did for the
-- runtime's. The database collates text as C.UTF-8, which PostgreSQL does not treat as
-- "C": every B-tree comparison of these keys went through strcoll (measured: varstr_cmp
-- was 5-6 % of the group-commit writers' CPU, under index probes and the unique checks of
-- ingress_batch()). Ids, partner ids and checkout ids are opaque ASCII tokens, so byte
-- order is the right order for them; nothing sorts them for humans.
ALTER TABLE idempotency_keys ALTER COLUMN partner_id TYPE text COLLATE "C",
                             ALTER COLUMN checkout_id TYPE text COLLATE "C";
ALTER TABLE payments ALTER COLUMN payment_id TYPE text COLLATE "C",
                     ALTER COLUMN partner_id TYPE text COLLATE "C",
                     ALTER COLUMN checkout_id TYPE text COLLATE "C";
ALTER TABLE payment_orders ALTER COLUMN order_id TYPE text COLLATE "C",
                           ALTER COLUMN payment_id TYPE text COLLATE "C";
ALTER TABLE refunds ALTER COLUMN refund_id TYPE text COLLATE "C";
ALTER TABLE payouts ALTER COLUMN payout_id TYPE text COLLATE "C";
