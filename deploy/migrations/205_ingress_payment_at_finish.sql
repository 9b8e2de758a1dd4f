-- 205: a payment is written once, at the finish. Until 204 the claim inserted the payment
-- (PENDING_PUBLISH) and its orders, and the finish flipped the payment to NOT_STARTED: an
-- UPDATE per payment and a dead row version for vacuum, on the busiest table. Now the claim
-- writes only the idempotency record, which also reserves the checkout_id (a unique partial
-- index: two concurrent claims for one checkout cannot both win), and the complete finish
-- inserts the payment as NOT_STARTED with its orders in the same commit that stores the
-- response. A payment row therefore exists exactly when its event is confirmed and its
-- answer stored; a released or crashed attempt leaves only its idempotency record (same
-- ids, checkout still reserved) for the retry to resume.
--
-- checkout dedup: a claim is refused when its checkout is reserved by another key's record
-- or already has a payment (records are purged after idempotency.keep, payments stay).
-- Rows written by 204's claim (PENDING_PUBLISH) are still finished correctly: the finish's
-- insert turns an existing PENDING_PUBLISH row into NOT_STARTED.
ALTER TABLE idempotency_keys ADD COLUMN IF NOT EXISTS checkout_id text;
CREATE UNIQUE INDEX IF NOT EXISTS idempotency_keys_checkout
    ON idempotency_keys (partner_id, checkout_id) WHERE checkout_id IS NOT NULL;

-- (ingress_batch(): its one definition is deploy/migrations/functions/ingress_batch.sql)
