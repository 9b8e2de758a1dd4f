"""008: ks_pg_exec, a statement prepared once per server session, against the real server:
the session that has it runs it by name, a session that lost it (ended by the server, or
DEALLOCATE behind its back) fails once and retriably and prepares it again, a transaction
that rolls back keeps it, and a name the session has already is not taken for granted
inside a transaction (kasir-pgstmt)."""
import subprocess

from conftest import bin_path


def runs(scenario):
    p = subprocess.run([bin_path("pgstmt"), scenario], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout.splitlines()


def test_prepared_once_per_session():
    assert runs("repeat") == ["run 1: ok 42 prepares=1", "run 2: ok 10 prepares=1"]


def test_a_session_the_server_ended_prepares_it_again():
    out = runs("terminated")
    assert out[0] == "run 1: ok 42 prepares=1"
    assert out[1].startswith("run 2: error") and out[1].endswith("retriable=1"), out
    # the reconnected PGconn is the same pointer: the new backend pid tells it lacks it
    assert out[2] == "run 3: ok 14 prepares=1", out


def test_a_statement_lost_behind_its_back_fails_retriably_once():
    assert runs("deallocated") == ["run 1: ok 42 prepares=1",
                                   "run 2: error 26000 retriable=1",
                                   "run 3: ok 14 prepares=1"]


def test_prepared_in_a_transaction_that_rolls_back_stays():
    assert runs("rolled_back") == ["run 1: ok 42 prepares=1", "run 2: ok 10 prepares=1",
                                   "run 3: ok 14 prepares=1"]


def test_a_name_the_session_has_is_an_error_inside_a_transaction():
    assert runs("aborted") == ["run 1: ok 42 prepares=1", "run 2: error 42P05 retriable=0",
                               "run 3: ok 14 prepares=1"]
