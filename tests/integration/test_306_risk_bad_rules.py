"""306: a rules file with mistakes stops kasir-risk at start with exit status 2, after one
JSON log line per problem naming the rule (its id, or its position when it has none) and
the field; nothing is consumed. A missing or unreadable file is the same. `kasir-risk
check-rules` checks a file without starting."""
import json
import os
import subprocess

from conftest import STACK, TOP
from risk_util import RISK, Risk

BAD = {"rules": [
    {"id": "fine", "type": "velocity", "window": "1h", "max_count": 5},
    {"id": "bad-currency", "type": "amount_limit", "currency": "RUPIAH", "max": "10.00"},
    {"id": "bad-amount", "type": "amount_limit", "currency": "IDR", "max": "10.001"},
    {"type": "blocklist", "list": "buyer", "values": ["x"]},
    {"id": "bad-window", "type": "velocity", "window": "an hour", "max_count": 5},
    {"id": "bad-list", "type": "blocklist", "list": "email", "values": ["a@b"]},
    {"id": "fine", "type": "new_buyer_cap", "age": "7d", "currency": "IDR", "max": "5.00"},
    {"id": "bad-action", "type": "new_buyer_cap", "age": "7d", "currency": "IDR", "max": "5.00",
     "action": "ALLOW"},
    {"id": "bad-member", "type": "velocity", "window": "1h", "max_count": 5, "window_s": 60},
]}
# (rule, field) of every problem above
EXPECTED = {("bad-currency", "rules[1].currency"), ("bad-amount", "rules[2].max"),
            ("rules[3]", "rules[3].id"), ("bad-window", "rules[4].window"),
            ("bad-list", "rules[5].list"), ("fine", "rules[6].id"),
            ("bad-action", "rules[7].action"), ("bad-member", "rules[8].window_s")}


def run(args, env_extra):
    env = dict(os.environ)
    env.update(STACK)
    env.update(env_extra)
    return subprocess.run([RISK, *args], capture_output=True, text=True, env=env, timeout=30)


def problems(stderr):
    lines = [json.loads(l) for l in stderr.splitlines() if l.startswith("{")]
    return [l for l in lines if l["event"] == "risk.rule.invalid"], lines


def test_bad_rules_exit_2_naming_each(tmp_path):
    r = Risk("t306", BAD)
    for args in ([], ["check-rules"]):
        p = run(args, r.env())
        assert p.returncode == 2, (args, p.stderr)
        bad, lines = problems(p.stderr)
        assert {(l["rule"], l["field"]) for l in bad} == EXPECTED, p.stderr
        assert all(l["level"] == "error" and l["msg"] for l in bad)
        assert lines[-1]["event"] == "risk.rules.rejected"
        assert "8 problems" in lines[-1]["msg"]
        assert not any(l["event"] == "worker.started" for l in lines)
    # nothing consumed: the group has no positions
    assert subprocess.run(["psql", STACK["KASIR_PG_DSN"], "-qtAX", "-c",
                           "SELECT count(*) FROM kasir_offsets WHERE group_id = '%s'" % r.group],
                          capture_output=True, text=True).stdout.strip() == "0"

    # not JSON; a missing file; no file set: each one problem, exit 2
    notjson = tmp_path / "rules.json"
    notjson.write_text('{"rules": [ {"id": "x",, } ]}')
    for path, field in ((str(notjson), "(file)"), (str(tmp_path / "nope.json"), "risk.rules")):
        p = run(["check-rules"], r.env(KASIR_RISK_RULES=path))
        bad, _ = problems(p.stderr)
        assert p.returncode == 2 and [l["field"] for l in bad] == [field], p.stderr
    env = r.env()
    del env["KASIR_RISK_RULES"]
    p = run(["check-rules"], env)
    assert p.returncode == 2 and "risk.rules is not set" in p.stderr

    # the example file of deploy/ is valid
    p = run(["check-rules"], r.env(KASIR_RISK_RULES=os.path.join(TOP, "deploy/risk/rules.json")))
    assert p.returncode == 0, p.stderr
    assert "11 rules" in p.stderr
