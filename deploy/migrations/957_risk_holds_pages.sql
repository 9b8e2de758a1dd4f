-- 957: a page of a partner's holds reads that page. Holds are kept for good (who decided
-- what, and why), so a partner's list grows with its history, and 830's only index,
-- (partner_id, status, held_at), served neither a list of every status (each page read
-- and sorted all of the partner's holds) nor a page after the first (its bound names
-- hold_id, which that index does not hold: each page read the status's holds from the
-- start). risk_holds_list (functions/) pages on (held_at, hold_id) over these two, and
-- the audit export reads the holds decided in its range over the third (test 312).
-- The DROP comes first: it takes the table's strongest lock at once, so no lock is
-- upgraded halfway (the builds' SHARE lock, then the DROP's, could deadlock with an
-- admin's decision in between). It waits for every open reader of risk_holds (an audit
-- export's transaction lasts up to readers.export_timeout); after 5 s it fails and changes
-- nothing: run it again when no export runs. Once it has the lock, kasir-risk's new holds
-- and every read of holds wait for the builds (a table of a million holds: seconds).
SET LOCAL lock_timeout = '5s';
DROP INDEX risk_holds_partner;
CREATE INDEX risk_holds_partner_held ON risk_holds (partner_id, held_at, hold_id);
CREATE INDEX risk_holds_partner_status ON risk_holds (partner_id, status, held_at, hold_id);
CREATE INDEX risk_holds_partner_decided ON risk_holds (partner_id, decided_at)
    WHERE decided_at IS NOT NULL;
