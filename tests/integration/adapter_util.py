"""Helpers for the adapter tests (64x): kasir-adaptercall runs one PSP adapter (its step
sequence, then its status sequence when the outcome is unknown) against our own
kasir-psp-sandbox, and answers one JSON line.

The PSP keys reach the tool through its environment only, never its command line."""
import json
import os
import subprocess
import time
import uuid

from conftest import bin_path


def new_id(prefix):
    return "%s_%s" % (prefix, uuid.uuid4().hex[:16])


def adaptercall(sb, psp, *args, fault=None, timeout_ms=3000, payout_base=None):
    """Runs the driver; returns (json, stdout+stderr). psp: xendit or midtrans."""
    env = dict(os.environ)
    env["KASIR_ADAPTERCALL_SECRET"] = sb.keys[psp]
    env["KASIR_ADAPTERCALL_PAYOUT_SECRET"] = sb.keys["iris"] if psp == "midtrans" else ""
    cmd = [bin_path("adaptercall"), "--psp", psp, "--base", sb.url, "--timeout-ms", str(timeout_ms)]
    if payout_base:
        cmd += ["--payout-base", payout_base]
    if fault:
        cmd += ["--fault-first", fault]
    cmd += [str(a) for a in args]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    text = p.stdout + p.stderr
    for k in sb.keys.values():
        assert k not in text, "a PSP key reached the driver's output"
    assert p.stdout.strip(), text
    return json.loads(p.stdout.strip().splitlines()[-1]), text


def details(**kw):
    out = []
    for k, v in kw.items():
        out += ["--detail", "%s=%s" % (k, v)]
    return out


def entries(sb, psp, kind, reference):
    return [e for e in sb.ledger(psp, kind)["entries"] if e["reference"] == reference]


def no_duplicates(sb):
    led = sb.ledger()
    assert led["duplicates"] in ({}, []), led["duplicates"]


def wait_for(fn, timeout=5.0):
    """fn() until it returns something true, at most timeout seconds."""
    deadline = time.time() + timeout
    while True:
        got = fn()
        if got or time.time() > deadline:
            return got
        time.sleep(0.05)
