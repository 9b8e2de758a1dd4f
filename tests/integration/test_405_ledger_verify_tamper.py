"""405: `kasir-ledger verify` finds tampering. A superuser (the only one who can) disables
the triggers and changes the past: a posting's amount, two postings that still balance, an
entry's reference, a balance stripe, a chain head (ahead of its entries, and behind them), a
posting of no entry, a stripe with no postings. Each time verify exits 1 naming the first
violation; once the changes are undone it passes again. (verify reads a cut of the heads and
stripes, then the entries up to the heads: the last three are what that reading would not
meet on its way, test 422.)"""
import pytest

from conftest import unique
from ledger_util import owner_entry, psql, psql_one, verify

TAMPER = "BEGIN; ALTER TABLE {t} DISABLE TRIGGER USER; {sql}; ALTER TABLE {t} ENABLE TRIGGER USER; COMMIT;"


@pytest.fixture(scope="module")
def chain():
    c = unique("t405")
    ids = []
    for k in range(3):
        ids.append(int(psql_one(
            "SELECT ledger_post('%s', '%s:%d', 'adjustment', 'j%d', NULL, 'ref%d', "
            "ARRAY[ledger_account('bank', NULL, NULL, NULL, 'IDR'), "
            "ledger_account('psp_clearing', NULL, NULL, 'sb405', 'IDR')], "
            "ARRAY[%d, -%d]::bigint[], 'IDR')" % (c, c, k, k, k, 100 + k, 100 + k))))
    rc, text = verify()
    assert rc == 0, text
    return c, ids


def tamper(table, sql, undo):
    psql(TAMPER.format(t=table, sql=sql))
    try:
        return verify()
    finally:
        psql(TAMPER.format(t=table, sql=undo))


def test_changed_amount(chain):
    c, ids = chain
    rc, text = tamper("ledger_postings",
                      "UPDATE ledger_postings SET amount_minor = amount_minor + 1 WHERE entry_id = %d AND line = 1" % ids[1],
                      "UPDATE ledger_postings SET amount_minor = amount_minor - 1 WHERE entry_id = %d AND line = 1" % ids[1])
    assert rc == 1 and "entry %d" % ids[1] in text and "does not balance" in text, text


def test_changed_but_balanced(chain):
    c, ids = chain
    rc, text = tamper("ledger_postings",
                      "UPDATE ledger_postings SET amount_minor = amount_minor + 5 * sign(amount_minor) WHERE entry_id = %d" % ids[0],
                      "UPDATE ledger_postings SET amount_minor = amount_minor - 5 * sign(amount_minor) WHERE entry_id = %d" % ids[0])
    assert rc == 1 and "entry %d" % ids[0] in text and "hash does not match" in text, text


def test_changed_reference(chain):
    c, ids = chain
    rc, text = tamper("ledger_entries",
                      "UPDATE ledger_entries SET reference = 'forged' WHERE entry_id = %d" % ids[2],
                      "UPDATE ledger_entries SET reference = 'ref2' WHERE entry_id = %d" % ids[2])
    assert rc == 1 and "entry %d" % ids[2] in text and "hash does not match" in text, text


def test_changed_balance(chain):
    rc, text = tamper("ledger_balances",
                      "UPDATE ledger_balances SET balance_minor = balance_minor + 1 WHERE account = 'psp_clearing/sb405/IDR'",
                      "UPDATE ledger_balances SET balance_minor = balance_minor - 1 WHERE account = 'psp_clearing/sb405/IDR'")
    assert rc == 1 and "psp_clearing/sb405/IDR" in text and "does not equal" in text, text


@pytest.mark.parametrize("moved, found", [
    # the head row is the daemon's to move (kasir_ledger may UPDATE it): a head that runs
    # ahead of the entries, as after a deleted last entry, is found
    (1, "names entries that are not there"),
    # a head held back one entry: the entry after it is past the head of the cut
    (-1, "does not name its last entry")])
def test_chain_head_moved(chain, moved, found):
    c, _ = chain
    psql("UPDATE ledger_chains SET last_seq = last_seq + (%d) WHERE chain = '%s'" % (moved, c))
    try:
        rc, text = verify()
    finally:
        psql("UPDATE ledger_chains SET last_seq = last_seq - (%d) WHERE chain = '%s'" % (moved, c))
    assert rc == 1 and c in text and "head row" in text and found in text, text


def test_posting_of_no_entry(chain):
    # a posting whose entry is not there, on a real account of the chain, left out of its
    # stripe: no walk of the entries meets it
    c, ids = chain
    orphan = 2 ** 62 + ids[0]  # far past every entry id: the search skips the gap
    rc, text = tamper("ledger_postings",
                      "INSERT INTO ledger_postings (entry_id, line, account, amount_minor, "
                      "currency, chain) VALUES (%d, 1, 'bank/IDR', 7, 'IDR', '%s')" % (orphan, c),
                      "DELETE FROM ledger_postings WHERE entry_id = %d" % orphan)
    assert rc == 1 and "entry %d line 1" % orphan in text and "of no entry" in text, text


def test_stripe_without_postings(chain):
    c, _ = chain
    rc, text = tamper("ledger_balances",
                      "INSERT INTO ledger_balances (account, chain, balance_minor, postings) "
                      "VALUES ('psp_clearing/sb405/IDR', '%s-none', 0, 0)" % c,
                      "DELETE FROM ledger_balances WHERE chain = '%s-none'" % c)
    assert rc == 1 and "psp_clearing/sb405/IDR" in text and "does not equal" in text, text


def test_longer_hash(chain):
    # a hash with a byte more, whose first 32 bytes are right: verify copied 64 hex digits
    # and compared those
    c, ids = chain
    rc, text = tamper("ledger_entries",
                      "UPDATE ledger_entries SET hash = hash || '\\x00'::bytea "
                      "WHERE entry_id = %d" % ids[2],
                      "UPDATE ledger_entries SET hash = substring(hash FROM 1 FOR 32) "
                      "WHERE entry_id = %d" % ids[2])
    assert rc == 1 and "entry %d" % ids[2] in text and "hash is not 32 bytes" in text, text


def test_long_names_verify():
    # a chain and a source key longer than verify's 255-byte copies of them (what it hashes
    # and compares is the row's own value): nothing is wrong, verify passes
    c = unique("t405-long-") + "c" * 300
    owner_entry(None, 5, chain=c, source_key=c + ":" + "k" * 300)
    rc, text = verify()
    assert rc == 0, text


def test_undone_passes_again(chain):
    # every change above was undone: the ledger verifies again
    rc, text = verify()
    assert rc == 0, text
