"""517 (review): the audit record silently loses a filter that is not UTF-8.

dlq_filters_json (dlq-tools/dlq/msg.c:454-460) builds the audit's filters with
json_string(o->key) / json_string(value); for bytes that are not UTF-8 (Kafka keys and
header values are bytes, and an operator copies them from `list`) jansson returns NULL and
json_object_set_new drops the member without a word. The record then reads as if the
command had no key (or header) filter, i.e. as "everything in the topic": the audit
misstates what an operator did. Expected: every filter given is in the record (escaped),
or the command refuses the filter (exit 2)."""
import os
import subprocess

from conftest import bin_path
from runtime_util import Run, produce
from tools_util import dead_letter, dlq_json
import pytest

# An open finding of the hostile review of issue 15, not fixed yet: the test shows the
# wrong behaviour and is expected to fail until it is (then drop this mark).
pytestmark = pytest.mark.xfail(strict=False, reason="open finding: 517 (review): the audit record silently loses a filter that is not UTF-8.")


def test_audit_keeps_non_utf8_filters():
    run = Run("t517", partitions=1)
    produce([dead_letter(run, i) for i in range(2)])
    p = subprocess.run([os.fsencode(bin_path("dlq")), b"resolve", b"--dlq", run.dlq.encode(),
                        b"--key", b"acct\xff", b"--header", b"x-tenant=\xfe\xff",
                        b"--output", b"json"], capture_output=True, timeout=60)
    if p.returncode == 2:
        return  # refused: fine
    assert p.returncode == 0, p.stderr
    rid = [l for l in p.stdout.decode(errors="replace").splitlines() if l.strip()][-1]
    import json
    rid = json.loads(rid)["resolve_id"]
    a = dlq_json("audit", "--id", rid)[0]
    print(a["filters"])
    assert "key" in a["filters"], "audit of %s lost the --key filter: %s" % (rid, a["filters"])
    assert "header" in a["filters"], "audit of %s lost the --header filter: %s" % (rid, a["filters"])
