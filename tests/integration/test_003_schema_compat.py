"""003: `make check-schemas` really guards the evolution rule (schemas/README.md): in a
scratch clone, incompatible edits of a released schema fail the check and a compatible one
passes. (Needs no server; it lives here because it drives git and the real checker.)"""
import json
import os
import subprocess

import pytest

from conftest import TOP

SCHEMA = "schemas/refund_requested.v1.avsc"


def baseline_present():
    with open(os.path.join(TOP, "schemas", "BASELINE")) as f:
        commit = [l.strip() for l in f if l.strip() and not l.startswith("#")][0]
    return subprocess.run(["git", "-C", TOP, "cat-file", "-e", commit + "^{commit}"],
                          capture_output=True).returncode == 0


@pytest.fixture
def clone(tmp_path):
    if not baseline_present():
        pytest.skip("schemas/BASELINE commit not in this (shallow?) clone")
    d = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", TOP, str(d)], check=True, timeout=60)
    return d


def check(repo):
    return subprocess.run(["/usr/bin/python3", "schemas/check_compat.py"], cwd=repo,
                          capture_output=True, text=True, timeout=60)


def edit(repo, fn):
    p = os.path.join(repo, SCHEMA)
    with open(p) as f:
        doc = json.load(f)
    fn(doc)
    with open(p, "w") as f:
        json.dump(doc, f, indent=2)


def field(doc, name):
    return next(f for f in doc["fields"] if f["name"] == name)


def test_unchanged_schemas_pass(clone):
    r = check(clone)
    assert r.returncode == 0, r.stdout
    assert "comparing with release" in r.stdout


def test_type_change_fails(clone):
    edit(clone, lambda d: field(d, "amount_minor").update(type="string"))
    r = check(clone)
    assert r.returncode == 1 and "FAIL " + SCHEMA in r.stdout, r.stdout


def test_new_field_without_default_fails(clone):
    def add(d):
        d["fields"].append({"name": "channel_ref", "type": "string", "doc": "a new field"})
    edit(clone, add)
    r = check(clone)
    assert r.returncode == 1 and "FAIL " + SCHEMA in r.stdout, r.stdout


def test_removed_schema_fails(clone):
    os.remove(os.path.join(clone, SCHEMA))
    r = check(clone)
    assert r.returncode == 1 and "removed since" in r.stdout, r.stdout


def test_new_optional_field_with_default_passes(clone):
    def add(d):
        d["fields"].append({"name": "channel_ref", "type": ["null", "string"], "default": None,
                            "doc": "an optional new field"})
    edit(clone, add)
    r = check(clone)
    assert r.returncode == 0, r.stdout
