"""008: ks_pg_exec, a statement prepared once per server session, against the real server:
the session that has it runs it by name (prepared once, not on every call); a session that
lost it (ended by the server, DEALLOCATE behind its back) fails once, retriably, and the
next try prepares it again -- every statement of that session, not only the one that hit
the loss; a transaction that rolls back keeps it; a statement the session has but the
caller does not know of is prepared again under a fresh name, never a collision that
aborts the transaction (42P05); a cached plan the server refuses after a column changed
type (0A000 from the plan cache) makes every statement prepare again on the next try, and
no other error does (kasir-pgstmt)."""
import subprocess

from conftest import bin_path


def runs(scenario):
    p = subprocess.run([bin_path("pgstmt"), scenario], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout.splitlines()


def test_prepared_once_per_session():
    assert runs("repeat") == ["run 1: ok 42 prepares=1", "run 2: ok 10 prepares=1",
                              "run 3: ok 14 prepares=1"]


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


def test_one_lost_statement_tells_every_statement_of_the_process():
    assert runs("all_lost") == ["run 1: ok 42 prepares=1", "run 2: ok -9 prepares=2",
                                "run 3: error 26000 retriable=1",
                                "run 4: ok 14 prepares=1", "run 5: ok -4 prepares=2"]


def test_prepared_in_a_transaction_that_rolls_back_stays():
    assert runs("rolled_back") == ["run 1: ok 42 prepares=1",
                                   "run 2: error 26000 retriable=1",
                                   "run 3: ok 14 prepares=1", "run 4: ok 16 prepares=1"]


def test_a_statement_the_caller_lost_track_of_is_prepared_again_in_a_transaction():
    # the old one stays in the session (1 more), the transaction is not aborted
    assert runs("no_answer") == ["run 1: ok 42 prepares=1", "run 2: ok 10 prepares=2"]


def test_a_plan_refused_after_a_column_changed_type_is_prepared_again():
    # every statement prepares again (the old ones stay in the session): 2 + 2
    assert runs("retyped") == ["run 1: ok 42 prepares=1", "run 2: ok 3 prepares=2",
                               "run 3: error 0A000 retriable=0", "run 4: ok 3 prepares=3",
                               "run 5: ok 16 prepares=4"]


def test_an_error_of_the_data_leaves_the_statement_prepared():
    assert runs("data_error") == ["run 1: ok 42 prepares=1",
                                  "run 2: error 22003 retriable=0",
                                  "run 3: ok 14 prepares=1"]


def test_feature_not_supported_from_a_called_function_is_not_a_stale_plan():
    assert runs("refused_inside") == ["run 1: ok 42 prepares=1", "run 2: ok 5 prepares=2",
                                      "run 3: error 0A000 retriable=0",
                                      "run 4: error 0A000 retriable=0",
                                      "run 5: ok 6 prepares=2", "run 6: ok 16 prepares=2"]
