"""414: the guards of 401, for what issue 14's second part added, as the daemon's role
(kasir_ledger): it cannot post through ledger_post (only the ledger's own functions may), nor
ask for, approve or rewrite an adjustment, nor change which entries are queued for
publication (it may only claim them); an adjustment whose postings do not balance is
refused by the database whoever writes it (the owner, through ledger_post)."""
import subprocess
import uuid

from conftest import PG_DSN
from ledger_util import LEDGER_DSN, psql, psql_one


def refused(sql, dsn=LEDGER_DSN):
    r = subprocess.run(["psql", dsn, "-v", "ON_ERROR_STOP=1", "-qtAX", "-c", sql],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0, "accepted: %s" % sql
    return r.stderr


def test_role_cannot_post_or_approve():
    out = refused("SELECT ledger_post('sql:x', 't414:1', 'adjustment', 'j', 'p', 'r', "
                  "ARRAY['bank/IDR', 'psp_clearing/sandbox/IDR'], ARRAY[5, -5]::bigint[], 'IDR')")
    assert "permission denied for function ledger_post" in out, out
    out = refused("SELECT ledger_adjustment_request('p', 'k', 'p/k', NULL, 's1', 'IDR', 5, "
                  "'suspense', NULL, 'r')")
    assert "permission denied" in out, out
    out = refused("INSERT INTO ledger_adjustments (adjustment_id, partner_id, seller_id, currency, "
                  "amount_minor, counter, reason, requested_key, requested_by) VALUES "
                  "('adj_t414', 'p', 's1', 'IDR', 5, 'suspense', 'r', 'k', 'p/k')")
    assert "permission denied" in out, out
    out = refused("UPDATE ledger_adjustments SET status = 'APPROVED'")
    assert "permission denied" in out, out
    for flag in ("", ", true"):  # the six-argument form and the seven-argument one
        out = refused("SELECT ledger_adjustment_decide('p', 'adj_x', true, 'k2', 'p/k2', 'ok'%s)"
                      % flag)
        assert "permission denied" in out, out
    po = "po_t414_" + uuid.uuid4().hex[:8]
    psql("INSERT INTO payouts (payout_id, partner_id, seller_id, amount_minor, currency, channel, "
         "bank_code, destination_account, status, failure_code) VALUES ('%s', 'p414', 's1', 5, "
         "'IDR', 'BANK_ACCOUNT', 'BCA', '1234567890', 'FAILED', 'psp_unavailable')" % po)
    out = refused("SELECT ledger_payout_retry('p414', '%s', 'p/k', 'r')" % po)
    assert "permission denied" in out, out
    assert psql_one("SELECT count(*) FROM payouts WHERE payout_id LIKE '%s_r%%'" % po) == "0"
    # the publication queue: claimable (SELECT ... FOR UPDATE, DELETE), not rewritable
    out = refused("UPDATE ledger_unpublished SET entry_id = entry_id + 1")
    assert "permission denied" in out, out
    out = refused("INSERT INTO ledger_unpublished (entry_id) VALUES (1)")
    assert "permission denied" in out, out


def test_unbalanced_adjustment_refused_for_the_owner():
    # ledger_post with lines that do not sum to zero: the postings trigger refuses it
    out = refused("SELECT ledger_post('sql:t414', 't414:unbalanced', 'adjustment', 'j', 'p', 'r', "
                  "ARRAY[ledger_account('suspense', 'p414', NULL, NULL, 'IDR'), "
                  "ledger_account('seller_wallet', 'p414', 's1', NULL, 'IDR')], "
                  "ARRAY[500, -499]::bigint[], 'IDR')", dsn=PG_DSN)
    assert "unbalanced in IDR by 1" in out, out
    assert psql_one("SELECT count(*) FROM ledger_entries WHERE source_key = 't414:unbalanced'") == "0"
