-- 722: kasir-executor asks, before a new attempt, whether another command acted on the same
-- order, refund or payout already (one object, one operation at a PSP): by object id.
CREATE INDEX executor_attempts_object ON executor_attempts (object_id, kind);
