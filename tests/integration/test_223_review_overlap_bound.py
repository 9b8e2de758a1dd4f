"""223: store.overlap_us is bounded (a review of the group-commit overlap, store.c's gather()).

A writer waits for the other writer's batch to end unless the oldest queued request has waited
store.overlap_us; that bound is what lets a second writer start beside a batch that hangs
(PostgreSQL stuck). Any value was accepted: a huge one made one hung writer hold the other
back with it (oldest + overlap_us could even overflow), a negative one silently meant 0. Now
a value outside 0..1,000,000 is a bad setting: one config.invalid JSON line, exit 2, before
anything is started (docs/CONFIG.md's promise)."""
import json
import os
import subprocess

import pytest

from conftest import bin_path


@pytest.mark.parametrize("value", ["-1", "1000001", "5000000000000"])
def test_out_of_range_overlap_is_a_bad_setting(value):
    env = dict(os.environ, KASIR_STORE_OVERLAP_US=value, KASIR_HTTP_PORT="1",
               KASIR_HTTP_ADMIN_PORT="0")
    try:
        r = subprocess.run([bin_path("ingress")], env=env, capture_output=True, text=True,
                           timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail("kasir-ingress started with store.overlap_us=%s" % value)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = [json.loads(l) for l in (r.stdout + r.stderr).splitlines() if l.startswith("{")]
    bad = [l for l in lines if l.get("event") == "config.invalid"]
    assert [l.get("setting") for l in bad] == ["store.overlap_us"], lines
